"""batch-noise and regularization at their current designs (issue 38), on made-up runs, and the
figures and pages a reviewer reads: every seed drawn, axes on the data, intervals coloured
by their outcomes, ratios on ratio ticks, no effect size from fewer than five seeds."""

import random
from pathlib import Path

import pytest

from gluon_bn.study import criteria, fitted
from gluon_bn.study.judges import EARLIER, earlier_design, judge, record_of
from gluon_bn.study.judging import outcome
from gluon_bn.study.plans import CONFIGURATIONS
from gluon_bn.study.registry import get_study
from gluon_bn.study.stats import FAILS, HOLDS, UNCLEAR
from gluon_bn.study.study_record import Configuration, StudyRecord

RESULTS = Path(__file__).resolve().parents[1] / "results" / "studies"
NOISE_CLAIMS = ("noisy", "shrinks", "whole data", "cost")
FIT = 0.3


def stated(study, name):
    return get_study(study).stated(name)


# --------------------------------------------------------------------------- batch-noise


def _noise(sizes, batch, moving, population, **kw):
    return criteria.batch_noise(
        sizes, batch, moving, population, *(stated("batch-noise", n) for n in NOISE_CLAIMS), **kw
    )


def test_batch_noise_reads_batch_statistics_and_whole_data_never_the_lagging_averages():
    sizes = [16, 64, 256, 1024]
    population = [0.860, 0.866, 0.862]
    batch = [
        [0.830, 0.835, 0.831],
        [0.850, 0.853, 0.851],
        [0.858, 0.864, 0.860],
        [0.859, 0.866, 0.861],
    ]
    moving = [0.858, 0.865, 0.861]
    judged = _noise(sizes, batch, moving, population)
    assert outcome(judged.verdict) == HOLDS and list(judged.parts) == [
        "noisy",
        "shrinks",
        "whole data",
    ]
    names = [c.name for c in judged.comparisons]
    assert names[:3] == ["noisy (batch 16)", "shrinks (batch 1024 vs 16)", "whole data"]
    shown = [c for c in judged.comparisons if c.role == "reference"]
    assert [c.name for c in shown] == [f"cost (batch {b})" for b in sizes]
    # moving averages that lag far behind change nothing in noisy and shrinks
    lagging = _noise(sizes, batch, [0.70, 0.71, 0.70], population)
    assert lagging.parts["noisy"] == judged.parts["noisy"]
    assert lagging.parts["shrinks"] == judged.parts["shrinks"]
    assert outcome(lagging.parts["whole data"]) == HOLDS  # whole data beats them: noninferior


def test_batch_noise_fails_when_the_noise_does_not_shrink_or_whole_data_loses():
    sizes = [16, 1024]
    population, moving = [0.860, 0.866, 0.862], [0.859, 0.866, 0.861]
    flat = [[0.830, 0.835, 0.831], [0.830, 0.834, 0.832]]  # no better at 1024
    judged = _noise(sizes, flat, moving, population)
    assert judged.verdict.startswith(f"{FAILS}: noisy: holds; shrinks: {FAILS}")
    worse = _noise(sizes, [[0.83, 0.835, 0.831], [0.86, 0.866, 0.862]], moving, [0.80, 0.81, 0.80])
    assert outcome(worse.parts["whole data"]) == FAILS and outcome(worse.verdict) == FAILS
    spread = _noise(sizes, [[0.80, 0.87, 0.83], [0.86, 0.866, 0.862]], moving, population)
    assert outcome(spread.parts["noisy"]) == UNCLEAR
    assert _noise([16], [[0.8, 0.8, 0.8]], moving, population).verdict.startswith(UNCLEAR)


def _noise_runs(seeds=5, cost=None, rng=None):
    rng = rng or random.Random(0)
    cost = cost or {16: 0.03, 64: 0.012, 256: 0.004, 1024: 0.001}
    runs = []
    for seed in range(seeds):
        base = 0.86 + rng.gauss(0, 0.004)
        runs.append(
            {
                "seed": seed,
                "diverged": False,
                "curve": [0.7, base],
                "loss": [1.0, 0.4],
                "final_acc": base,
                "train_seconds": 100.0,
                "moving_acc": base - 0.002,
                "population_acc": base,
                "batch_stats_acc": {
                    str(b): base - c + rng.gauss(0, 0.002) for b, c in cost.items()
                },
            }
        )
    return runs


def _record(study, configs, settings=None):
    spec = get_study(study)
    settings = settings or spec.defaults
    return record_of(
        spec, settings, {**settings.as_dict(), "quick": False}, {"omp_threads": 1}, configs
    )


