"""The designs of faster, ablations, the scale discipline and "stated before the runs", on
made-up runs (and, for the bias identity and d2l.Trainer's count, on real batches).

faster: epochs to the fixed target FASTER_TARGET, a run that never reaches it counted after the
last epoch, the exact sign test with ties against the claim, Holm over the two loops (six seeds),
d2l.Trainer's held-out accuracy counted over the examples. ablations: each network at its best
rate that trains, chosen on a validation split carved from the training images; a network that
fails to train is never support; the bias identity a checked fact. Scale: the defaults are the
deciding scale, a smaller record is refused in one line, compiled-speed's rounds follow from the
committed timing spread. Stated before the runs: the registry entry and its constants, the
progress file's code states, the commits, and what the reports and the summary say."""

import ast
import functools
import io
import json
import math
import shlex
import shutil
import statistics
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from gluon_bn.study import ablated, criteria, distributions, reaching, stats
from gluon_bn.study import stated as stated_mod
from gluon_bn.study.judges import SPEED_PATHS, judge
from gluon_bn.study.judging import outcome
from gluon_bn.study.plans import BIAS_CHECK, CONFIGURATIONS, FULL_BN, LOOPS
from gluon_bn.study.registry import (
    BIAS_TOLERANCE,
    FASTER_TARGET,
    HELD_OUT_SHARE,
    SETTLING_STEPS,
    SPEED_SPREAD,
    STUDIES,
    Settings,
    get_study,
)
from gluon_bn.study.settings import SPEED_MARGIN, smaller_than
from gluon_bn.study.stats import FAILS, HOLDS, UNCLEAR
from gluon_bn.study.study_record import UNSTAMPED, Configuration, Progress

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "studies"
PHRASE = "stated before the runs"


def claimed(study, name):
    return get_study(study).stated(name)


# --------------------------------------------------------------------------- faster

EPOCHS = 10
PLAIN = [0.30, 0.40, 0.50, 0.55, 0.60, 0.66, 0.68, 0.69, 0.70, 0.71]  # reaches 0.65 at epoch 6
BN = [0.72, 0.76, 0.79, 0.80, 0.81, 0.82, 0.83, 0.84, 0.85, 0.86]  # at epoch 1
NEVER = [0.30, 0.40, 0.50, 0.55, 0.60, 0.61, 0.62, 0.63, 0.64, 0.645]  # never within 10


def _faster_configs(seeds, held_out="counted", loops=LOOPS):
    """faster's configurations with made-up runs: BN reaches the target at epoch 1, plain at 6."""
    settings = replace(get_study("faster").defaults, seeds=seeds)
    configs = CONFIGURATIONS["faster"](settings)
    for config in configs:
        curve = BN if config.settings["variant"] == "gluon" else PLAIN
        for seed in range(seeds):
            run = {
                "seed": seed,
                "curve": list(curve),
                "loss": [1.0, 0.6],
                "final_acc": curve[-1],
                "diverged": False,
                "train_seconds": 100.0,
            }
            if held_out and config.settings["loop"] in loops:
                run["held_out"] = held_out
            config.runs.append(run)
    return settings, configs


def test_epochs_to_the_target_counts_a_run_that_never_reaches_it_as_after_the_last_epoch():
    assert FASTER_TARGET == 0.65
    assert reaching.first_epoch_reaching(PLAIN, FASTER_TARGET) == 6
    assert reaching.epochs_to(PLAIN, FASTER_TARGET, EPOCHS) == 6
    assert reaching.epochs_to(BN, FASTER_TARGET, EPOCHS) == 1
    # reaching the target exactly counts; an epoch with no number is skipped
    assert reaching.epochs_to([0.5, None, 0.65, 0.7], 0.65, 4) == 3
    # never reached within the epochs: censored, counted after the last one (epochs + 1)
    assert reaching.first_epoch_reaching(NEVER, FASTER_TARGET) is None
    assert reaching.epochs_to(NEVER, FASTER_TARGET, EPOCHS) == EPOCHS + 1 == 11
    # epochs past the run's epochs do not count: reached at epoch 6 of a 5-epoch run is "after 5"
    assert reaching.epochs_to(PLAIN, FASTER_TARGET, 5) == 6
    # in the verdict: per seed "after 10" and how many seeds reached it
    judged = criteria.faster(
        [NEVER] * 3, [BN] * 3, claimed("faster", "train_ch5"), FASTER_TARGET, epochs=EPOCHS
    )
    assert "seed 0 1/after 10" in judged.verdict
    assert "never within 10 epochs counts as after epoch 10" in judged.verdict
    assert "plain reaches it on 0 of 3 seeds" in judged.verdict
    assert judged.comparisons[0].values == (1 - 11,) * 3  # BN 1 − plain 11 (censored)


def test_faster_reads_epochs_to_the_target_by_the_sign_test_ties_against_the_claim():
    loop = claimed("faster", "train_ch5")
    assert (loop.test, loop.claim) == ("sign", "less")
    # five seeds BN first (1 vs 6), one seed both censored: a tie, which counts against the claim
    plain, bn = [PLAIN] * 5 + [NEVER], [BN] * 5 + [NEVER]
    judged = criteria.faster(plain, bn, loop, FASTER_TARGET, epochs=EPOCHS)
    (c,) = judged.comparisons
    assert c.kind == "sign" and c.values == (-5.0,) * 5 + (0.0,)
    assert c.diff.n == 6  # the tie stays in n
    assert c.p == pytest.approx(7 / 64)  # P(Bin(6, 1/2) ≥ 5), not 1/32 as without the tie
    assert outcome(judged.verdict) == UNCLEAR
    # with the tie dropped (five seeds, all BN first) p would be 1/32 and it would hold alone
    alone = criteria.faster(plain[:5], bn[:5], loop, FASTER_TARGET, epochs=EPOCHS)
    assert alone.comparisons[0].p == pytest.approx(1 / 32) and outcome(alone.verdict) == HOLDS
    # every seed a tie (both censored): the mirrored test (difference ≥ 0) holds: does not hold
    ties = criteria.faster([NEVER] * 6, [NEVER] * 6, loop, FASTER_TARGET, epochs=EPOCHS)
    assert ties.comparisons[0].p == 1.0 and outcome(ties.verdict) == FAILS
    # BN later on every seed: does not hold
    later = criteria.faster([BN] * 6, [PLAIN] * 6, loop, FASTER_TARGET, epochs=EPOCHS)
    assert outcome(later.verdict) == FAILS
    # six seeds, BN first on all: holds on its own (p 1/64)
    six = criteria.faster([PLAIN] * 6, [BN] * 6, loop, FASTER_TARGET, epochs=EPOCHS)
    assert six.comparisons[0].p == pytest.approx(1 / 64) and outcome(six.verdict) == HOLDS


