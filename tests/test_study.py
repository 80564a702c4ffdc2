"""gluon-bn study (issue 18): criteria on made-up numbers, the command's refusals, divergence as
data, resuming, one quick study end to end, and the committed results agreeing with themselves."""
import io
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from gluon_bn.study import criteria, stats
from gluon_bn.study.criteria import FAILS, HOLDS, UNCLEAR, outcome
from gluon_bn.study.plans import ABLATIONS, CONFIGURATIONS, judge
from gluon_bn.study.record import load_study_record
from gluon_bn.study.registry import STUDIES, Settings, get_study

RESULTS = Path(__file__).resolve().parents[1] / "results" / "studies"


def word(verdict):
    return outcome(verdict)


# --------------------------------------------------------------------------- criteria

def stated(study, name):
    return get_study(study).stated(name)


def test_interval_is_mean_and_sample_sd():
    a = criteria.interval([0.8, 0.82, 0.84])
    assert a.mean == pytest.approx(0.82) and a.sd == pytest.approx(0.02)
    assert criteria.interval([0.3]).sd == 0


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
    lr = stated("learning-rate", "at BN's largest training rate")
    verdicts = [
        criteria.faster([[0.1, 0.5, 0.7]] * 2, [[0.8, 0.85, 0.9]] * 2, stated("faster", "train_ch5")),
        criteria.learning_rate([1, 10], [two, [None, None]], [two, two], [0, 2], [0, 0], lr, lr),
        criteria.batch_noise([8, 256], [two, two], [[0.5, 0.5], two], [two, two],
                             *(stated("batch-noise", n) for n in ("noisy", "shrinks", "whole data"))),
        criteria.regularization(two, two, two, two, stated("regularization", "gap")),
        criteria.covariate_shift(two, two, two, *(stated("covariate-shift", n) for n in
                                                  ("BN helps", "above plain", "keeps most"))),
        criteria.compiled_speed({"p": ([5.0, 5.1], [1.0, 1.0])}, [0.9, 0.9],
                                stated("compiled-speed", "faster"),
                                stated("compiled-speed", "because interpreted")),
        criteria.ablation(two, two, stated("ablations", "bias")),
    ]
    assert all(j.verdict.startswith(f"{UNCLEAR}: 2 seed(s)") for j in verdicts), verdicts


def test_failure_to_train_is_defined_against_chance():
    ok = {"loss": [2.2, 1.0], "final_acc": 0.6}
    assert criteria.failure(ok) is None
    assert "diverged" in criteria.failure({"diverged": True, "diverged_at": "diverged"})
    assert "not finite" in criteria.failure({"loss": [2.0, None], "final_acc": 0.5})
    above = criteria.failure({"loss": [30.0, 23.0], "final_acc": 0.5})  # BN at lr 100
    assert "above ln 10" in above and math.log(10) < 23.0
    just_above = criteria.failure({"loss": [math.log(10) + 1e-3], "final_acc": 0.5})
    assert just_above and criteria.failure({"loss": [math.log(10) - 1e-3], "final_acc": 0.5}) is None
    assert "twice chance" in criteria.failure({"loss": [2.2], "final_acc": 2 * criteria.CHANCE})
    assert criteria.failure({"seconds_per_epoch": 3.0}) is None  # a timing run trains nothing


def test_faster():
    claimed = stated("faster", "train_ch5")
    plain = [[0.1, 0.1, 0.4, 0.6, 0.70], [0.1, 0.2, 0.5, 0.65, 0.72], [0.1, 0.1, 0.3, 0.6, 0.71]]
    bn = [[0.75, 0.8, 0.82, 0.84, 0.85]] * 3
    judged = criteria.faster(plain, bn, claimed)
    assert word(judged.verdict) == HOLDS and judged.comparisons[0].diff.estimate == -4
    slow = [[0.1, 0.1, 0.1, 0.2, 0.5]] * 3  # never reaches plain's final accuracy
    assert word(criteria.faster(plain, slow, claimed).verdict) == FAILS
    mixed = [[0.1, 0.1, 0.1, 0.72, 0.8], [0.1, 0.1, 0.1, 0.1, 0.8], [0.1, 0.1, 0.1, 0.2, 0.8]]
    assert word(criteria.faster(plain, mixed, claimed).verdict) == UNCLEAR
    same = [[0.1, 0.1, 0.4, 0.6, 0.70], [0.1, 0.2, 0.5, 0.65, 0.72], [0.1, 0.1, 0.3, 0.6, 0.71]]
    assert "within ±1" in criteria.faster(plain, same, claimed).verdict  # equivalent: fails
    stuck = criteria.faster(plain, bn, claimed, ["final accuracy 0.100 at most twice chance"])
    assert word(stuck.verdict) == UNCLEAR and "no accuracy to reach sooner" in stuck.verdict