def test_batch_noise_is_judged_as_one_family_from_its_one_network_per_seed():
    settings = get_study("batch-noise").defaults
    (config,) = CONFIGURATIONS["batch-noise"](settings)
    assert config.name == "BN" and config.settings["eval_batch_sizes"] == [16, 64, 256, 1024]
    config.runs = _noise_runs()
    judged = judge("batch-noise", [config], settings)
    assert outcome(judged.verdict) == HOLDS
    deciding = [c for c in judged.comparisons if c.role == "decides"]
    assert len(deciding) == 3 and all(c.family == 3 for c in deciding)
    assert all(c.p_holm is None for c in judged.comparisons if c.role == "reference")


def test_a_record_of_the_earlier_design_is_inconclusive_and_still_reads(tmp_path):
    from gluon_bn.study.study_report import markdown, write_study

    old = [
        Configuration(
            f"batch {b}",
            {"bn": "gluon", "batch_size": b, "lr": b / 256},
            [
                {
                    "seed": s,
                    "moving_acc": 0.85,
                    "batch_stats_acc": 0.84,
                    "population_acc": 0.86,
                    "final_acc": 0.85,
                    "diverged": False,
                    "train_seconds": 10.0,
                }
                for s in range(5)
            ],
        )
        for b in (8, 256)
    ]
    assert earlier_design("batch-noise", old)
    record = _record("batch-noise", old)
    assert record.verdict.startswith(f"{UNCLEAR}: {EARLIER}")
    assert get_study("batch-noise").deciding_command() in record.verdict
    assert not record.comparisons
    write_study(record, tmp_path)  # the report and both figures are drawn all the same
    assert (tmp_path / "batch-noise.png").stat().st_size > 0
    assert EARLIER in markdown(record)


# --------------------------------------------------------------------------- regularization


def _fit_run(seed, fit_at, gap, *, val=0.8, epochs=100, diverged=False):
    """A run whose training loss reaches FIT at epoch `fit_at` (None: never), gap `gap` there."""
    length = epochs if fit_at is None else fit_at
    losses = [2.3 - (2.3 - FIT + 0.01) * e / length for e in range(1, length + 1)]
    if fit_at is None:
        losses = [max(v, FIT + 0.05) for v in losses]
    train = [0.5 + 0.4 * e / length for e in range(1, length + 1)]
    test = [t - gap * e / length for e, t in enumerate(train, 1)]
    return {
        "seed": seed,
        "diverged": diverged,
        "train_loss": losses,
        "train_accs": train,
        "val_accs": [val] * length,
        "curve": test,
        "loss": losses,
        "final_acc": test[-1],
    }


def _networks(gaps, *, censored=(), vals=None, seeds=5):
    """Runs by network and rate: each network fits at every rate (but `censored` pairs)."""
    vals = vals or {}
    return {
        net: {
            rate: [
                _fit_run(
                    s,
                    None if (net, rate) in censored else 30,
                    gap + 0.004 * (s % 3),
                    val=vals.get((net, rate), 0.8),
                )
                for s in range(seeds)
            ]
            for rate in (0.3, 1.0, 3.0)
        }
        for net, gap in gaps.items()
    }


def _regularize(networks, **kw):
    return criteria.regularization(
        networks,
        FIT,
        *(stated("regularization", n) for n in ("gap", "dropout, BN", "dropout, plain")),
        **kw,
    )


def test_fit_epoch_reads_the_prediction_mode_loss_and_censors_what_never_fits():
    run = _fit_run(0, 12, 0.07)
    assert fitted.fit_epoch(run, FIT) == 12
    at = fitted.at_fit(run, FIT)
    assert at["epoch"] == 12 and at["gap"] == pytest.approx(0.07)
    assert fitted.fit_epoch(_fit_run(0, None, 0.07), FIT) is None
    assert fitted.fit_epoch({**run, "diverged": True}, FIT) is None
    assert fitted.fit_epoch({"train_loss": [None, 2.0, 0.2]}, FIT) == 3


def test_each_network_takes_the_rate_with_the_best_validation_accuracy_among_those_that_fit():
    runs = _networks(
        {"BN": 0.08},
        censored={("BN", 3.0)},
        vals={("BN", 0.3): 0.80, ("BN", 1.0): 0.82, ("BN", 3.0): 0.90},
    )["BN"]
    rate, why = fitted.choose_fitted_rate(runs, FIT)
    assert rate == 1.0 and "0.820" in why  # 3.0 validates best but does not fit on every seed
    tie = _networks({"BN": 0.08})["BN"]
    assert fitted.choose_fitted_rate(tie, FIT)[0] == 0.3  # ties: the smaller rate
    none = _networks({"BN": 0.08}, censored={("BN", r) for r in (0.3, 1.0, 3.0)})["BN"]
    assert fitted.choose_fitted_rate(none, FIT) == (
        None,
        "fits at no rate of the grid on every seed",
    )


