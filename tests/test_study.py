"""gluon-bn study (issue 18): criteria on made-up numbers, the command's refusals, divergence as
data, resuming, one quick study end to end, and the committed results agreeing with themselves."""

import dataclasses
import io
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from gluon_bn.study import criteria, judging, stats
from gluon_bn.study.judges import judge
from gluon_bn.study.judging import outcome
from gluon_bn.study.plans import ABLATIONS, CONFIGURATIONS
from gluon_bn.study.registry import STUDIES, Settings, get_study
from gluon_bn.study.stats import FAILS, HOLDS, UNCLEAR
from gluon_bn.study.study_record import load_study_record

RESULTS = Path(__file__).resolve().parents[1] / "results" / "studies"


def word(verdict):
    return outcome(verdict)


# --------------------------------------------------------------------------- criteria


def stated(study, name):
    return get_study(study).stated(name)


def test_interval_is_mean_and_sample_sd():
    a = judging.interval([0.8, 0.82, 0.84])
    assert a.mean == pytest.approx(0.82) and a.sd == pytest.approx(0.02)
    assert judging.interval([0.3]).sd == 0


def test_every_verdict_names_its_outcome_first():
    with pytest.raises(ValueError):
        outcome("maybe: who knows")
    assert outcome("does not hold: x") == FAILS and outcome("holds: x") == HOLDS


def test_every_study_states_its_comparisons_margins_and_deciding_scale():
    for study in STUDIES.values():
        assert study.comparisons and study.deciding, study.name
        text = study.statement()
        for claimed in study.comparisons:
            assert claimed.claim in stats.CLAIMS and claimed.margin > 0
            assert claimed.text() in text  # the margin is printed before the study runs
        assert f"{stats.CONFIDENCE:.0%}" in text


def test_fewer_than_three_seeds_is_inconclusive_everywhere():
    two = [0.9, 0.91]
    lr, other = (
        stated("learning-rate", "largest training rate"),
        stated("learning-rate", "at each rate"),
    )
    runs = [_run(seed, [0.5, 0.9]) for seed in (0, 1)]
    verdicts = [
        criteria.faster(
            [[0.1, 0.5, 0.7]] * 2, [[0.8, 0.85, 0.9]] * 2, stated("faster", "train_ch5"), 0.65
        ),
        criteria.learning_rate([1, 10], [runs, runs], [runs, runs], lr, other),
        criteria.batch_noise(
            [16, 256],
            [two, two],
            two,
            two,
            *(stated("batch-noise", n) for n in ("noisy", "shrinks", "whole data")),
        ),
        criteria.regularization(
            {net: {1.0: [{"seed": s} for s in (0, 1)]} for net in ("plain", "BN")},
            0.3,
            stated("regularization", "gap"),
            stated("regularization", "dropout, BN"),
        ),
        criteria.covariate_shift(
            two,
            two,
            two,
            *(stated("covariate-shift", n) for n in ("BN helps", "above plain", "keeps most")),
        ),
        criteria.compiled_speed(
            {"p": ([5.0, 5.1], [1.0, 1.0])},
            [0.9, 0.9],
            stated("compiled-speed", "faster"),
            stated("compiled-speed", "because interpreted"),
        ),
        criteria.ablation(two, two, stated("ablations", "mean-only")),
        criteria.tuned_ablation(
            [{"seed": s, "final_acc": 0.9, "chosen_lr": 1.0} for s in (0, 1)],
            [{"seed": s, "final_acc": 0.8, "chosen_lr": 0.3} for s in (0, 1)],
            stated("ablations", "mean-only"),
        ),
    ]
    assert all(j.verdict.startswith(f"{UNCLEAR}: 2 seed(s)") for j in verdicts), verdicts


def test_failure_to_train_is_defined_against_chance():
    ok = {"loss": [2.2, 1.0], "final_acc": 0.6}
    assert judging.failure(ok) is None
    assert "diverged" in judging.failure({"diverged": True, "diverged_at": "diverged"})
    assert "not finite" in judging.failure({"loss": [2.0, None], "final_acc": 0.5})
    above = judging.failure({"loss": [30.0, 23.0], "final_acc": 0.5})  # BN at lr 100
    assert "above ln 10" in above and math.log(10) < 23.0
    just_above = judging.failure({"loss": [math.log(10) + 1e-3], "final_acc": 0.5})
    assert just_above and judging.failure({"loss": [math.log(10) - 1e-3], "final_acc": 0.5}) is None
    assert "twice chance" in judging.failure({"loss": [2.2], "final_acc": 2 * judging.CHANCE})
    assert judging.failure({"seconds_per_epoch": 3.0}) is None  # a timing run trains nothing


def test_faster():
    """Epochs to the fixed target (0.65), by the sign test; details in test_study_designs.py."""
    claimed = stated("faster", "train_ch5")
    plain = [[0.1, 0.1, 0.4, 0.6, 0.70], [0.1, 0.2, 0.5, 0.65, 0.72], [0.1, 0.1, 0.3, 0.6, 0.71]]
    bn = [[0.75, 0.8, 0.82, 0.84, 0.85]] * 3
    judged = criteria.faster(plain, bn, claimed, 0.65)
    assert judged.comparisons[0].diff.estimate == -4 and judged.comparisons[0].kind == "sign"
    # three seeds: the sign test's smallest p is 1/8, so nothing can hold or fail yet
    assert word(judged.verdict) == UNCLEAR and "smallest possible p is 0.12" in judged.verdict
    slow = [[0.1, 0.1, 0.1, 0.2, 0.5]] * 3  # never reaches the target: after epoch 5
    assert "BN/plain: seed 0 after 5/5" in criteria.faster(plain, slow, claimed, 0.65).verdict