def test_learning_rate():
    lr = stated("learning-rate", "at BN's largest training rate")
    other = stated("learning-rate", "at the other rates")
    grid = [0.1, 1, 10, 100]
    plain = [[0.5, 0.52, 0.5], [0.8, 0.5, 0.3], [0.1, 0.1, 0.1], [None, None, None]]
    bn = [[0.8, 0.8, 0.81], [0.85, 0.85, 0.86], [0.85, 0.84, 0.86], [None, 0.1, 0.1]]
    plain_failed, bn_failed = [0, 0, 3, 3], [0, 0, 0, 3]
    judged = criteria.learning_rate(grid, plain, bn, plain_failed, bn_failed, lr, other)
    assert word(judged.verdict) == HOLDS and "BN 10, plain 1" in judged.verdict
    assert [c.role for c in judged.comparisons] == ["reference", "reference", "decides", "reference"]
    swapped = criteria.learning_rate(grid, bn, plain, bn_failed, plain_failed, lr, other)
    assert word(swapped.verdict) == FAILS
    assert "too narrow" in criteria.learning_rate(grid, plain, bn, plain_failed, [0] * 4, lr,
                                                  other).verdict
    never = criteria.learning_rate(grid, plain, bn, [1] * 4, bn_failed, lr, other)
    assert word(never.verdict) == UNCLEAR and "at no rate" in never.verdict


def test_batch_noise():
    claims = [stated("batch-noise", n) for n in ("noisy", "shrinks", "whole data")]
    sizes = [8, 64, 256]
    moving = [[0.80, 0.81, 0.80]] * 3
    batch = [[0.60, 0.62, 0.61], [0.78, 0.79, 0.78], [0.80, 0.80, 0.81]]
    population = [[0.81, 0.812, 0.80]] * 3
    judged = criteria.batch_noise(sizes, moving, batch, population, *claims)
    assert word(judged.verdict) == HOLDS and set(judged.parts) == {"noisy", "shrinks", "whole data"}
    better = [[0.90, 0.91, 0.90]] + batch[1:]  # batch statistics win at the smallest batch
    assert word(criteria.batch_noise(sizes, moving, better, population, *claims).verdict) == FAILS
    worse_population = [[0.5, 0.52, 0.5]] * 3
    failed = criteria.batch_noise(sizes, moving, batch, worse_population, *claims)
    assert failed.verdict.startswith(f"{FAILS}: noisy: holds; shrinks: holds; whole data: {FAILS}")
    close = [[0.75, 0.84, 0.80]] + batch[1:]
    assert word(criteria.batch_noise(sizes, moving, close, population, *claims).verdict) == UNCLEAR


def test_regularization_treats_no_difference_as_the_ablations_do():
    claimed = stated("regularization", "gap")
    plain_train, plain_test = [0.99, 0.99, 0.98], [0.80, 0.81, 0.80]
    bn_train, bn_test = [0.99, 0.99, 0.99], [0.88, 0.87, 0.88]
    run = lambda *args: criteria.regularization(*args, claimed).verdict
    assert word(run(plain_train, plain_test, bn_train, bn_test)) == HOLDS
    assert word(run(bn_train, bn_test, plain_train, plain_test)) == FAILS
    same = run(plain_train, plain_test, plain_train, [0.801, 0.809, 0.80])
    assert word(same) == FAILS and "within ±0.01" in same  # equivalence shown (TOST)
    spread = run(plain_train, plain_test, plain_train, [0.76, 0.85, 0.80])
    assert word(spread) == UNCLEAR
    unfit = run([0.7] * 3, [0.69] * 3, bn_train, bn_test)
    assert word(unfit) == UNCLEAR and "did not fit" in unfit


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
    for native_s, outcome in (([1.0, 1.01, 0.99], HOLDS), ([2.0, 2.1, 2.05], FAILS)):
        judged = criteria.compiled_speed(slower, [0.05, 0.04, 0.06], *claims,
                                         {"native": (native, native_s, [1.0, 1.0, 1.0])})
        assert judged.verdict == alone.verdict                    # shown, not deciding
        row = judged.comparisons[-1]
        assert (row.name, row.role, row.outcome) == ("native", "reference", outcome)
        ratios = [a / b for a, b in zip(native_s, [1.0, 1.0, 1.0])]
        assert math.isclose(math.exp(row.diff.estimate),
                            math.exp(sum(map(math.log, ratios)) / 3), rel_tol=1e-12)