def test_regularization_compares_the_gap_at_matched_fit_behind_the_dropout_control():
    gaps = {"plain": 0.10, "BN": 0.06, "plain + dropout": 0.07, "BN + dropout": 0.03}
    judged = _regularize(_networks(gaps))
    assert outcome(judged.verdict) == HOLDS and set(judged.parts) == {"gap", "dropout control"}
    by = {c.name: c for c in judged.comparisons}
    assert by["gap"].diff.estimate == pytest.approx(-0.04)
    assert by["dropout, BN"].role == "decides" and by["dropout, plain"].role == "reference"
    same = _regularize(_networks({**gaps, "BN": 0.10}))
    assert outcome(same.verdict) == FAILS  # equal gaps at matched fit: no regularization shown
    blind = _regularize(_networks({**gaps, "BN + dropout": 0.06}))
    assert blind.verdict.startswith(f"{UNCLEAR}: {fitted.CANNOT_DETECT}")
    assert outcome(blind.parts["gap"]) == HOLDS  # shown, but not read


def test_regularization_names_the_censored_runs_and_needs_both_networks_to_fit():
    gaps = {"plain": 0.10, "BN": 0.06, "plain + dropout": 0.07, "BN + dropout": 0.03}
    unfit = {("plain + dropout", r) for r in (0.3, 1.0, 3.0)} | {("plain", 0.3)}
    judged = _regularize(_networks(gaps, censored=unfit))
    assert outcome(judged.verdict) == HOLDS  # plain fits at 1 and 3; plain + dropout is shown only
    assert "plain lr 0.3 on 5 of 5 seeds" in judged.verdict
    assert "dropout, plain" not in {c.name for c in judged.comparisons}
    no_plain = _regularize(_networks(gaps, censored={("plain", r) for r in (0.3, 1.0, 3.0)}))
    assert no_plain.verdict.startswith(f"{UNCLEAR}: plain LeNet fits at no rate")


def test_regularization_plans_each_network_at_every_rate_and_judges_them(tmp_path):
    from gluon_bn.study.study_report import markdown

    settings = get_study("regularization").defaults
    configs = CONFIGURATIONS["regularization"](settings)
    assert len(configs) == 4 * len(settings.grid)
    assert {c.settings["fit_loss"] for c in configs} == {FIT}
    runs = _networks({"plain": 0.10, "BN": 0.06, "plain + dropout": 0.07, "BN + dropout": 0.03})
    for c in configs:
        c.runs = runs[c.settings["network"]][c.settings["lr"]]
        for r in c.runs:
            r["fit_epoch"] = fitted.fit_epoch(r, FIT)
    record = _record("regularization", configs, settings)
    assert outcome(record.verdict) == HOLDS
    text = markdown(record)
    assert "**At matched fit**" in text and "| BN | 0.3 (chosen) | 5 of 5 |" in text
    old = [
        Configuration(
            n,
            {"network": n, "bn": "none", "dropout": 0.0},
            [{"seed": s, "train_acc": 0.99, "final_acc": 0.8, "gap": 0.19} for s in range(5)],
        )
        for n in ("plain", "BN", "plain + dropout", "BN + dropout")
    ]
    assert _record("regularization", old).verdict.startswith(f"{UNCLEAR}: {EARLIER}")


# --------------------------------------------------------------------------- figures and pages


def _curves_record(seeds=3):
    configs = [
        Configuration(
            name,
            {"bn": kind},
            [
                {
                    "seed": s,
                    "curve": [level - 0.05, level + 0.002 * s],
                    "final_acc": level + 0.002 * s,
                    "train_seconds": 5.0,
                    "diverged": False,
                }
                for s in range(seeds)
            ],
        )
        for name, kind, level in (
            ("plain", "none", 0.80),
            ("BN", "gluon", 0.86),
            ("noisy BN", "gluon", 0.85),
        )
    ]
    return _record("covariate-shift", configs)