def _run(seed, curve, loss=None, diverged=False):
    """A learning-rate run as the record keeps it: test accuracy and training loss per epoch."""
    run = {
        "seed": seed,
        "curve": list(curve),
        "final_acc": None if diverged else curve[-1],
        "loss": list(loss) if loss is not None else [2.0 - 0.1 * i for i in range(len(curve))],
        "diverged": diverged,
    }
    if diverged:
        run["diverged_at"] = f"epoch {len(run['loss']) + 1}"
    return run


TRAINED = [0.5, 0.75, 0.82]  # reaches 0.7: trains
PLATEAU = [0.1, 0.12, 0.11]  # never leaves the starting plateau: stuck
EXPLODED = dict(curve=[0.1, 0.1, 0.1], loss=[507.0, 690.1, 674.2])  # plain LeNet at lr 100
NAN = dict(curve=[0.3, 0.1, 0.1], loss=[2.1], diverged=True)  # the loop raised


def test_learning_rate_flags_each_run_from_its_stored_numbers():
    exploded = _run(4, **EXPLODED)  # the loop's guard never fired, the loss is 674
    assert not exploded["diverged"]
    assert criteria.divergence(exploded).startswith(
        "diverged: loss above 2 ln 10 = 4.605 from epoch 1 to the end (final 674)"
    )
    assert criteria.flagged(exploded) == criteria.divergence(exploded) and not criteria.stuck(
        exploded
    )
    assert not criteria.trains(exploded)
    plateau = _run(0, PLATEAU, loss=[2.31, 2.31, 2.31])
    assert criteria.divergence(plateau) is None
    assert criteria.stuck(plateau) == "stuck: best test accuracy 0.120 at most twice chance (0.2)"
    assert criteria.flagged(plateau).startswith("stuck")
    assert "non-finite" in criteria.divergence(_run(0, **NAN))
    assert "not finite at epoch 2" in criteria.divergence(_run(0, [0.5, 0.1], loss=[2.0, None]))
    recovered = _run(0, [0.1, 0.6, 0.72], loss=[9.0, 3.0, 0.9])  # rose above 2 ln 10, came back
    assert criteria.flagged(recovered) is None and criteria.trains(recovered)
    late = _run(0, [0.5, 0.6, 0.1], loss=[1.0, 3.0, 7.0])
    assert "from epoch 3 to the end" in criteria.divergence(late)
    # trains: reached 0.7 at some epoch (the best, not the last) without diverging
    assert criteria.trains(_run(0, [0.5, 0.71, 0.65])) and not criteria.trains(_run(0, [0.5, 0.69]))
    assert not criteria.trains(_run(0, [0.75, 0.8, 0.1], loss=[1.0], diverged=True))
    assert judging.TRAINS_AT == 0.7 and judging.DIVERGED_LOSS == pytest.approx(2 * math.log(10))


def _sweep(grid, trains_up_to, top_flag=None, seeds=range(6)):
    """Per rate, one run per seed: it trains at rates up to trains_up_to[seed] (None: none),
    is stuck above that, and at the top rate `top_flag` (dict of _run keywords) when given."""
    sweep = []
    for rate in grid:
        at = []
        for seed in seeds:
            limit = trains_up_to[seed]
            if top_flag is not None and rate == grid[-1]:
                at.append(_run(seed, **top_flag))
            elif limit is not None and rate <= limit:
                at.append(_run(seed, TRAINED))
            else:
                at.append(_run(seed, PLATEAU, loss=[2.31] * 3))
        sweep.append(at)
    return sweep