def test_faster_needs_six_seeds_to_hold_in_both_loops_after_holm():
    study = get_study("faster")
    assert study.defaults.seeds == study.deciding.seeds == 6
    settings, configs = _faster_configs(6)
    six = judge("faster", configs, settings)
    assert six.verdict.startswith(f"{HOLDS}: train_ch5: {HOLDS}; d2l.Trainer: {HOLDS}")
    assert {c.name for c in six.comparisons} == set(LOOPS)
    for c in six.comparisons:
        assert c.p == pytest.approx(1 / 64) and c.p_holm == pytest.approx(2 / 64)
        assert c.family == 2 and c.survives
    # five seeds: each loop alone at p 1/32, but Holm doubles it to 1/16 > 0.05: cannot hold
    settings, configs = _faster_configs(5)
    five = judge("faster", configs, settings)
    assert outcome(five.verdict) == UNCLEAR
    assert all(outcome(v) == UNCLEAR for v in five.parts.values()), five.parts
    for c in five.comparisons:
        assert c.p == pytest.approx(1 / 32) and c.p_holm == pytest.approx(2 / 32)
        assert c.demoted and "Holm-adjusted p" in c.reason
    # the smallest p at n seeds is 2^-n: 2 · 2^-6 ≤ 0.05 < 2 · 2^-5
    assert 2 * 2**-6 <= stats.FAMILY_LEVEL < 2 * 2**-5


def test_faster_does_not_judge_d2l_trainer_runs_whose_accuracy_was_averaged_per_batch():
    study = get_study("faster")
    command = study.deciding_command()
    averaged = [{"seed": s, "curve": BN} for s in range(6)]
    note = reaching.previous_design(averaged, "d2l.Trainer", command)
    assert note.startswith(f"{UNCLEAR}: ") and "re-run" in note and f"`{command}`" in note
    assert (
        reaching.previous_design(
            [dict(r, held_out="counted") for r in averaged], "d2l.Trainer", command
        )
        is None
    )
    # one run of the six averaged is enough not to judge the loop
    mixed = [dict(r, held_out="counted") for r in averaged[:5]] + averaged[5:]
    assert reaching.previous_design(mixed, "d2l.Trainer", command) is not None
    # train_ch5 always counted: judged whatever its runs say
    assert reaching.previous_design(averaged, "train_ch5", command) is None
    # in the study: d2l.Trainer runs without held_out "counted" are not judged, however
    # clearly their numbers favour BN; train_ch5's are
    settings, configs = _faster_configs(6, loops=("train_ch5",))
    judged = judge("faster", configs, settings)
    assert judged.parts["d2l.Trainer"] == reaching.previous_design(
        configs[2].runs + configs[3].runs, "d2l.Trainer", command
    )
    assert "mean of per-batch accuracies" in judged.parts["d2l.Trainer"]
    assert outcome(judged.parts["train_ch5"]) == HOLDS
    assert outcome(judged.verdict) == UNCLEAR
    assert [c.name for c in judged.comparisons] == ["train_ch5"]  # nothing read from the others
    # the same runs stamped "counted" are judged
    settings, configs = _faster_configs(6)
    assert outcome(judge("faster", configs, settings).parts["d2l.Trainer"]) == HOLDS


def test_the_faster_study_asks_d2l_trainer_for_the_count(monkeypatch):
    from gluon_bn.records import BookEpoch, EpochStats
    from gluon_bn.run import reproduce
    from gluon_bn.study import experiments

    calls = []

    def fake_run_variant(
        run,
        variant,
        seed,
        ctx,
        *,
        file=None,
        on_epoch_end=None,
        progress=True,
        val_acc="board",
        **kw,
    ):
        calls.append(
            {
                "loop": run.loop,
                "variant": variant,
                "seed": seed,
                "val_acc": val_acc,
                "epochs": run.epochs,
            }
        )
        for epoch, acc in enumerate(BN[: run.epochs], 1):
            if run.loop == "d2l.Trainer":
                on_epoch_end(BookEpoch(epoch, 1.0, 1.0, acc, 2.0))
            else:
                on_epoch_end(EpochStats(epoch, 1.0, 0.5, acc, 2.0, 2.0, 100.0))
        return {}

    monkeypatch.setattr(experiments, "run_variant", fake_run_variant)
    study = get_study("faster")
    settings = Settings(
        seeds=1, epochs=3, fraction=0.01, test_fraction=0.01, batch_size=128, lr=0.1
    )
    exp = experiments.Experiment(study, settings)
    for config in CONFIGURATIONS["faster"](settings):
        run = experiments.MEASURES["faster"](exp, config, 4)
        assert run["held_out"] == "counted" and run["curve"] == BN[:3], config.name
    assert [(c["loop"], c["variant"]) for c in calls] == [
        (loop, v) for loop in LOOPS for v in ("plain", "gluon")
    ]
    assert all(c["val_acc"] == "counted" and c["seed"] == 4 for c in calls)
    # run_variant hands the choice to d2l.Trainer's loop; reproduce keeps the book's number
    import inspect

    from gluon_bn.run import book

    assert inspect.signature(reproduce.run_variant).parameters["val_acc"].default == "board"
    assert inspect.signature(book.fit).parameters["val_acc"].default == "board"
    seen = []
    monkeypatch.setattr(
        book,
        "train_book_variant",
        lambda run, variant, seed, ctx, **kw: seen.append(kw["val_acc"]) or ([], None),
    )
    monkeypatch.setattr(reproduce, "_record", lambda *a: {})
    options = reproduce.RunOptions(
        variants=("gluon",),
        seeds=(0,),
        epochs=1,
        loop="d2l.Trainer",
        pipeline="d2l",
        dataset="fashion-mnist",
    )
    run = options.resolve(exp.recipe, dataset="fashion-mnist")
    reproduce.run_variant(run, "gluon", 0, None, file=io.StringIO(), val_acc="counted")
    reproduce.run_variant(run, "gluon", 0, None, file=io.StringIO())
    assert seen == ["counted", "board"]


def test_d2l_trainer_counts_held_out_accuracy_over_examples_only_when_asked(numpy_mode):
    d2l = pytest.importorskip("d2l.mxnet")
    from gluon_bn.models import LeNet
    from gluon_bn.run.book import fit
    from gluon_bn.run.training import seed_everything

    mnp = numpy_mode

    class Crafted(d2l.DataModule):
        """80 images in batches of 32: validation batches of 32, 32 and 16."""

        def __init__(self, X, y):
            super().__init__()
            self.batch_size, self.X, self.y = 32, X, y

        def get_dataloader(self, train):
            return self.get_tensorloader((self.X, self.y), train)

    def run(val_acc):
        seed_everything(0)
        model = LeNet(lr=0.0)  # plain LeNet at rate 0: its predictions do not change
        X = mnp.array(np.random.default_rng(0).random((80, 1, 28, 28)).astype("float32"))
        predicted = model(X).argmax(axis=1).asnumpy().astype("int32")
        # batch 1 all right, batch 2 all wrong, batch 3 (16 images) all right
        right = np.r_[np.ones(32), np.zeros(32), np.ones(16)].astype(bool)
        labels = np.where(right, predicted, (predicted + 1) % 10).astype("int32")
        seen = []
        board = model.plot
        model.plot = lambda key, value, train: (
            seen.append((key, train, float(value))),
            board(key, value, train),
        )
        (epoch,) = fit(
            model, Crafted(X, mnp.array(labels)), 1, num_gpus=0, quiet=True, val_acc=val_acc
        )
        batches = [v for key, train, v in seen if key == "acc" and not train]
        return epoch.val_acc, batches

    board, batches = run("board")
    assert batches == [1.0, 0.0, 1.0]  # three validation batches, 32/32/16
    assert board == pytest.approx(2 / 3)  # the book's number: the mean of per-batch accuracies
    counted, batches = run("counted")
    assert batches == [1.0, 0.0, 1.0]  # the board is drawn the same
    assert counted == pytest.approx(48 / 80)  # correct / examples
    with pytest.raises(ValueError, match="val_acc must be one of"):
        fit(LeNet(), Crafted(None, None), 1, val_acc="mean")