def test_accuracy_axes_follow_the_data_and_every_seed_is_drawn():
    from gluon_bn.study.figures import data_limits, figure

    assert data_limits([0.80, 0.86]) == pytest.approx((0.7952, 0.8648))
    assert data_limits([0.5, 0.5]) == pytest.approx((0.4884, 0.5116))  # at least 0.02 wide
    assert data_limits([0.02, 0.99]) == (0.0, 1.0)
    fig = figure(_curves_record())
    ax = fig.axes[0]
    low, high = ax.get_ylim()
    assert 0.70 < low < 0.75 and 0.86 < high < 0.9  # the data's range, not 0 to 1
    thin = [line for line in ax.get_lines() if line.get_alpha() == 0.3]
    assert len(thin) == 3 * 3  # every seed of every configuration
    record = _record(
        "batch-noise",
        [
            Configuration(
                "BN", {"bn": "gluon", "eval_batch_sizes": [16, 64, 256, 1024]}, _noise_runs()
            )
        ],
    )
    ax = figure(record).axes[0]
    assert len([line for line in ax.get_lines() if line.get_alpha() == 0.35]) == 5
    assert ax.get_ylim()[0] > 0.8


def test_interval_rows_are_coloured_by_their_outcome_and_ratios_drawn_as_ratios():
    from matplotlib.colors import to_hex

    from gluon_bn.study.forest import OUTCOME_COLOURS, intervals, outcome_colour

    assert (
        outcome_colour({"outcome": "holds, below the margin"})
        == OUTCOME_COLOURS["holds, below the margin"]
        != OUTCOME_COLOURS[HOLDS]
    )
    rows = [
        dict(
            name=f"path {i}",
            label="ln(scratch s / built-in s) per epoch",
            claim="greater",
            margin=0.0953,
            role="decides",
            difference=d,
            lower=d - 0.2,
            upper=d + 0.2,
            confidence=0.95,
            n=3,
            outcome=o,
            reason="",
        )
        for i, (d, o) in enumerate(((1.7, HOLDS), (0.0, FAILS), (0.1, UNCLEAR)))
    ]
    record = StudyRecord(
        "compiled-speed",
        "c",
        "s",
        "m",
        "k",
        "scale",
        {"seeds": 3},
        {},
        [],
        f"{UNCLEAR}: x",
        comparisons=rows,
    )
    fig = intervals(record)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert "×1" in [t.get_text() for t in ax.get_xticklabels()]
    spans = [
        line
        for line in ax.get_lines()
        if len(line.get_xdata()) == 2 and line.get_ydata()[0] == line.get_ydata()[1]
    ]
    colours = [to_hex(line.get_color()) for line in spans]
    assert colours == [to_hex(OUTCOME_COLOURS[o]) for o in (HOLDS, FAILS, UNCLEAR)]
    assert spans[0].get_xdata()[0] == pytest.approx(2.7183**1.5, rel=1e-3)  # exp(lower)
    for text in fig.texts:  # the title fits: wrapped to the figure's width
        assert all(len(line) <= 8.5 * 13 for line in text.get_text().split("\n"))


def test_no_effect_size_is_printed_from_fewer_than_five_seeds():
    from gluon_bn.study.comparison import compare, effect_shown
    from gluon_bn.study.stats import paired

    three = compare("x", "a − b", paired([1.0, 2.0, 3.0], [0.0, 0.1, 0.3]), "greater", 0.1)
    five = compare(
        "x", "a − b", paired([1.0, 2.0, 3.0, 2, 1], [0.0, 0.1, 0.3, 0, 0]), "greater", 0.1
    )
    assert "d_z" not in three.text() and "d_z" in five.text()
    assert not effect_shown(-360.0, "d_z", 3) and effect_shown(0.5, "d", 10)


def test_a_study_page_opens_with_the_claim_the_verdict_and_the_interval_figure():
    from gluon_bn.site import study_page

    record = _curves_record()
    page = study_page(record)
    order = [
        page.index(mark)
        for mark in (
            "# Study `covariate-shift`",
            "**Claim**",
            "**Verdict**",
            "covariate-shift-intervals.png)",
            "**Criterion.**",
            "| comparison |",
        )
    ]
    assert order == sorted(order)
    assert page.count(":::{container} wide-table") >= 2 and "overflow" not in page
    table = page.index("| configuration |")
    assert page.rindex(":::{container} wide-table", 0, table) > page.index("## The runs")


@pytest.mark.skipif(not (RESULTS / "regularization.json").exists(), reason="no committed record")
def test_the_committed_records_of_the_earlier_designs_say_how_to_rerun():
    from gluon_bn.study.study_record import load_study_record
    from gluon_bn.study.summary import rejudge

    for name in ("batch-noise", "regularization"):
        record = load_study_record(RESULTS / f"{name}.json")
        if earlier_design(name, record.configurations):
            again = rejudge(record)  # regenerate's path: no crash, and a clear way on
            assert again.verdict.startswith(f"{UNCLEAR}: {EARLIER}")
            assert get_study(name).deciding_command() in again.verdict