def test_ablation_rules_and_combination():
    matters, redundant = stated("ablations", "mean-only"), stated("ablations", "bias")
    full = [0.85, 0.86, 0.85]
    judge_ = lambda ablated, claimed: word(criteria.ablation(full, ablated, claimed).verdict)
    assert judge_([0.70, 0.71, 0.70], matters) == HOLDS
    assert judge_([0.85, 0.861, 0.851], matters) == FAILS  # equivalence shown
    assert judge_([0.80, 0.90, 0.84], matters) == UNCLEAR
    assert judge_([0.852, 0.858, 0.85], redundant) == HOLDS
    assert judge_([0.70, 0.71, 0.70], redundant) == FAILS
    assert judge_([0.82, 0.87, 0.83], redundant) == UNCLEAR
    h, f, u = "holds: a", "does not hold: b", "inconclusive: c"
    assert criteria.combine({"1": h, "2": h}) == "holds: 1: holds; 2: holds"
    assert word(criteria.combine({"1": h, "2": f, "3": u})) == FAILS
    assert word(criteria.combine({"1": h, "2": u})) == UNCLEAR


def test_runs_of_different_seeds_are_compared_unpaired():
    claimed = stated("ablations", "mean-only")
    full = criteria.Seeded([0.85, 0.86, 0.85], [0, 1, 2])
    ablated = criteria.Seeded([0.70, 0.71, 0.70], [3, 4, 5])
    comparison = criteria.ablation(full, ablated, claimed).comparisons[0]
    assert comparison.diff.method.startswith("Welch t (unpaired")


# --------------------------------------------------------------------------- the command

def _cli(*args):
    from gluon_bn.cli import main
    return main(["study", *args])