# --------------------------------------------------------------------------- ablations


def _good(seed, acc=0.86, lr=1.0):
    return {
        "seed": seed,
        "final_acc": acc + 0.002 * seed,
        "chosen_lr": lr,
        "loss": [1.0, 0.4],
        "diverged": False,
        "curve": [acc - 0.1, acc + 0.002 * seed],
        "train_seconds": 10.0,
    }


def _untrainable(seed):
    return {
        "seed": seed,
        "final_acc": None,
        "chosen_lr": None,
        "loss": [],
        "curve": [],
        "diverged": False,
        "train_seconds": 40.0,
        "untrainable": "fails to train at every rate of the grid (lr 0.1: final loss 2.4 "
        "above ln 10 = 2.303 (uniform guessing))",
    }


class FakeExperiment:
    """What measure_ablation reads of an Experiment: settings, arrays, train; it answers from
    `validation` (by rate) on the held-out split and `test` on the test set, and logs calls."""

    def __init__(self, settings, validation, test=0.85):
        self.settings, self.validation, self.test = settings, validation, test
        self.train_x, self.train_y = np.arange(600) * 10, np.arange(600) % 10
        self.test_x, self.test_y = np.arange(100) * 10 + 7, np.arange(100) % 10  # never in train
        self._arrays = (self.train_x, self.train_y, self.test_x, self.test_y)
        self.calls = []

    def arrays(self):
        return self._arrays

    def train(self, options, seed, *, lr, batch_size):
        fit_x, _, measured_x, _ = self.arrays()
        on_test = measured_x is self.test_x
        self.calls.append({"lr": lr, "fit": fit_x, "measured": measured_x, "test": on_test})
        numbers = self.validation[lr] if not on_test else {"final_acc": self.test, "loss": [0.4]}
        return None, None, {"diverged": False, "curve": [], "train_seconds": 1.0, **numbers}


def test_the_validation_split_is_carved_from_the_training_images():
    from gluon_bn.study.ablation_runs import split

    assert HELD_OUT_SHARE == pytest.approx(1 / 6)
    exp = FakeExperiment(get_study("ablations").defaults, {})
    part = split(exp)
    fit_x, fit_y, val_x, val_y = part.arrays()
    assert len(val_x) == 100 and len(fit_x) == 500  # the last sixth of the training images
    np.testing.assert_array_equal(np.r_[fit_x, val_x], exp.train_x)
    np.testing.assert_array_equal(np.r_[fit_y, val_y], exp.train_y)
    assert not set(val_x) & set(exp.test_x) and not set(fit_x) & set(val_x)
    assert exp.arrays()[2] is exp.test_x  # the experiment itself still measures on the test set
    assert part.settings is exp.settings
    # at the deciding scale: 10000 of the 60000 training images
    assert round(60000 * HELD_OUT_SHARE) == 10000
    assert "validation split (never the test set)" in get_study("ablations").measurement


def test_each_network_chooses_its_best_rate_that_trains_on_the_validation_split():
    from gluon_bn.study.ablation_runs import measure_ablation

    # choose_rate: the best final validation accuracy among the rates that train; ties to the
    # smaller rate; a rate that diverged, lost to uniform guessing or stayed at chance is out
    runs = [
        {"lr": 0.1, "final_acc": 0.80, "loss": [1.0, 0.5]},
        {"lr": 0.3, "final_acc": 0.86, "loss": [1.0, 0.4]},
        {"lr": 1.0, "final_acc": 0.86, "loss": [1.0, 0.4]},
        {"lr": 3.0, "final_acc": 0.90, "loss": [1.0, float("nan")]},
        {"lr": 10.0, "final_acc": 0.95, "diverged": True, "loss": [1.0]},
        {"lr": 30.0, "final_acc": 0.91, "loss": [1.0, 2.4]},
    ]
    rate, why = ablated.choose_rate(runs)
    assert rate == 0.3 and why == "lr 0.3 (validation accuracy 0.860)"
    assert ablated.choose_rate(runs[:1] + [{"lr": 3.0, "final_acc": 0.15, "loss": [2.0]}])[0] == 0.1
    none, why = ablated.choose_rate(runs[3:])
    assert none is None and all(f"lr {lr:g}: " in why for lr in (3, 10, 30))
    # one run of the study: every rate of the grid trained on the fitting part and measured on
    # the held-out sixth; the chosen one trained again on every training image, then tested
    settings = replace(get_study("ablations").defaults, grid=(0.1, 0.3, 1.0, 3.0))
    validation = {
        0.1: {"final_acc": 0.80, "loss": [0.5]},
        0.3: {"final_acc": 0.84, "loss": [0.4]},
        1.0: {"final_acc": 0.87, "loss": [0.4]},
        3.0: {"final_acc": 0.90, "loss": [2.5]},
    }  # best, but fails to train
    exp = FakeExperiment(settings, validation)
    run = measure_ablation(exp, Configuration("mean-only BN", {"bn": "mean-only"}), 2)
    assert run["chosen_lr"] == 1.0 and run["final_acc"] == 0.85
    assert [v["lr"] for v in run["validation"]] == [0.1, 0.3, 1.0, 3.0]
    assert [v["final_acc"] for v in run["validation"]] == [0.80, 0.84, 0.87, 0.90]
    selecting, final = exp.calls[:4], exp.calls[4:]
    assert [c["lr"] for c in selecting] == [0.1, 0.3, 1.0, 3.0]
    assert all(
        not c["test"] and len(c["fit"]) == 500 and len(c["measured"]) == 100 for c in selecting
    )
    assert len(final) == 1 and final[0]["lr"] == 1.0 and final[0]["test"]
    assert final[0]["fit"] is exp.train_x  # every training image
    assert run["train_seconds"] == 5.0 and run["final_seconds"] == 1.0