def test_learning_rate():
    lr = stated("learning-rate", "largest training rate")
    other = stated("learning-rate", "at each rate")
    assert lr.test == "sign" and lr.margin > 0 and other.role == "reference"
    grid = [0.3, 1, 3, 10, 30, 100]
    plain = _sweep(grid, [1, 1, 1, 1, 1, 3], top_flag=EXPLODED)
    bn = _sweep(grid, [30] * 6, top_flag=NAN)
    judged = criteria.learning_rate(grid, plain, bn, lr, other)
    assert word(judged.verdict) == HOLDS
    deciding = judged.comparisons[0]
    assert (deciding.name, deciding.role, deciding.kind, deciding.p) == (
        lr.name,
        "decides",
        "sign",
        1 / 64,
    )
    assert list(deciding.values) == pytest.approx([math.log2(30)] * 5 + [math.log2(10)])
    assert (deciding.diff.lower, deciding.diff.upper) == pytest.approx(
        (math.log2(10), math.log2(30))
    )
    assert deciding.diff.confidence == 1 - 2 / 64
    assert [c.role for c in judged.comparisons[1:]] == ["reference"] * 6
    assert [c.name for c in judged.comparisons[1:]] == [f"lr {g:g}" for g in grid]
    # the verdict names the largest rates per seed and the flags per rate and network
    assert "seed 0 30/1" in judged.verdict and "seed 5 30/3" in judged.verdict
    assert "lr 3 plain 0/5, BN 0/0" in judged.verdict  # five plain runs stuck
    assert "lr 100 plain 6/0, BN 6/0" in judged.verdict  # loss 674 and NaN: both diverged
    assert "96.9% interval" in judged.verdict and "exact sign test over 6 seeds" in judged.verdict

    swapped = criteria.learning_rate(grid, bn, plain, lr, other)
    assert word(swapped.verdict) == FAILS and "mirrored p 0.016" in swapped.verdict
    mixed = criteria.learning_rate(
        grid, _sweep(grid, [1, 1, 1, 1, 30, 30], top_flag=EXPLODED), bn, lr, other
    )
    assert word(mixed.verdict) == UNCLEAR and "4 of 6 seeds above 0" in mixed.verdict
    narrow = criteria.learning_rate(grid, plain, _sweep(grid, [30, 30, 100, 30, 30, 30]), lr, other)
    assert word(narrow.verdict) == UNCLEAR and "too narrow" in narrow.verdict
    assert "BN LeNet on seed(s) 2" in narrow.verdict and narrow.comparisons[0].outcome == UNCLEAR
    never = criteria.learning_rate(grid, _sweep(grid, [None] * 6, top_flag=EXPLODED), bn, lr, other)
    assert word(never.verdict) == HOLDS and "seed 0 30/none" in never.verdict
    assert "none: below the grid, counted one rung below it, at lr 0.09" in never.verdict
    rung = math.log2(1 / 0.3)  # one rung below 0.3: the grid's first step, in log2
    assert never.comparisons[0].values[0] == pytest.approx(math.log2(30) - (math.log2(0.3) - rung))
    both_never = criteria.learning_rate(
        grid, _sweep(grid, [None] * 6), _sweep(grid, [None] * 6), lr, other
    )
    assert word(both_never.verdict) == FAILS  # ties count against the claim
    # Holm over the study's family: one deciding comparison, so its adjusted p is its p
    adjusted = judging.with_holm(
        lambda holm: criteria.learning_rate(grid, plain, bn, lr, other, holm=holm)
    )
    assert adjusted.comparisons[0].p_holm == 1 / 64 and adjusted.comparisons[0].survives
    assert all(c.p_holm is None for c in adjusted.comparisons[1:])  # shown rows: not in it


def test_learning_rate_record_lists_diverged_and_stuck_runs():
    from gluon_bn.study.judges import record_of
    from gluon_bn.study.study_report import markdown

    study = get_study("learning-rate")
    settings = replace(study.defaults, seeds=6, grid=(0.3, 1.0, 3.0, 10.0, 30.0, 100.0))
    configs = CONFIGURATIONS["learning-rate"](settings)
    grid = list(settings.grid)
    sweeps = {
        "plain": _sweep(grid, [1, 1, 1, 1, 1, 3], top_flag=EXPLODED),
        "BN": _sweep(grid, [30] * 6, top_flag=NAN),
    }
    for config in configs:
        config.runs = sweeps[config.settings["network"]][grid.index(config.settings["lr"])]
    record = record_of(study, settings, settings.as_dict(), {}, configs)
    assert word(record.verdict) == HOLDS
    why = {(f["configuration"], f["seed"]): f["why"] for f in record.failures}
    assert why[("plain lr 100", 4)].startswith("diverged: loss above 2 ln 10")  # loss 674
    assert why[("BN lr 100", 0)].startswith("diverged: the loop stopped")
    assert why[("plain lr 3", 0)].startswith("stuck:") and ("plain lr 3", 5) not in why
    sign = record.comparisons[0]
    assert (sign["kind"], sign["p"], sign["p_holm"], sign["holm_survives"]) == (
        "sign",
        1 / 64,
        1 / 64,
        True,
    )
    assert sign["method"] == "exact sign test over 6 seeds, ties against the claim"
    text = markdown(record)
    assert (
        "| plain lr 100 | network plain, bn none, lr 100.0 | 0.100 ± 0.000 | 6 | 6 | 0 | 0 | 6 |"
        in text
    )
    assert "2 ln 10 = 4.605" in text and "diverged: loss above 2 ln 10" in text
    assert "median +4.91" in text and "96.9%: +3.32 to +4.91" in text


def test_holm_runs_over_a_studys_deciding_comparisons():
    """Three comparisons that each hold alone at p ≈ 0.018 do not once their family is counted."""
    claims = [stated("covariate-shift", n) for n in ("BN helps", "above plain", "keeps most")]
    plain, bn, noisy = [0.60] * 3, [0.62, 0.63, 0.64], [0.64, 0.66, 0.68]
    alone = criteria.covariate_shift(plain, bn, noisy, *claims)
    assert alone.verdict == f"{HOLDS}: above plain: {HOLDS}; keeps most: {HOLDS}"
    family = judging.with_holm(
        lambda holm: criteria.covariate_shift(plain, bn, noisy, *claims, holm=holm)
    )
    for c in family.comparisons:
        assert c.p == pytest.approx(0.0175, abs=5e-4) and c.p_holm == pytest.approx(3 * c.p)
        assert c.outcome == UNCLEAR and c.demoted and "Holm-adjusted p" in c.reason
    assert word(family.verdict) == UNCLEAR and "no benefit to explain" in family.verdict
    # the one place: judges.judge adjusts every study's family before composing its verdicts
    from gluon_bn.study.judges import record_of
    from gluon_bn.study.study_record import Configuration
    from gluon_bn.study.summary import holm_cell, summary

    configs = [
        Configuration(
            name, {}, [{"seed": s, "final_acc": v, "curve": [v]} for s, v in enumerate(values)]
        )
        for name, values in (("plain", plain), ("BN", bn), ("noisy BN", noisy))
    ]
    study = get_study("covariate-shift")
    settings = replace(study.defaults, seeds=3)
    record = record_of(study, settings, settings.as_dict(), {}, configs)
    assert record.verdict == family.verdict
    assert all(c["holm_demoted"] and c["holm_family"] == 3 for c in record.comparisons)
    cell = holm_cell(record)
    assert cell.startswith("0 of 3 (held alone, not after Holm: BN helps (adjusted p 0.053); ")
    text = summary([record])
    assert "family-wise error rate at 0.05" in text and cell in text