def test_list_is_instant_and_loads_no_mxnet():
    code = ("import sys; from gluon_bn.cli import main; rc = main(['study', '--list']); "
            "import gluon_bn.study.plans, gluon_bn.study.report, gluon_bn.study.record; "
            "assert rc == 0 and 'mxnet' not in sys.modules, sorted(m for m in sys.modules if 'mx' in m)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    names = [line.split()[0] for line in proc.stdout.splitlines() if not line.startswith(" ")]
    assert names == list(STUDIES) and len(names) == 7


def test_unknown_study_lists_the_valid_ones(capsys, tmp_path):
    assert _cli("speed", "--out", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "unknown study 'speed'" in err and all(name in err for name in STUDIES)


@pytest.mark.parametrize("args, message", [
    (["learning-rate", "--fraction", "0.001"], "batch size 256 is larger than the 60 training images"),
    (["batch-noise", "--grid", "8", "512", "--fraction", "0.005"], "batch size 512 is larger"),
    (["learning-rate", "--grid", "1", "-0.1"], "every learning rate of the grid must be positive"),
    (["faster", "--seeds", "0"], "seeds must be a positive integer"),
    (["faster", "--epochs", "0"], "epochs must be a positive integer, got 0"),
    (["faster", "--fraction", "1.5"], "fraction must lie in (0, 1], got 1.5"),
    ([], "give a study name (or all); --list names them"),
])
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


def test_scale_note_names_the_reduction():
    study = get_study("covariate-shift")
    note = study.scale_note(study.defaults)
    assert note.startswith("Scale: smaller than the documents'") and "40% of the training images" in note
    full = replace(study.defaults, fraction=1.0, test_fraction=1.0, epochs=10)
    assert study.scale_note(full) == "Scale: the documents' full training set and epochs."


# --------------------------------------------------------------------------- runs, divergence, resuming

def test_divergence_is_data_not_a_crash():
    from gluon_bn.run.training import TrainingDiverged
    from gluon_bn.records import EpochStats
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
        return {"final_acc": acc, "curve": [acc - 0.1, acc], "train_seconds": 1.0,
                "diverged": False}
    return measure


def test_resume_skips_finished_runs_and_redoes_the_interrupted_one(tmp_path):
    from gluon_bn.study.runner import run_study

    study = get_study("covariate-shift")
    settings = replace(study.defaults, seeds=3)
    first = []
    with pytest.raises(KeyboardInterrupt):
        run_study(study, settings, tmp_path, measure=_fake_measure(first, stop_after=4),
                  progress=False, file=io.StringIO())
    assert len(first) == 4 and not (tmp_path / "covariate-shift.json").exists()
    second = []
    record, paths = run_study(study, settings, tmp_path, measure=_fake_measure(second),
                              progress=False, file=io.StringIO())
    assert len(second) == 9 - 4 and not set(first) & set(second)
    assert outcome(record.verdict) == HOLDS
    assert [r["seed"] for r in record.configuration("BN").runs] == [0, 1, 2]
    third = []
    run_study(study, settings, tmp_path, measure=_fake_measure(third), progress=False,
              file=io.StringIO())
    assert third == []  # everything finished: nothing runs again
    other = []  # other options: the progress is set aside, everything runs
    run_study(study, replace(settings, epochs=2), tmp_path, measure=_fake_measure(other),
              progress=False, file=io.StringIO())
    assert len(other) == 9
    assert load_study_record(paths["json"]).options["epochs"] == 2


def test_the_record_keeps_the_environment_the_runs_ran_in(tmp_path):
    from gluon_bn.study.record import Progress

    path, options = tmp_path / "x.progress.json", {"seeds": 3}
    store = Progress(path, "x", options)
    assert store.environment({"runtime": "now"}) == {"runtime": "now"}
    store.add("a", 0, {"seed": 0}, {"runtime": "first"})
    store.add("a", 1, {"seed": 1}, {"runtime": "first"})
    resumed = Progress(path, "x", options)  # another process continues
    resumed.add("a", 2, {"seed": 2}, {"runtime": "second"})
    again = Progress(path, "x", options)
    assert again.environment({"runtime": "judge"}) == {"runtime": "first", "resumed_with": ["second"]}


def test_diverged_runs_reach_the_record_and_the_report(tmp_path):
    from gluon_bn.study.report import markdown
    from gluon_bn.study.runner import run_study

    study = get_study("learning-rate")
    settings = replace(study.defaults, seeds=3, grid=(1.0, 100.0))

    def measure(config, seed):
        if config.settings["lr"] == 100.0:
            return {"final_acc": None, "curve": [0.1], "diverged": True, "diverged_at": "epoch 1"}
        return {"final_acc": 0.8 if config.name.startswith("BN") else 0.5, "curve": [0.5],
                "diverged": False}

    record, _ = run_study(study, settings, tmp_path, measure=measure, progress=False,
                          file=io.StringIO())
    assert "too narrow" not in record.verdict
    row = next(line for line in markdown(record).splitlines() if line.startswith("| BN lr 100"))
    assert row.rstrip(" |").endswith("3") and "0.100" in row  # 3 diverged, at chance


# --------------------------------------------------------------------------- variants of BN

def test_partial_batch_norm_and_noise():
    from gluon_bn._mxnet import mx
    from gluon_bn.bn.variants import AffineNoise, PartialBatchNorm, combine_moments

    X = mx.nd.random.normal(2, 3, shape=(8, 3, 4, 4))
    x = X.asnumpy()
    mean, var = x.mean(axis=(0, 2, 3), keepdims=True), x.var(axis=(0, 2, 3), keepdims=True)
    expected = {"both": (x - mean) / np.sqrt(var + 1e-5), "mean": x - mean,
                "variance": x / np.sqrt(var + 1e-5)}
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
    m, v = combine_moments([32, 96], [x[:2].mean(axis=(0, 2, 3)), x[2:].mean(axis=(0, 2, 3))],
                           [x[:2].var(axis=(0, 2, 3)), x[2:].var(axis=(0, 2, 3))])
    np.testing.assert_allclose(m, mean.ravel(), rtol=1e-5)
    np.testing.assert_allclose(v, var.ravel(), rtol=1e-4)


# --------------------------------------------------------------------------- one study end to end

def test_quick_study_end_to_end(fashion_root, tmp_path, capsys):
    out = tmp_path / "studies"
    assert _cli("covariate-shift", "--quick", "--fraction", "0.01", "--quiet",
                "--out", str(out)) == 0
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
    return sorted(p for p in RESULTS.glob("*.json") if p.stem in STUDIES) if RESULTS.is_dir() else []


@pytest.mark.skipif(not _committed(), reason="no study records committed under results/studies yet")
def test_each_report_names_the_command_that_makes_it_again_and_the_cli_takes_it():
    """The command in every committed report parses, and parsed it asks for the record's
    seeds, epochs, share of the data, batch size, grid and OpenMP threads."""
    import re
    import shlex
    from gluon_bn.cli import build_parser
    from gluon_bn.study.report import load_records

    for record in load_records(RESULTS):
        text = (RESULTS / f"{record.study}.md").read_text()
        made = re.search(r"Made again by `([^`]+)`", text).group(1)
        args = build_parser().parse_args(shlex.split(made)[1:])
        again = get_study(record.study).settings(
            seeds=args.seeds, epochs=args.epochs, fraction=args.fraction,
            batch_size=args.batch_size, grid=args.grid)
        o = record.options
        assert (again.seeds, again.epochs, again.fraction, again.batch_size) == \
            (o["seeds"], o["epochs"], o["fraction"], o["batch_size"]), record.study
        assert list(again.grid) == list(o["grid"] or again.grid), record.study
        assert (args.name, args.threads) == (record.study, record.environment["omp_threads"])


def test_committed_records_reports_and_summary_agree():
    from gluon_bn.study.report import load_records, markdown, rejudge, summary

    records = load_records(RESULTS)
    assert [r.study for r in records] == list(STUDIES)
    for record in records:
        settings = Settings.from_dict(record.options)
        names = [c.name for c in CONFIGURATIONS[record.study](settings)]
        assert [c.name for c in record.configurations] == names
        assert all(len(c.runs) >= 3 for c in record.configurations), record.study
        again = rejudge(record)  # the verdicts come from the runs, by today's criteria
        assert again.to_json() == record.to_json(), record.study
        judged = judge(record.study, record.configurations, settings)
        assert record.verdict == judged.verdict and record.verdicts == judged.parts
        assert outcome(record.verdict) in (HOLDS, FAILS, UNCLEAR)
        if record.study == "ablations":
            assert set(record.verdicts) == set(ABLATIONS)
        assert record.comparisons, record.study
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

    from gluon_bn.study.report import OUTLIER_FACTOR, deciding_estimate, markdown, outliers

    rate = load_study_record(RESULTS / "learning-rate.json")
    bn_100 = rate.configuration("BN lr 100")
    assert not any(run["diverged"] for run in bn_100.runs)  # the loop's guard never fired...
    failed = [f for f in rate.failures if f["configuration"] == "BN lr 100"]
    assert len(failed) == len(bn_100.runs)  # ...but every run failed to train
    assert "failed to train" in markdown(rate) and "above ln 10" in markdown(rate)
    faster = load_study_record(RESULTS / "faster.json")
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

    from gluon_bn.study.report import regenerate

    source = RESULTS / "ablations.json"
    old = json.loads(source.read_text())
    old.update(schema=1, verdict="holds: made up", comparisons=[])  # a stale version-1 record
    (tmp_path / "ablations.json").write_text(json.dumps(old))
    shutil.copy(RESULTS / "faster.json", tmp_path)
    assert _cli("all", "--regenerate", "--out", str(tmp_path)) == 0
    new = json.loads((tmp_path / "ablations.json").read_text())
    assert new["configurations"] == old["configurations"] and new["schema"] == 2
    assert new["verdict"] == json.loads(source.read_text())["verdict"] != "holds: made up"
    assert (tmp_path / "ablations-intervals.png").stat().st_size > 0
    assert "| faster |" in (tmp_path / "README.md").read_text()
    assert [r.study for r in regenerate(tmp_path)] == ["faster", "ablations"]


def test_a_notebook_shows_a_report_without_links_to_the_files_beside_its_record():
    from gluon_bn.study.report import markdown, summary
    from gluon_bn.study.walkthrough import unlink_siblings
    record = load_study_record(Path(__file__).parents[1] / "results" / "studies" / "faster.json")
    for text, label in ((markdown(record), "faster-intervals.png"), (summary([record]), "report")):
        assert "](faster" in text                      # results/studies and the site link them
        shown = unlink_siblings(text)
        assert "](faster" not in shown and label in shown
    assert unlink_siblings("[site](https://x.org/a.md) [b](b.png)") == "[site](https://x.org/a.md) b"