def test_a_network_that_fails_to_train_is_never_support_for_the_claim():
    from gluon_bn.study.ablation_runs import measure_ablation

    claim = claimed("ablations", "mean-only")
    full = [_good(s) for s in range(5)]
    # the ablated network trains at no rate on one seed: the others far below full BN
    ablated_runs = [_good(s, acc=0.40) for s in range(4)] + [_untrainable(4)]
    judged = ablated.tuned_ablation(full, ablated_runs, claim)
    assert outcome(judged.verdict) == UNCLEAR and ablated.FAILS_TO_TRAIN in judged.verdict
    assert "the ablated network on 1 of 5 seeds" in judged.verdict
    assert "not counted for the claim" in judged.verdict
    # the difference over the seeds both trained is shown, never deciding
    assert [c.role for c in judged.comparisons] == ["reference"]
    assert outcome(judged.comparisons[0].outcome) == HOLDS
    # failing at its chosen rate on the whole training set counts the same
    at_chosen = [_good(s, acc=0.40) for s in range(4)] + [dict(_good(4, acc=0.1), loss=[2.0, 2.5])]
    assert "at its chosen rate 1: final loss" in ablated.untrained(at_chosen[4])
    assert outcome(ablated.tuned_ablation(full, at_chosen, claim).verdict) == UNCLEAR
    # and so does the full BN network failing
    failed_full = full[:4] + [_untrainable(4)]
    judged = ablated.tuned_ablation(failed_full, [_good(s, acc=0.40) for s in range(5)], claim)
    assert outcome(judged.verdict) == UNCLEAR and "the full BN network on 1 of 5" in judged.verdict
    # a network failing on every seed: nothing at all to compare, still not support
    judged = ablated.tuned_ablation(full, [_untrainable(s) for s in range(5)], claim)
    assert outcome(judged.verdict) == UNCLEAR and judged.comparisons == []
    # in the study: that ablation inconclusive, so the study cannot hold
    settings = replace(get_study("ablations").defaults, seeds=5)
    configs = CONFIGURATIONS["ablations"](settings)
    for c in configs:
        c.runs = (
            full
            if c.name == FULL_BN
            else [_bias_run(s) for s in range(5)]
            if c.name == BIAS_CHECK
            else ablated_runs
            if c.name == "mean-only BN"
            else [_good(s, acc=0.40) for s in range(5)]
        )
    study = judge("ablations", configs, settings)
    assert outcome(study.parts["mean-only"]) == UNCLEAR
    assert all(outcome(v) == HOLDS for k, v in study.parts.items() if k != "mean-only")
    assert outcome(study.verdict) == UNCLEAR
    # a run that trains at no rate is not trained further
    exp = FakeExperiment(settings, {lr: {"final_acc": 0.1, "loss": [2.4]} for lr in settings.grid})
    run = measure_ablation(exp, Configuration("mean-only BN", {"bn": "mean-only"}), 0)
    assert run["chosen_lr"] is None and run["final_acc"] is None
    assert run["untrainable"].startswith("fails to train at every rate of the grid")
    assert not any(c["test"] for c in exp.calls) and len(exp.calls) == len(settings.grid)
    assert ablated.untrained(run) == run["untrainable"]


def _bias_run(seed, change=1e-13):
    return {
        "seed": seed,
        "layers": 4,
        "steps": SETTLING_STEPS,
        "training_change": change,
        "constant_gradient": 2e-12,
        "prediction_change": 3e-13,
        "training_change_float32": 2e-4,
        "per_layer": [],
    }


def test_the_ablations_record_states_the_bias_identity_as_a_fact_not_a_verdict():
    from gluon_bn.study.judges import record_of
    from gluon_bn.study.study_report import markdown

    study = get_study("ablations")
    assert "bias" not in study.ablations
    with pytest.raises(KeyError):
        study.stated("bias")
    settings = replace(study.defaults, seeds=3)
    configs = CONFIGURATIONS["ablations"](settings)
    assert configs[-1].name == BIAS_CHECK and configs[-1].settings["check"] == "bias identity"
    for c in configs:
        c.runs = (
            [_bias_run(s) for s in range(3)]
            if c.name == BIAS_CHECK
            else [_good(s, acc=0.86 if c.name == FULL_BN else 0.70) for s in range(3)]
        )
    record = record_of(study, settings, settings.as_dict(), {}, configs)
    (fact,) = record.facts
    assert fact.startswith("Checked, a fact and not a verdict: the bias before BN is redundant")
    assert f"float tolerance {BIAS_TOLERANCE:g}" in fact and "4 nn.BatchNorm layers" in fact
    assert f"once {SETTLING_STEPS} training steps" in fact
    # not a verdict: no part, no comparison and no failure of the check's runs
    assert set(record.verdicts) == set(study.ablations)
    assert not any("bias" in c["name"] for c in record.comparisons)
    assert not any(f["configuration"] == BIAS_CHECK for f in record.failures)
    assert "bias" not in record.verdict
    assert record.to_json()["facts"] == [fact]
    assert f"**Checked fact.** {fact}" in markdown(record).splitlines()
    # a check beyond the tolerance is stated as such, still as a fact
    worse = ablated.bias_fact([_bias_run(0), _bias_run(1, change=1e-3)], BIAS_TOLERANCE)
    assert "is NOT shown redundant" in worse and "not confirmed" in worse
    assert ablated.bias_fact([], BIAS_TOLERANCE) is None
    assert ablated.bias_fact([{"seed": 0}], BIAS_TOLERANCE) is None  # runs of an earlier design


def test_the_bias_identity_holds_on_a_real_batch_and_the_check_can_fail(fashion_root, monkeypatch):
    from gluon_bn.study import ablation_runs
    from gluon_bn.study.experiments import Experiment

    settings = Settings(seeds=1, epochs=1, fraction=0.005, test_fraction=0.01, batch_size=64)
    exp = Experiment(get_study("ablations"), settings)
    run = ablation_runs.measure_ablation(
        exp, Configuration(BIAS_CHECK, {"bn": "gluon", "check": "bias identity"}), 0
    )
    assert run["layers"] == 4 and run["steps"] == SETTLING_STEPS == 400
    for key in ("training_change", "constant_gradient", "prediction_change"):
        assert 0 <= run[key] <= BIAS_TOLERANCE, (key, run[key])
    # float32 rounds over a channel's values: visible, far above float64's
    assert run["training_change_float32"] > run["training_change"]
    assert "is redundant" in ablated.bias_fact([run], BIAS_TOLERANCE)
    # without settling steps the moving statistics still start at 0 and 1: prediction mode
    # sees the constant, and the check says the identity is not shown
    monkeypatch.setattr(ablation_runs, "SETTLING_STEPS", 0)
    unsettled = ablation_runs.bias_identity(exp, 0)
    assert unsettled["prediction_change"] > 1e-2
    assert unsettled["training_change"] <= BIAS_TOLERANCE  # training mode is unaffected
    assert "is NOT shown redundant" in ablated.bias_fact([unsettled], BIAS_TOLERANCE)


# --------------------------------------------------------------------------- scale discipline