def test_a_conjunction_names_a_part_shown_below_its_margin():
    small, large = "holds, below the margin: a", "holds: b"
    assert (
        judging.combine({"1": small, "2": large})
        == "holds, below the margin: 1: holds, below the margin; 2: holds"
    )
    assert word(judging.combine({"1": small, "2": large})) == HOLDS
    assert word(judging.combine({"1": small, "2": "inconclusive: c"})) == UNCLEAR
    matters = stated("ablations", "mean-only")  # greater, margin 0.01
    full = [0.855, 0.86, 0.857]
    judged = criteria.ablation(full, [0.852, 0.856, 0.853], matters)
    assert judged.verdict.startswith("holds, below the margin: ")


# batch-noise and regularization (their current designs): tests/test_study_noise_fit.py


def test_covariate_shift():
    claims = [stated("covariate-shift", n) for n in ("BN helps", "above plain", "keeps most")]
    plain, bn = [0.60, 0.62, 0.61], [0.85, 0.86, 0.855]
    judged = criteria.covariate_shift(plain, bn, [0.83, 0.845, 0.83], *claims)
    assert judged.verdict == f"{HOLDS}: above plain: {HOLDS}; keeps most: {HOLDS}"
    assert word(criteria.covariate_shift(plain, bn, [0.60, 0.625, 0.61], *claims).verdict) == FAILS
    assert word(criteria.covariate_shift(plain, bn, [0.65, 0.85, 0.73], *claims).verdict) == UNCLEAR
    assert "no benefit" in criteria.covariate_shift(plain, plain, bn, *claims).verdict


def test_compiled_speed_names_both_parts():
    claims = stated("compiled-speed", "faster"), stated("compiled-speed", "because interpreted")
    slower = {"a": ([6.0, 6.5, 7.0], [1.0, 1.05, 1.0]), "b": ([2.0, 2.1, 2.2], [1.0, 1.0, 1.02])}
    assert word(criteria.compiled_speed(slower, [0.8, 0.85, 0.9], *claims).verdict) == HOLDS
    operators = criteria.compiled_speed(slower, [0.05, 0.04, 0.06], *claims)
    assert operators.verdict == f"{FAILS}: faster: {HOLDS}; because interpreted: {FAILS}"
    same = {"a": ([1.0, 1.01, 0.99], [1.0, 1.0, 1.0])}
    assert word(criteria.compiled_speed(same, [0.9, 0.92, 0.95], *claims).verdict) == FAILS
    assert word(criteria.compiled_speed(slower, [0.4, 0.7, 0.5], *claims).verdict) == UNCLEAR


def test_compiled_speed_shows_the_native_layer_beside_the_verdict_without_deciding_it():
    claims = stated("compiled-speed", "faster"), stated("compiled-speed", "because interpreted")
    native = stated("compiled-speed", "native")
    slower = {"a": ([6.0, 6.5, 7.0], [1.0, 1.05, 1.0])}
    alone = criteria.compiled_speed(slower, [0.05, 0.04, 0.06], *claims)
    for native_s, expected in (([1.0, 1.01, 0.99], HOLDS), ([2.0, 2.1, 2.05], FAILS)):
        judged = criteria.compiled_speed(
            slower, [0.05, 0.04, 0.06], *claims, {"native": (native, native_s, [1.0, 1.0, 1.0])}
        )
        assert judged.verdict == alone.verdict  # shown, not deciding
        row = judged.comparisons[-1]
        assert (row.name, row.role, row.outcome) == ("native", "reference", expected)
        ratios = [a / b for a, b in zip(native_s, [1.0, 1.0, 1.0])]
        assert math.isclose(
            math.exp(row.diff.estimate), math.exp(sum(map(math.log, ratios)) / 3), rel_tol=1e-12
        )


def test_ablation_rules_and_combination():
    # the bias is no longer an ablation with a verdict: an identity, checked and stated as a
    # fact (test_study_designs.py)
    matters = stated("ablations", "mean-only")
    full = [0.85, 0.86, 0.85]
    judge_ = lambda ablated, claimed: word(criteria.ablation(full, ablated, claimed).verdict)
    assert judge_([0.70, 0.71, 0.70], matters) == HOLDS
    assert judge_([0.85, 0.861, 0.851], matters) == FAILS  # equivalence shown
    assert judge_([0.80, 0.90, 0.84], matters) == UNCLEAR
    with pytest.raises(KeyError):
        stated("ablations", "bias")
    h, f, u = "holds: a", "does not hold: b", "inconclusive: c"
    assert judging.combine({"1": h, "2": h}) == "holds: 1: holds; 2: holds"
    assert word(judging.combine({"1": h, "2": f, "3": u})) == FAILS
    assert word(judging.combine({"1": h, "2": u})) == UNCLEAR


def test_runs_of_different_seeds_are_compared_unpaired():
    claimed = stated("ablations", "mean-only")
    full = judging.Seeded([0.85, 0.86, 0.85], [0, 1, 2])
    ablated = judging.Seeded([0.70, 0.71, 0.70], [3, 4, 5])
    compared = criteria.ablation(full, ablated, claimed).comparisons[0]
    assert compared.diff.method.startswith("Welch t (unpaired")


# --------------------------------------------------------------------------- the command


def _cli(*args):
    from gluon_bn.cli import main

    return main(["study", *args])


def test_list_is_instant_and_loads_no_mxnet():
    code = (
        "import sys; from gluon_bn.cli import main; rc = main(['study', '--list']); "
        "import gluon_bn.study.plans, gluon_bn.study.study_report, gluon_bn.study.study_record; "
        "assert rc == 0 and 'mxnet' not in sys.modules, sorted(m for m in sys.modules if 'mx' in m)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    names = [line.split()[0] for line in proc.stdout.splitlines() if not line.startswith(" ")]
    assert names == list(STUDIES) and len(names) == 7


def test_unknown_study_lists_the_valid_ones(capsys, tmp_path):
    assert _cli("speed", "--out", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "unknown study 'speed'" in err and all(name in err for name in STUDIES)


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["learning-rate", "--fraction", "0.001"],
            "batch size 256 is larger than the 60 training images",
        ),
        (["batch-noise", "--grid", "8", "512", "--fraction", "0.005"], "batch size 512 is larger"),
        (
            ["learning-rate", "--grid", "1", "-0.1"],
            "every learning rate of the grid must be positive",
        ),
        (["faster", "--seeds", "0"], "seeds must be a positive integer"),
        (["faster", "--first-seed", "-1"], "the first seed must be a non-negative integer"),
        (["faster", "--epochs", "0"], "epochs must be a positive integer, got 0"),
        (["faster", "--fraction", "1.5"], "fraction must lie in (0, 1], got 1.5"),
        ([], "give a study name (or all); --list names them"),
    ],
)
def test_impossible_settings_are_refused_before_anything_runs(capsys, tmp_path, args, message):
    out = tmp_path / "out"
    assert _cli(*args, "--out", str(out)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()  # refused before the output directory was even made


def test_regenerate_needs_a_folder_of_records(capsys, tmp_path):
    assert _cli("all", "--regenerate", "--out", str(tmp_path / "missing")) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"gluon-bn: error: {tmp_path / 'missing'} is not a folder of study records"


def test_settings_replace_only_what_is_given():
    study = get_study("batch-noise")
    s = study.settings(seeds=5, grid=[16, 32])
    assert (s.seeds, s.grid, s.epochs) == (5, (16, 32), study.defaults.epochs)
    assert Settings.from_dict(s.as_dict()) == s
    assert study.settings(quick=True).seeds == 1


def test_a_first_seed_shifts_the_seeds_and_is_stated_only_when_used():
    from gluon_bn.cli import build_parser
    from gluon_bn.study.runner import schedule

    study = get_study("faster")
    s = study.settings(seeds=3, first_seed=5)
    assert list(s.seed_numbers) == [5, 6, 7]
    assert s.as_dict()["first_seed"] == 5 and Settings.from_dict(s.as_dict()) == s
    # a record written before the first seed existed reads, and writes, as it did
    assert "first_seed" not in study.settings(seeds=3).as_dict()
    assert Settings.from_dict(study.settings(seeds=3).as_dict()).first_seed == 0
    configs = CONFIGURATIONS["faster"](s)
    order = schedule(configs, s.seed_numbers)
    assert [seed for seed, _ in order] == [5] * len(configs) + [6] * len(configs) + [7] * len(
        configs
    )
    assert [c.name for _, c in order[: len(configs)]] == [c.name for c in configs]
    assert [c.name for _, c in order[len(configs) : 2 * len(configs)]] == [
        c.name for c in reversed(configs)
    ]
    made = study.command(3, 10, 1.0, first_seed=5)
    assert "--first-seed 5" in made and "--first-seed" not in study.command(3, 10, 1.0)
    args = build_parser().parse_args(made.split()[1:])
    assert args.first_seed == 5
    with pytest.raises(ValueError, match="first seed must be a non-negative integer, got -1"):
        study.settings(first_seed=-1)


def test_scale_note_names_the_reduction():
    study = get_study("covariate-shift")
    note = study.scale_note(replace(study.defaults, fraction=0.4, epochs=5))
    assert (
        note.startswith("Scale: smaller than the documents'")
        and "40% of the training images" in note
    )
    full = replace(study.defaults, fraction=1.0, test_fraction=1.0, epochs=10)
    assert study.scale_note(full) == "Scale: the documents' full training set and epochs."


# --------------------------------------------------------------------------- runs, divergence, resuming


def test_divergence_is_data_not_a_crash():
    from gluon_bn.records import EpochStats
    from gluon_bn.run.training import TrainingDiverged
    from gluon_bn.study.experiments import guarded

    history = []

    def train():
        history.append(EpochStats(1, 2.0, 0.3, 0.4, 1.0, 0.9, 100.0))
        raise TrainingDiverged(2, 7, float("nan"))

    outcome_ = guarded(train, history, 4, "test_acc")
    assert outcome_["diverged"] and outcome_["diverged_at"] == "epoch 2, batch 7"
    assert outcome_["final_acc"] is None and outcome_["curve"] == [0.4, 0.1, 0.1, 0.1]


def test_a_real_nan_loss_is_recorded_as_diverged(fashion_root):
    from gluon_bn.study.experiments import Experiment

    settings = Settings(seeds=1, epochs=2, fraction=0.005, test_fraction=0.01, batch_size=64)
    exp = Experiment(get_study("learning-rate"), settings)
    _, _, result = exp.train({"bn": "none"}, 0, lr=1e30, batch_size=64)
    assert result["diverged"] and result["final_acc"] is None
    assert result["curve"] == [0.1, 0.1]


def _fake_measure(calls, stop_after=None):
    """Made-up numbers for covariate-shift: BN and noisy BN far above plain."""
    level = {"plain": 0.6, "BN": 0.85, "noisy BN": 0.84}

    def measure(config, seed):
        if stop_after is not None and len(calls) == stop_after:
            raise KeyboardInterrupt
        calls.append((config.name, seed))
        acc = level[config.name] + 0.005 * seed
        return {
            "final_acc": acc,
            "curve": [acc - 0.1, acc],
            "train_seconds": 1.0,
            "diverged": False,
        }

    return measure


def test_resume_skips_finished_runs_and_redoes_the_interrupted_one(tmp_path):
    from gluon_bn.study.runner import run_study

    study = get_study("covariate-shift")
    settings = replace(study.defaults, seeds=3)
    first = []
    with pytest.raises(KeyboardInterrupt):
        run_study(
            study,
            settings,
            tmp_path,
            measure=_fake_measure(first, stop_after=4),
            progress=False,
            file=io.StringIO(),
        )
    assert len(first) == 4 and not (tmp_path / "covariate-shift.json").exists()
    second = []
    record, paths = run_study(
        study, settings, tmp_path, measure=_fake_measure(second), progress=False, file=io.StringIO()
    )
    assert len(second) == 9 - 4 and not set(first) & set(second)
    assert outcome(record.verdict) == HOLDS
    assert [r["seed"] for r in record.configuration("BN").runs] == [0, 1, 2]
    third = []
    run_study(
        study, settings, tmp_path, measure=_fake_measure(third), progress=False, file=io.StringIO()
    )
    assert third == []  # everything finished: nothing runs again
    other = []  # other options: the progress is set aside, everything runs
    run_study(
        study,
        replace(settings, epochs=2),
        tmp_path,
        measure=_fake_measure(other),
        progress=False,
        file=io.StringIO(),
    )
    assert len(other) == 9
    assert load_study_record(paths["json"]).options["epochs"] == 2


def test_a_run_past_a_pilot_trains_fresh_seeds_and_its_report_says_which(tmp_path):
    from gluon_bn.study.runner import run_study
    from gluon_bn.study.study_report import markdown

    study = get_study("covariate-shift")
    calls = []
    record, _ = run_study(
        study,
        replace(study.defaults, seeds=3, first_seed=5),
        tmp_path,
        measure=_fake_measure(calls),
        progress=False,
        file=io.StringIO(),
    )
    assert sorted({seed for _, seed in calls}) == [5, 6, 7] and len(calls) == 9
    assert [r["seed"] for r in record.configuration("BN").runs] == [5, 6, 7]
    assert record.options["first_seed"] == 5 and outcome(record.verdict) == HOLDS
    text = markdown(record)
    assert "Settings: 3 seed(s) (seeds 5 to 7), " in text and "--first-seed 5" in text


def test_the_record_keeps_the_environment_the_runs_ran_in(tmp_path):
    from gluon_bn.study.study_record import Progress

    path, options = tmp_path / "x.progress.json", {"seeds": 3}
    store = Progress(path, "x", options)
    assert store.environment({"runtime": "now"}) == {"runtime": "now"}
    store.add("a", 0, {"seed": 0}, {"runtime": "first"})
    store.add("a", 1, {"seed": 1}, {"runtime": "first"})
    resumed = Progress(path, "x", options)  # another process continues
    resumed.add("a", 2, {"seed": 2}, {"runtime": "second"})
    again = Progress(path, "x", options)
    assert again.environment({"runtime": "judge"}) == {
        "runtime": "first",
        "resumed_with": ["second"],
    }


def test_diverged_runs_reach_the_record_and_the_report(tmp_path):
    from gluon_bn.study.runner import run_study
    from gluon_bn.study.study_report import markdown

    study = get_study("learning-rate")
    settings = replace(study.defaults, seeds=3, grid=(1.0, 100.0))

    def measure(config, seed):
        if config.settings["lr"] == 100.0:
            return {"final_acc": None, "curve": [0.1], "diverged": True, "diverged_at": "epoch 1"}
        return {
            "final_acc": 0.8 if config.name.startswith("BN") else 0.5,
            "curve": [0.5],
            "diverged": False,
        }

    record, _ = run_study(
        study, settings, tmp_path, measure=measure, progress=False, file=io.StringIO()
    )
    assert "too narrow" not in record.verdict
    row = next(line for line in markdown(record).splitlines() if line.startswith("| BN lr 100"))
    assert row.rstrip(" |").endswith("3") and "0.100" in row  # 3 diverged, at chance


# --------------------------------------------------------------------------- variants of BN


def test_partial_batch_norm_and_noise():
    from gluon_bn.bn.variants import AffineNoise, PartialBatchNorm, combine_moments
    from gluon_bn.runtime.loader import mx

    X = mx.nd.random.normal(2, 3, shape=(8, 3, 4, 4))
    x = X.asnumpy()
    mean, var = x.mean(axis=(0, 2, 3), keepdims=True), x.var(axis=(0, 2, 3), keepdims=True)
    expected = {
        "both": (x - mean) / np.sqrt(var + 1e-5),
        "mean": x - mean,
        "variance": x / np.sqrt(var + 1e-5),
    }
    for part, want in expected.items():
        layer = PartialBatchNorm(3, 4, part=part)
        layer.initialize()
        with mx.autograd.record():
            got = layer(X)
        np.testing.assert_allclose(got.asnumpy(), want, rtol=1e-4, atol=1e-4)
    noise = AffineNoise(3, shift=1.0, spread=2.0)
    assert noise(X) is X  # prediction mode: identity
    with mx.autograd.record():
        assert not np.allclose(noise(X).asnumpy(), x)
    m, v = combine_moments(
        [32, 96],
        [x[:2].mean(axis=(0, 2, 3)), x[2:].mean(axis=(0, 2, 3))],
        [x[:2].var(axis=(0, 2, 3)), x[2:].var(axis=(0, 2, 3))],
    )
    np.testing.assert_allclose(m, mean.ravel(), rtol=1e-5)
    np.testing.assert_allclose(v, var.ravel(), rtol=1e-4)


# --------------------------------------------------------------------------- one study end to end


def test_quick_study_end_to_end(fashion_root, tmp_path, capsys):
    out = tmp_path / "studies"
    assert (
        _cli("covariate-shift", "--quick", "--fraction", "0.01", "--quiet", "--out", str(out)) == 0
    )
    record = load_study_record(out / "covariate-shift.json")
    assert record.verdict.startswith(f"{UNCLEAR}: 1 seed(s)")
    assert [c.name for c in record.configurations] == ["plain", "BN", "noisy BN"]
    assert all(len(c.runs) == 1 and c.runs[0]["seed"] == 0 for c in record.configurations)
    assert (out / "covariate-shift.md").read_text().startswith("Scale: smaller than the documents'")
    assert (out / "covariate-shift.png").stat().st_size > 0
    assert "| covariate-shift |" in (out / "README.md").read_text()
    assert "verdict: inconclusive" in capsys.readouterr().out


# --------------------------------------------------------------------------- the committed results


def _committed():
    return (
        sorted(p for p in RESULTS.glob("*.json") if p.stem in STUDIES) if RESULTS.is_dir() else []
    )


@pytest.mark.skipif(not _committed(), reason="no study records committed under results/studies yet")
def test_each_report_names_the_command_that_makes_it_again_and_the_cli_takes_it():
    """The command in every committed report parses, and parsed it asks for the record's
    seeds, epochs, share of the data, batch size, grid and OpenMP threads."""
    import re
    import shlex

    from gluon_bn.cli import build_parser
    from gluon_bn.study.summary import load_records

    for record in load_records(RESULTS):
        text = (RESULTS / f"{record.study}.md").read_text()
        made = re.search(r"Made again by `([^`]+)`", text).group(1)
        args = build_parser().parse_args(shlex.split(made)[1:])
        again = get_study(record.study).settings(
            seeds=args.seeds,
            first_seed=args.first_seed,
            epochs=args.epochs,
            fraction=args.fraction,
            batch_size=args.batch_size,
            grid=args.grid,
        )
        o = record.options
        assert (again.seeds, again.epochs, again.fraction, again.batch_size) == (
            o["seeds"],
            o["epochs"],
            o["fraction"],
            o["batch_size"],
        ), record.study
        assert list(again.grid) == list(o["grid"] or again.grid), record.study
        assert again.first_seed == o.get("first_seed", 0), record.study
        assert (args.name, args.threads) == (record.study, record.environment["omp_threads"])


def test_committed_records_reports_and_summary_agree():
    from gluon_bn.study.study_report import markdown
    from gluon_bn.study.summary import load_records, rejudge, summary

    records = load_records(RESULTS)
    assert [r.study for r in records] == list(STUDIES)
    for record in records:
        settings = Settings.from_dict(record.options)
        # a record of an earlier design keeps its own configurations (and options) until it
        # is re-run; its verdict says so
        earlier = "earlier design" in record.verdict
        if not earlier:
            names = [c.name for c in CONFIGURATIONS[record.study](settings)]
            assert [c.name for c in record.configurations] == names
        assert all(len(c.runs) >= 3 for c in record.configurations), record.study
        again = rejudge(record)  # the verdicts come from the runs, by today's criteria
        # (but for `stated`: when the criterion last changed is read from git's history when a
        # record is written, and the record keeps what it was then)
        mine, theirs = again.to_json(), record.to_json()
        mine.pop("stated", None), theirs.pop("stated", None)
        assert mine == theirs, record.study
        judged = judge(record.study, record.configurations, settings)
        assert record.verdict == judged.verdict and record.verdicts == judged.parts
        assert outcome(record.verdict) in (HOLDS, FAILS, UNCLEAR)
        if record.study == "ablations":
            assert set(record.verdicts) == set(ABLATIONS)
        assert earlier or record.comparisons, record.study
        for comparison in record.comparisons:  # each carries what its outcome is read from
            for key in ("difference", "lower", "upper", "method", "confidence", "margin", "claim"):
                assert comparison[key] is not None, (record.study, key)
        assert (RESULTS / f"{record.study}.md").read_text() == markdown(record) + "\n"
        assert (RESULTS / f"{record.study}.png").exists()
        assert (RESULTS / f"{record.study}-intervals.png").exists()
    assert (RESULTS / "README.md").read_text() == summary(records)


def test_ctrl_c_names_the_command_that_continues():
    import argparse

    from gluon_bn.cli import _interrupted_message

    args = argparse.Namespace(command="study", out=Path("res"), checkpoint_dir=None)
    text = _interrupted_message(args, ["study", "faster", "--out", "res"])
    assert "Runs that finished are saved under res." in text
    assert text.splitlines()[-1] == "  gluon-bn study faster --out res"


@pytest.mark.skipif(not _committed(), reason="no study records committed under results/studies yet")
def test_reports_flag_failures_outliers_and_the_deciding_scale():
    import statistics

    from gluon_bn.study.study_report import OUTLIER_FACTOR, deciding_estimate, markdown, outliers
    from gluon_bn.study.summary import rejudge

    rate = rejudge(load_study_record(RESULTS / "learning-rate.json"))  # today's flags
    bn_100 = rate.configuration("BN lr 100")
    assert not any(run["diverged"] for run in bn_100.runs)  # the loop's guard never fired...
    failed = [f for f in rate.failures if f["configuration"] == "BN lr 100"]
    assert len(failed) == len(bn_100.runs)  # ...but every run failed to train
    assert all(f["why"].startswith("diverged: loss above 2 ln 10") for f in failed)
    assert "failed to train" in markdown(rate) and "2 ln 10" in markdown(rate)
    # the committed faster record is at its deciding scale with no slow run: a copy cut to 3
    # seeds and half the images, one run made 10x slower, is what the report must flag
    faster = load_study_record(RESULTS / "faster.json")
    for config in faster.configurations:
        config.runs = [dict(run) for run in config.runs[:3]]
    faster.configurations[0].runs[0]["train_seconds"] *= 10
    faster = rejudge(
        dataclasses.replace(faster, options={**faster.options, "seeds": 3, "fraction": 0.5})
    )
    slow = outliers(faster)
    for o in slow:
        times = faster.configuration(o["configuration"]).values(o["key"])
        assert o["value"] > OUTLIER_FACTOR * statistics.median(times)
    text = markdown(faster)
    assert slow and "Timing outliers" in text and faster.environment["runtime"] in text
    assert "below the deciding scale" in text and faster.deciding["command"] in text
    expected = sum(statistics.median(c.values("train_seconds")) for c in faster.configurations)
    d, o = faster.deciding, faster.options
    expected *= d["seeds"] * d["fraction"] / o["fraction"] * d["epochs"] / o["epochs"]
    assert deciding_estimate(faster) == pytest.approx(expected)


@pytest.mark.skipif(not _committed(), reason="no study records committed under results/studies yet")
def test_regenerate_rejudges_without_touching_the_runs(tmp_path):
    import json
    import shutil

    from gluon_bn.study.study_record import SCHEMA_VERSION
    from gluon_bn.study.summary import regenerate

    committed = json.loads((RESULTS / "ablations.json").read_text())
    stale = dict(committed, schema=1, verdict="holds: made up", comparisons=[])  # version 1
    (tmp_path / "ablations.json").write_text(json.dumps(stale))
    shutil.copy(RESULTS / "faster.json", tmp_path)
    assert _cli("all", "--regenerate", "--out", str(tmp_path)) == 0

    new = json.loads((tmp_path / "ablations.json").read_text())
    assert new["configurations"] == committed["configurations"]
    assert new["schema"] == SCHEMA_VERSION
    # the verdict and comparisons come back from the runs alone, as committed
    assert new["verdict"] == committed["verdict"] != stale["verdict"]
    assert new["comparisons"] == committed["comparisons"] and new["comparisons"]
    assert new["stated"] == committed["stated"]
    assert (tmp_path / "ablations-intervals.png").stat().st_size > 0
    assert "| faster |" in (tmp_path / "README.md").read_text()
    assert [r.study for r in regenerate(tmp_path)] == ["faster", "ablations"]


@pytest.mark.skipif(not _committed(), reason="no study records committed under results/studies yet")
def test_runs_of_the_earlier_ablations_design_are_not_read(tmp_path):
    import json

    record = json.loads((RESULTS / "ablations.json").read_text())
    for config in record["configurations"]:  # every network at lr 1.0: no rate was chosen
        for run in config["runs"]:
            run.pop("chosen_lr", None)
    (tmp_path / "ablations.json").write_text(json.dumps(record))
    assert _cli("ablations", "--regenerate", "--out", str(tmp_path)) == 0

    new = json.loads((tmp_path / "ablations.json").read_text())
    assert new["verdict"].startswith("inconclusive: these runs were made at the earlier design")
    assert "gluon-bn study ablations" in new["verdict"] and new["comparisons"] == []


def test_a_notebook_shows_a_report_without_links_to_the_files_beside_its_record():
    from gluon_bn.study.notebook import unlink_siblings
    from gluon_bn.study.study_report import markdown
    from gluon_bn.study.summary import summary

    record = load_study_record(Path(__file__).parents[1] / "results" / "studies" / "faster.json")
    for text, label in ((markdown(record), "faster-intervals.png"), (summary([record]), "report")):
        assert "](faster" in text  # results/studies and the site link them
        shown = unlink_siblings(text)
        assert "](faster" not in shown and label in shown
    assert (
        unlink_siblings("[site](https://x.org/a.md) [b](b.png)") == "[site](https://x.org/a.md) b"
    )