def test_every_studys_defaults_are_its_deciding_scale():
    from gluon_bn.cli.arguments import build_parser
    from gluon_bn.study.command import plan

    for study in STUDIES.values():
        d, s = study.deciding, study.defaults
        assert d is not None, study.name
        assert (s.fraction, s.epochs, s.seeds) == (d.fraction, d.epochs, d.seeds), study.name
        assert study.below_deciding(s) == [], study.name
        assert study.settings() == s  # `gluon-bn study NAME` with no flags runs it
        assert study.below_deciding(study.quick), study.name  # --quick is below it
        # the deciding command, parsed as the command line parses it, gives the defaults
        words = shlex.split(study.deciding_command())
        assert words[:3] == ["gluon-bn", "study", study.name]
        ((_, parsed),) = plan(build_parser().parse_args(words[1:]))
        assert parsed == s, study.name
        args = build_parser().parse_args(["study", study.name])
        assert plan(args) == [(study, s)]


def _record_options(study, **larger):
    return {**get_study(study).defaults.as_dict(), "quick": False, **larger}


def test_a_smaller_record_is_refused_in_one_line_before_anything_trains(tmp_path):
    out = tmp_path / "studies"
    out.mkdir()
    record = out / "faster.json"
    record.write_text(json.dumps({"study": "faster", "options": _record_options("faster")}))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code = (
        "import sys; from gluon_bn.cli import main; "
        f"rc = main(['study', 'faster', '--seeds', '3', '--out', {str(out)!r}]); "
        "print(rc, 'mxnet' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["2", "False"], (proc.stdout, proc.stderr)  # MXNet never loaded
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(
        f"gluon-bn: error: study faster: {record} holds a larger record (seeds 3 < 6)"
    )
    assert "--allow-smaller" in err and "--out DIR" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing written

    from gluon_bn.cli.arguments import build_parser
    from gluon_bn.study.command import check

    def checked(*argv):
        check(build_parser().parse_args(["study", *argv, "--out", str(out)]))

    checked("faster")  # the same settings: resuming, not refused
    checked("faster", "--seeds", "8")  # larger: not refused
    checked("faster", "--seeds", "3", "--allow-smaller")  # allowed
    with pytest.raises(ValueError, match=r"holds a larger record \(seeds 1 < 6, epochs 1 < 10"):
        checked("faster", "--quick")
    with pytest.raises(ValueError, match="study faster: "):
        checked("all", "--quick")
    # a progress file of a larger run is refused the same way
    record.unlink()
    (out / "faster.progress.json").write_text(json.dumps({"options": _record_options("faster")}))
    with pytest.raises(ValueError) as refused:
        checked("faster", "--epochs", "5")
    assert "holds a larger progress file (epochs 5 < 10)" in str(refused.value)
    assert "\n" not in str(refused.value)


def test_smaller_settings_are_named_field_by_field(tmp_path):
    options = {
        "seeds": 6,
        "epochs": 10,
        "fraction": 1.0,
        "test_fraction": 0.5,
        "batch_size": 512,
        "lr": 3.0,
    }
    s = Settings(seeds=3, epochs=5, fraction=0.25, test_fraction=0.1, batch_size=64, lr=0.1)
    assert smaller_than(s, options) == [
        "seeds 3 < 6",
        "epochs 5 < 10",
        "fraction 0.25 < 1",
        "test fraction 0.1 < 0.5",
    ]  # not batch size or lr
    assert smaller_than(replace(s, seeds=6, epochs=12), options) == [
        "fraction 0.25 < 1",
        "test fraction 0.1 < 0.5",
    ]
    assert (
        smaller_than(Settings(seeds=6, epochs=10, fraction=1.0, test_fraction=0.5), options) == []
    )
    assert smaller_than(s, {"seeds": "six", "epochs": None}) == []  # unreadable: nothing
    from gluon_bn.study.study_record import larger_on_disk, refuse_smaller

    (tmp_path / "faster.json").write_text(json.dumps({"options": options}))
    (tmp_path / "faster.progress.json").write_text("not json")  # counts as nothing
    (found,) = larger_on_disk(tmp_path, "faster", s)
    assert found == (
        f"{tmp_path / 'faster.json'} holds a larger record (seeds 3 < 6, epochs "
        f"5 < 10, fraction 0.25 < 1, test fraction 0.1 < 0.5)"
    )
    with pytest.raises(ValueError, match=r"^study faster: .*seeds 3 < 6, epochs 5 < 10"):
        refuse_smaller([(get_study("faster"), s)], tmp_path)
    refuse_smaller([(get_study("faster"), s)], tmp_path, allowed=True)
    assert larger_on_disk(tmp_path, "batch-noise", s) == []  # no file of that study


def test_compiled_speed_rounds_follow_from_the_committed_timing_spread():
    # the 3-round record the spread was read from, kept beside the deciding one it sized
    data = json.loads((RESULTS / "pilot" / "compiled-speed-3-rounds.json").read_text())
    assert data["options"]["seeds"] == 3
    deciding = json.loads((RESULTS / "compiled-speed.json").read_text())
    by = {c["name"]: c["runs"] for c in data["configurations"]}
    spread = {}
    for path, (scratch, builtin) in SPEED_PATHS.items():
        ratios = [
            math.log(a["seconds_per_epoch"] / b["seconds_per_epoch"])
            for a, b in zip(by[scratch], by[builtin])
        ]
        spread[path] = statistics.stdev(ratios)
    widest = max(spread, key=spread.get)
    assert widest == "train_ch5 / fast"
    assert round(spread[widest], 3) == SPEED_SPREAD == 0.271
    assert {p: round(v, 3) for p, v in spread.items() if p != widest} == {
        "train_ch5 / d2l": 0.202,
        "d2l.Trainer / d2l": 0.035,
    }
    # the deciding rounds: the fewest whose 95 % t half-width is below the margin ln 1.1
    rounds = distributions.rounds_for(SPEED_SPREAD, SPEED_MARGIN)
    study = get_study("compiled-speed")
    assert study.deciding.seeds == study.defaults.seeds == rounds == deciding["options"]["seeds"]
    assert f"from {rounds} rounds on" in study.deciding.why

    def half_width(n):
        return stats.t_quantile(0.975, n - 1) * SPEED_SPREAD / math.sqrt(n)

    assert half_width(rounds) < SPEED_MARGIN <= half_width(rounds - 1)
    # the share outside operators spreads little: 3 rounds (the minimum) would do
    share = [r["python_share"] for r in by["profile / faithful"]]
    assert round(statistics.stdev(share), 4) == 0.0014
    assert (
        distributions.rounds_for(
            statistics.stdev(share), claimed("compiled-speed", "because interpreted").margin
        )
        == 3
    )


def test_regularization_seeds_follow_from_its_committed_pilot():
    from gluon_bn.study.claims_effects import (
        REGULARIZATION_PILOT_EFFECT,
        REGULARIZATION_PILOT_SEEDS,
    )

    # the 5-seed record, kept beside the deciding one once that is written
    pilot = json.loads((RESULTS / "pilot" / "regularization-5-seeds.json").read_text())
    assert pilot["options"]["seeds"] == REGULARIZATION_PILOT_SEEDS == 5
    assert outcome(pilot["verdict"]) == "inconclusive"
    seeds = {r["seed"] for c in pilot["configurations"] for r in c["runs"]}
    assert seeds == set(range(REGULARIZATION_PILOT_SEEDS))
    effect = {c["name"]: abs(c["effect"]) for c in pilot["comparisons"] if c["role"] == "decides"}
    assert {k: round(v, 3) for k, v in effect.items()} == {"gap": 1.221, "dropout, BN": 0.882}
    assert round(min(effect.values()), 3) == REGULARIZATION_PILOT_EFFECT
    # 80 % power one-sided at Holm's strictest step over the two deciding comparisons
    n = distributions.seeds_for_power(REGULARIZATION_PILOT_EFFECT, level=stats.FAMILY_LEVEL / 2)
    study = get_study("regularization")
    assert study.deciding.seeds == study.defaults.seeds == n == 13
    assert f"from {n} seeds on" in study.deciding.why
    # fresh seeds: none of the pilot's is drawn again
    assert not set(study.defaults.seed_numbers) & seeds
    assert list(study.defaults.seed_numbers) == list(range(5, 18))


# --------------------------------------------------------------------------- stated before the runs


@pytest.fixture
def fresh_git_cache():
    """stated.in_repository is cached per process: cleared around a test that moves ROOT."""
    stated_mod.in_repository.cache_clear()
    yield
    stated_mod.in_repository.cache_clear()


def _copy_stated_files(root):
    for path in stated_mod.STATED_FILES:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(stated_mod.ROOT / path, target)


def _git(root, *args):
    return subprocess.run(
        [
            "git",
            "-C",
            str(root),
            "-c",
            "user.name=test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "commit.gpgsign=false",
            *args,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_an_entry_and_the_constants_it_names_are_its_stated_content():
    registry = "\n".join(
        [
            "from x import y",
            "LIMIT = 0.5",
            "SHARED = (1,",
            "          2)  # (a bracketed continuation)",
            "UNUSED = 7",
            "STUDIES = {s.name: s for s in (",
            "    Study(",
            '        name="one",',
            "        claim=f'{LIMIT:g} and {MARGIN} and {SHARED}',",
            "    ),",
            "    Study(",
            '        name="two",',
            "        claim=f'{UNUSED}',",
            "    ),",
            ")}",
            "",
        ]
    )
    settings = "MARGIN = 0.01\nLIMIT = 99\n"
    sources = {stated_mod.REGISTRY: registry, "gluon_bn/study/settings.py": settings}
    content = stated_mod.stated_content(sources, "one")
    # the entry, then the constants it names where they are defined (the entry's file first)
    lines = content.splitlines()
    assert lines[0].startswith("entry Call(func=Name(id='Study'") and "'one'" in lines[0]
    assert [line.split(" = ")[0] for line in lines[1:]] == ["LIMIT", "MARGIN", "SHARED"]
    assert "LIMIT = Constant(value=0.5)" in content and "MARGIN = Constant(value=0.01)" in content
    assert "Constant(value=2)" in content  # SHARED's continuation line
    assert "UNUSED" not in content and "value=99" not in content
    assert stated_mod.entry_file(sources, "one") == stated_mod.REGISTRY
    assert stated_mod.stated_content(sources, "two").splitlines()[1] == (
        "UNUSED = Constant(value=7)"
    )
    assert stated_mod.stated_content(sources, "three") is None
    assert stated_mod.entry_file(sources, "three") is None
    # a named constant's value changing changes the content; another constant's does not
    changed = dict(sources, **{stated_mod.REGISTRY: registry.replace("LIMIT = 0.5", "LIMIT = 0.6")})
    assert stated_mod.stated_content(changed, "one") != content
    other = dict(sources, **{stated_mod.REGISTRY: registry.replace("UNUSED = 7", "UNUSED = 8")})
    assert stated_mod.stated_content(other, "one") == content
    assert stated_mod.stated_content(other, "two") != stated_mod.stated_content(sources, "two")
    # formatting, comments and the file an entry is written in do not count
    moved = "\n".join(
        [
            "LIMIT = 0.5  # now with a comment",
            "SHARED = (1, 2)",
            "ONE = Study(name='one',",
            "            claim=f'{LIMIT:g} and {MARGIN} and {SHARED}')",
            "",
        ]
    )
    elsewhere = {
        stated_mod.REGISTRY: "from gluon_bn.study.claims_layer import ONE, LIMIT\n",
        "gluon_bn/study/claims_layer.py": moved,
        "gluon_bn/study/settings.py": settings,
    }
    assert stated_mod.entry_file(elsewhere, "one") == "gluon_bn/study/claims_layer.py"
    assert stated_mod.stated_content(elsewhere, "one") == content
    # a file that does not parse writes no entry
    assert stated_mod.stated_content({stated_mod.REGISTRY: registry + "Study(("}, "one") is None
    # the real files: each study's entry and the constants it reads
    real = stated_mod._sources_now()
    for name in STUDIES:
        assert stated_mod.entry_file(real, name) in (
            "gluon_bn/study/claims_effects.py",
            "gluon_bn/study/claims_layer.py",
        )

    def named(name):
        return {
            line.split(" = ")[0] for line in stated_mod.stated_content(real, name).splitlines()[1:]
        }

    assert named("faster") == {"FASTER_TARGET"}
    assert {"HELD_OUT_SHARE", "BIAS_TOLERANCE", "SETTLING_STEPS", "ACCURACY_MARGIN"} <= named(
        "ablations"
    )
    assert {"SPEED_SPREAD", "SPEED_MARGIN"} <= named("compiled-speed")
    # the fingerprint reads that content: a changed constant of the study changes it
    assert stated_mod.fingerprint("faster") == stated_mod.fingerprint("faster", real)
    home = stated_mod.entry_file(real, "faster")
    edited = dict(
        real, **{home: real[home].replace("FASTER_TARGET = 0.65", "FASTER_TARGET = 0.70")}
    )
    assert edited[home] != real[home]
    assert stated_mod.fingerprint("faster", edited) != stated_mod.fingerprint("faster", real)
    assert stated_mod.fingerprint("ablations", edited) == stated_mod.fingerprint("ablations", real)
    assert stated_mod.fingerprint("no such study") is None


def _fake_measure(calls, stop_after=None):
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


def test_the_progress_file_keeps_each_processs_code_outside_the_options(tmp_path, monkeypatch):
    from gluon_bn.study.runner import run_study

    first = {"commit": "a" * 40, "entry": "e1", "uncommitted": False}
    second = {"commit": "b" * 40, "entry": "e1", "uncommitted": False}
    path, options = tmp_path / "x.progress.json", {"seeds": 3, "epochs": 2}
    monkeypatch.setattr(stated_mod, "code_state", lambda name: dict(first))
    store = Progress(path, "x", options)
    assert store.code == first and store.code_states() == []  # nothing added yet
    store.add("a", 0, {"seed": 0}, {"runtime": "r"})
    store.add("a", 1, {"seed": 1}, {"runtime": "r"})
    data = json.loads(path.read_text())
    assert data["options"] == options and "code" not in data["options"]
    assert data["code"] == [first]  # once per process, not per run
    # another process at another commit resumes: same options, so the runs are kept
    monkeypatch.setattr(stated_mod, "code_state", lambda name: dict(second))
    resumed = Progress(path, "x", options)
    assert not resumed.discarded and resumed.count() == 2
    resumed.add("a", 2, {"seed": 2}, {"runtime": "r"})
    assert Progress(path, "x", options).code_states() == [first, second]
    # other options: set aside, codes and all
    other = Progress(path, "x", {"seeds": 5, "epochs": 2})
    assert other.discarded and other.code_states() == []
    # a progress file written before the stamp: its runs' code is not known
    old = tmp_path / "old.progress.json"
    old.write_text(
        json.dumps(
            {"schema": 1, "study": "x", "options": options, "runs": {"a": {"0": {"seed": 0}}}}
        )
    )
    assert Progress(old, "x", options).code_states() == [UNSTAMPED]
    # through a study: an interrupted process and the one that finished, both in the record
    study = get_study("covariate-shift")
    settings = replace(study.defaults, seeds=3)
    out = tmp_path / "out"
    monkeypatch.setattr(stated_mod, "code_state", lambda name: dict(first))
    with pytest.raises(KeyboardInterrupt):
        run_study(
            study,
            settings,
            out,
            measure=_fake_measure([], stop_after=4),
            progress=False,
            file=io.StringIO(),
        )
    monkeypatch.setattr(stated_mod, "code_state", lambda name: dict(second))
    record, _ = run_study(
        study, settings, out, measure=_fake_measure([]), progress=False, file=io.StringIO()
    )
    assert record.stated["runs"] == [first, second]
    assert "code" not in record.options
    assert json.loads((out / "covariate-shift.progress.json").read_text())["code"] == [
        first,
        second,
    ]


def test_stated_before_only_when_the_runs_were_made_under_the_committed_criterion(
    tmp_path, monkeypatch, fresh_git_cache
):
    criterion = {"commit": "c" * 40, "entry": "E", "uncommitted": False}
    made = {"commit": "d" * 40, "entry": "E", "uncommitted": False}
    yes = lambda older, newer: True  # noqa: E731

    def before(c, runs, ancestor=yes):
        return stated_mod.stated_before(c, runs, ancestor)

    ok = before(criterion, [made])
    assert ok["before"] is True and ok["note"].startswith("yes: ")
    assert ok["criterion"] == criterion and ok["runs"] == [made]
    cases = {
        "another entry": (criterion, [made, dict(made, entry="F")], yes, "no: the runs predate"),
        "uncommitted when made": (
            criterion,
            [dict(made, uncommitted=True)],
            yes,
            "no: the runs were made under this criterion",
        ),
        "uncommitted now": (
            dict(criterion, uncommitted=True),
            [made],
            yes,
            "no: the runs were made under this criterion",
        ),
        "committed after": (
            criterion,
            [made],
            lambda o, n: False,
            "no: the criterion was committed",
        ),
    }
    for case, (c, runs, ancestor, note) in cases.items():
        judged = before(c, runs, ancestor)
        assert judged["before"] is False and judged["note"].startswith(note), case
    for runs in (None, [], [UNSTAMPED], [made, UNSTAMPED]):
        assert before(criterion, runs)["before"] is None
        assert before(criterion, runs)["note"].startswith("unknown: ")
    # with git, in a throwaway repository holding the stated files
    repo = tmp_path / "repo"
    _copy_stated_files(repo)
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "the studies")
    first = _git(repo, "rev-parse", "HEAD")
    monkeypatch.setattr(stated_mod, "ROOT", repo.resolve())
    stated_mod.in_repository.cache_clear()
    assert stated_mod.in_repository()
    made = stated_mod.code_state("faster")
    assert made["commit"] == first and made["uncommitted"] is False
    now = stated_mod.criterion_state("faster")
    assert now["commit"] == first and now["entry"] == made["entry"]
    assert stated_mod.stated_before(now, [made])["before"] is True
    # runs made while the entry has an uncommitted edit: not stated before them
    registry = repo / stated_mod.entry_file(stated_mod._sources_now(), "faster")
    text = registry.read_text()
    assert text.count('recipe="d2l-1.0",') == 1  # faster's entry alone
    registry.write_text(text.replace('recipe="d2l-1.0",', 'recipe="d2l-1.1",'))
    dirty = stated_mod.code_state("faster")
    assert dirty["uncommitted"] is True and dirty["entry"] != made["entry"]
    judged = stated_mod.stated_before(stated_mod.criterion_state("faster"), [dirty])
    assert judged["before"] is False and "not committed" in judged["note"]
    # an unrelated study's entry is not faster's criterion
    assert stated_mod.code_state("covariate-shift")["uncommitted"] is False
    # the edit committed: the earlier runs predate it, the dirty ones were still not stated
    _git(repo, "commit", "-q", "-am", "faster edited")
    second = _git(repo, "rev-parse", "HEAD")
    now = stated_mod.criterion_state("faster")
    assert now["commit"] == second and now["uncommitted"] is False
    assert stated_mod.stated_before(now, [made])["before"] is False
    assert "predate" in stated_mod.stated_before(now, [made])["note"]
    assert stated_mod.stated_before(now, [dirty])["before"] is False
    after = stated_mod.code_state("faster")
    assert stated_mod.stated_before(now, [after])["before"] is True
    # a later commit elsewhere leaves faster's criterion where it was
    elsewhere = repo / "gluon_bn/study/stats.py"
    elsewhere.write_text(elsewhere.read_text() + "\n# unrelated\n")
    _git(repo, "commit", "-q", "-am", "unrelated")
    assert stated_mod.criterion_state("faster")["commit"] == second
    assert stated_mod.stated_before(stated_mod.criterion_state("faster"), [after])["before"] is True
    # the entry moved to another file and re-indented: its criterion stays at `second`, and
    # runs made at `second` under another fingerprint (an older formula) are judged by content
    source = repo / stated_mod.entry_file(stated_mod._sources_now(), "faster")
    lines = source.read_text().splitlines(keepends=True)
    node = stated_mod.find_entry(ast.parse("".join(lines)), "faster")
    entry = "".join(lines[node.lineno - 1 : node.end_lineno]).rstrip().rstrip(",")
    source.write_text("".join(lines[: node.lineno - 1] + lines[node.end_lineno :]))
    target = repo / "gluon_bn/study/claims_layer.py"
    target.write_text(target.read_text() + "\nMOVED = (\n" + entry + ",\n)\n")
    assert stated_mod.entry_file(stated_mod._sources_now(), "faster") == str(
        target.relative_to(repo)
    )
    assert stated_mod.code_state("faster")["uncommitted"] is False
    _git(repo, "commit", "-q", "-am", "faster's entry moved")
    moved = stated_mod.criterion_state("faster")
    assert moved["commit"] == second and moved["uncommitted"] is False
    foreign = dict(after, entry="an older fingerprint")
    assert stated_mod.made_under("faster", second) is True
    assert stated_mod.made_under("faster", first) is False
    assert stated_mod.made_under("faster", "f" * 40) is None  # no such commit
    same = functools.partial(stated_mod.made_under, "faster")
    assert stated_mod.stated_before(moved, [foreign], same=same)["before"] is True
    assert stated_mod.stated_before(moved, [foreign])["before"] is False  # fingerprints alone
    assert stated_mod.stated_before(moved, [dict(made, entry="x")], same=same)["before"] is False
    assert stated_mod.is_ancestor(first, second) is True
    assert stated_mod.is_ancestor(second, first) is False


def test_without_git_the_commits_are_none_and_unknown(tmp_path, monkeypatch, fresh_git_cache):
    # an installed package: the stated files, and no repository around them
    copied = tmp_path / "site-packages"
    _copy_stated_files(copied)
    entry = stated_mod.fingerprint("faster")
    monkeypatch.setattr(stated_mod, "ROOT", copied.resolve())
    assert not stated_mod.in_repository()
    made = stated_mod.code_state("faster")
    assert made == {"commit": None, "entry": entry, "uncommitted": None}
    now = stated_mod.criterion_state("faster")
    assert now == {"commit": None, "entry": entry, "uncommitted": None}
    assert stated_mod.is_ancestor("a" * 40, "b" * 40) is None
    judged = stated_mod.stated_before(now, [made])
    assert judged["before"] is None
    assert judged["note"].startswith(
        "unknown: the runs were made under this criterion, but without git the commits are unknown"
    )
    assert (
        "last changed at commit unknown" in judged["note"] and "runs at unknown" in judged["note"]
    )
    # no git program at all
    stated_mod.in_repository.cache_clear()
    monkeypatch.setattr(stated_mod, "ROOT", ROOT)

    def missing(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(stated_mod.subprocess, "run", missing)
    assert stated_mod.git("rev-parse", "HEAD") is None
    assert stated_mod.code_state("faster")["commit"] is None
    assert stated_mod.criterion_state("faster")["commit"] is None
    assert stated_mod.is_ancestor("a", "b") is None


def _record_with(before):
    """A covariate-shift record judged now, whose ``stated`` then says `before` (True, False,
    None: runs not stamped) and the record as judged (``as_judged``)."""
    from gluon_bn.study.judges import record_of

    study = get_study("covariate-shift")
    settings = replace(study.defaults, seeds=3)
    configs = CONFIGURATIONS["covariate-shift"](settings)
    for c in configs:
        acc = {"plain": 0.6, "BN": 0.85, "noisy BN": 0.84}[c.name]
        c.runs = [
            {
                "seed": s,
                "curve": [acc - 0.1, acc + 0.005 * s],
                "loss": [1.0, 0.5],
                "final_acc": acc + 0.005 * s,
                "diverged": False,
                "train_seconds": 1.0,
            }
            for s in range(3)
        ]
    record = record_of(study, settings, settings.as_dict(), {}, configs)
    if before is None:
        return record
    criterion = {"commit": "c" * 40, "entry": "E", "uncommitted": False}
    runs = {
        True: [{"commit": "d" * 40, "entry": "E", "uncommitted": False}],
        False: [{"commit": "d" * 40, "entry": "F", "uncommitted": False}],
        None: None,
    }[before]
    return replace(record, stated=stated_mod.stated_before(criterion, runs, lambda o, n: True))


def test_reports_and_summary_say_stated_before_the_runs_only_where_true():
    from gluon_bn.study.study_report import markdown, stated_note
    from gluon_bn.study.summary import SUMMARY_HEADER, stated_cell, summary

    question = "**Criterion stated before the runs?**"
    made = {b: _record_with(b) for b in (True, False, None)}
    # a record judged now with no stamped runs: unknown, never yes
    assert made[None].stated["before"] is None
    for before, record in made.items():
        lines = markdown(record).splitlines()
        (line,) = [l for l in lines if l.startswith(question)]
        word = {True: "yes: ", False: "no: ", None: "unknown: "}[before]
        assert line.startswith(f"{question} {word}"), line
        assert stated_cell(record).startswith(word.rstrip(": "))
        # nowhere else does the report say the criterion was stated before the runs
        rest = "\n".join(l for l in lines if not l.startswith(question))
        assert PHRASE not in rest.lower(), before
    old = replace(made[True], stated={})
    assert stated_note(old).startswith("unknown: the record was judged before this was recorded")
    # the summary: its question in the header, and "yes" only in the row where it is true
    text = summary([made[True], made[False], made[None]])
    rows = [l for l in text.splitlines() if l.startswith("| covariate-shift |")]
    assert [row.rsplit("|", 2)[1].strip().split(":")[0] for row in rows] == ["yes", "no", "unknown"]
    body = text.replace(SUMMARY_HEADER, "")
    assert PHRASE not in body.lower()
    assert "'yes' only where it was" in body
    # every study's report text (claim, measurement, criterion as stated): no unconditional
    # "stated before the runs"
    claims_it = [
        name
        for name, study in STUDIES.items()
        if PHRASE
        in " ".join(
            [study.claim, study.measurement, study.statement(), study.scale_note(study.defaults)]
        ).lower()
    ]
    assert claims_it == [], (
        f"these studies' reports say '{PHRASE}' whatever their record says: {claims_it}"
    )


def test_a_timed_study_resumes_only_on_the_machine_and_runtime_it_was_timed_on(tmp_path):
    from gluon_bn.study.runner import check_same_machine, machine

    avx2 = {
        "cpu_model": "AMD EPYC",
        "cpu_count": 2,
        "onednn_isa": "Intel AVX2",
        "runtime": "engine NaiveEngine, OpenMP threads 2",
        "python": "3.11.7",
    }
    store = Progress(tmp_path / "compiled-speed.progress.json", "compiled-speed", {"seeds": 34})
    check_same_machine("compiled-speed", store, avx2)  # nothing stored yet: anything goes
    store.add("a", 0, {"seconds_per_epoch": 1.0}, avx2)
    check_same_machine("compiled-speed", store, dict(avx2, python="3.11.9"))  # not timing
    resumed = Progress(store.path, "compiled-speed", {"seeds": 34})
    for other in (
        dict(avx2, onednn_isa="Intel AVX-512"),
        dict(avx2, runtime="engine NaiveEngine, OpenMP threads 1"),
        dict(avx2, cpu_model="Intel Xeon"),
    ):
        with pytest.raises(ValueError) as err:
            check_same_machine("compiled-speed", resumed, other)
        line = str(err.value)
        assert "\n" not in line and machine(avx2) in line and machine(other) in line
        assert "1 runs in" in line and "move that file aside" in line
    assert resumed.count() == 1 and store.path.exists()  # nothing lost


def test_a_p_value_that_underflowed_is_never_printed_as_zero():
    assert stats.p_text(0.0) == "< 1e-16" and stats.p_text(1e-300) == "< 1e-16"
    assert stats.p_text(0.03125) == "0.031" and stats.p_text(1.0) == "1"
    # 34 rounds near 1 with a spread of 0.001: t is near 1000 and its tail underflows to 0
    diff = stats.one_sample([1.0 + 0.001 * (i % 3) for i in range(34)], 0.0)
    assert stats.claim_p(diff, "greater", 0.1) < 1e-16
