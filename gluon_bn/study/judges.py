"""How each study's finished runs reach its criterion: one judge per study, run through Holm's
adjustment (:func:`gluon_bn.study.judging.with_holm`), and :func:`record_of`, the one place a
record is judged. Pure functions, no MXNet.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from gluon_bn.study import ablated, criteria, judging, reaching, stated
from gluon_bn.study.judging import Judgement
from gluon_bn.study.plans import ABLATIONS, BIAS_CHECK, FULL_BN, LOOPS, NATIVE_PATH, _names
from gluon_bn.study.registry import BIAS_TOLERANCE, FASTER_TARGET, Settings, Study, get_study
from gluon_bn.study.study_record import Configuration, StudyRecord


def _seeded(config: Configuration, key: str) -> judging.Seeded:
    """`key` of every run of `config`, with the runs' seeds."""
    return judging.Seeded(config.values(key), config.values("seed"))


# Per study, the run flags its report counts per configuration: (column, run -> flagged?)
FLAG_COLUMNS: Dict[str, Tuple[Tuple[str, Callable[[Dict[str, object]], bool]], ...]] = {
    "learning-rate": (
        ("diverged", lambda run: criteria.divergence(run) is not None),
        ("stuck", lambda run: criteria.stuck(run) is not None),
        (f"trains (≥ {judging.TRAINS_AT:g})", criteria.trains),
    ),
    "regularization": (("fitted", lambda run: run.get("fit_epoch") is not None),),
}


def failures(
    configs: Sequence[Configuration], study: Optional[str] = None
) -> List[Dict[str, object]]:
    """Return every run that failed to train: configuration, seed and why (the record keeps it).

    Parameters
    ----------
    configs : sequence of Configuration
    study : str, optional
        The study's name, which picks its definition (:data:`FAILURE`; default
        :func:`gluon_bn.study.judging.failure`).
    """
    why_failed = FAILURE.get(study, judging.failure)
    return [
        {"configuration": c.name, "seed": run.get("seed"), "why": why}
        for c in configs
        for run in c.runs
        for why in [why_failed(run)]
        if why
    ]


def _judge_faster(
    configs: Sequence[Configuration], study: Study, holm: judging.Adjusted = None
) -> Judgement:
    by = _names(configs)
    parts = {}
    for loop in LOOPS:
        plain, bn = by[f"{loop} / plain"], by[f"{loop} / gluon"]
        earlier = reaching.previous_design(plain.runs + bn.runs, loop, study.deciding_command())
        parts[loop] = (
            Judgement(earlier)
            if earlier
            else criteria.faster(
                _seeded(plain, "curve"),
                _seeded(bn, "curve"),
                study.stated(loop),
                FASTER_TARGET,
                holm=holm,
            )
        )
    return judging.Judgement(
        judging.combine({k: j.verdict for k, j in parts.items()}),
        {k: j.verdict for k, j in parts.items()},
        [c for j in parts.values() for c in j.comparisons],
    )


def _judge_learning_rate(
    configs: Sequence[Configuration], study: Study, s: Settings, holm: judging.Adjusted = None
) -> Judgement:
    by = _names(configs)
    # the runs themselves: the criterion flags each from its stored curve and losses
    at = {net: [by[f"{net} lr {lr:g}"].runs for lr in s.grid] for net in ("plain", "BN")}
    return criteria.learning_rate(
        list(s.grid),
        at["plain"],
        at["BN"],
        study.stated("largest training rate"),
        study.stated("at each rate"),
        holm=holm,
    )


EARLIER = "recorded at an earlier design"  # how a record the criterion cannot read is judged


def earlier_design(study: str, configs: Sequence[Configuration]) -> Optional[str]:
    """Return what the earlier design of `study` was when `configs` are of it (else None).

    Only batch-noise and regularization have changed design; their older records keep
    their runs and are judged inconclusive until re-run (:func:`_earlier`).
    """
    today = {
        "batch-noise": lambda c: (
            c.name == "BN"
            and all(isinstance(r.get("batch_stats_acc"), dict) or r.get("diverged") for r in c.runs)
        ),
        "regularization": lambda c: "fit_loss" in c.settings,
    }
    if study not in today or (configs and all(map(today[study], configs))):
        return None
    if study == "batch-noise":
        return (
            "one network per training batch size, its learning rate scaled with the "
            "batch, batch statistics at the training batch size only"
        )
    return (
        "ReLU LeNet at one learning rate, the gap read after the last epoch whether or "
        "not the network had fitted its training images"
    )


def _earlier(study: Study, design: str) -> Judgement:
    return Judgement(
        f"{judging.UNCLEAR}: {EARLIER} ({design}), whose numbers today's "
        f"criterion does not read; re-run it at the current design: "
        f"`{study.deciding_command()}`"
    )


def _judge_batch_noise(
    configs: Sequence[Configuration], study: Study, holm: judging.Adjusted = None
) -> Judgement:
    design = earlier_design(study.name, configs)
    if design:
        return _earlier(study, design)
    (config,) = configs
    sizes = sorted(int(b) for b in config.settings["eval_batch_sizes"])
    return criteria.batch_noise(
        sizes,
        [criteria.batch_stats_at(config.runs, b) for b in sizes],
        judging.accuracies(_seeded(config, "moving_acc")),
        judging.accuracies(_seeded(config, "population_acc")),
        *(study.stated(n) for n in ("noisy", "shrinks", "whole data", "cost")),
        holm=holm,
    )


def regularization_networks(configs: Sequence[Configuration]) -> Dict[str, Dict[float, list]]:
    """Return regularization's runs by network and learning rate (today's design)."""
    networks: Dict[str, Dict[float, list]] = {}
    for c in configs:
        networks.setdefault(c.settings["network"], {})[float(c.settings["lr"])] = c.runs
    return networks


def _judge_regularization(
    configs: Sequence[Configuration], study: Study, holm: judging.Adjusted = None
) -> Judgement:
    design = earlier_design(study.name, configs)
    if design:
        return _earlier(study, design)
    return criteria.regularization(
        regularization_networks(configs),
        float(configs[0].settings["fit_loss"]),
        *(study.stated(n) for n in ("gap", "dropout, BN", "dropout, plain")),
        holm=holm,
    )


def _judge_covariate_shift(
    configs: Sequence[Configuration], study: Study, holm: judging.Adjusted = None
) -> Judgement:
    by = _names(configs)
    return criteria.covariate_shift(
        *(_seeded(by[n], "final_acc") for n in ("plain", "BN", "noisy BN")),
        *(study.stated(n) for n in ("BN helps", "above plain", "keeps most")),
        holm=holm,
    )


SPEED_PATHS = {  # path -> (the faithful imperative scratch layer, nn.BatchNorm)
    "train_ch5 / d2l": ("train_ch5 / d2l / scratch faithful", "train_ch5 / d2l / gluon"),
    "train_ch5 / fast": ("train_ch5 / fast / scratch faithful", "train_ch5 / fast / gluon"),
    "d2l.Trainer / d2l": ("d2l.Trainer / d2l / scratch faithful", "d2l.Trainer / d2l / gluon"),
}


def speed_times(configs: Sequence[Configuration]) -> Dict[str, Tuple[list, list]]:
    """Per loop and pipeline: the scratch layer's and nn.BatchNorm's seconds per epoch, per round."""
    by = _names(configs)
    return {
        path: tuple(by[name].values("seconds_per_epoch") for name in pair)
        for path, pair in SPEED_PATHS.items()
    }


def _judge_compiled_speed(
    configs: Sequence[Configuration], study: Study, holm: judging.Adjusted = None
) -> Judgement:
    by = _names(configs)
    share = by["profile / faithful"].values("python_share")
    # Records made before the native rows existed, or where the operator could not be built
    # (no seconds), show no native comparison.
    native = [by[name].values("seconds_per_epoch") if name in by else [] for name in NATIVE_PATH]
    shown = (
        {"native": (study.stated("native"), *native)}
        if all(times and None not in times for times in native)
        else {}
    )
    return criteria.compiled_speed(
        speed_times(configs),
        share,
        study.stated("faster"),
        study.stated("because interpreted"),
        shown,
        holm=holm,
    )


def _judge_ablations(
    configs: Sequence[Configuration], study: Study, holm: judging.Adjusted = None
) -> Judgement:
    by = _names(configs)
    earlier = ablated.previous_design(by[FULL_BN].runs, study.deciding_command())
    if earlier:  # each part says so briefly; the verdict says how to re-run
        return judging.Judgement(earlier, {name: ablated.EARLIER_PART for name in ABLATIONS})
    parts = {
        name: criteria.tuned_ablation(
            by[FULL_BN].runs, by[config].runs, study.stated(name), holm=holm
        )
        for name, (config, _) in ABLATIONS.items()
    }
    verdicts = {name: j.verdict for name, j in parts.items()}
    return judging.Judgement(
        judging.combine(verdicts), verdicts, [c for j in parts.values() for c in j.comparisons]
    )


JUDGES: Dict[str, Callable[..., Judgement]] = {
    "faster": _judge_faster,
    "batch-noise": _judge_batch_noise,
    "regularization": _judge_regularization,
    "covariate-shift": _judge_covariate_shift,
    "compiled-speed": _judge_compiled_speed,
    "ablations": _judge_ablations,
}


def judge(study: str, configs: Sequence[Configuration], settings: Settings) -> Judgement:
    """Return the :class:`~gluon_bn.study.judging.Judgement` of `study` from its finished runs.

    With fewer than three seeds anywhere, every verdict is that one "inconclusive". The
    study's deciding comparisons are adjusted together by Holm's method
    (:func:`gluon_bn.study.judging.with_holm`) before its verdicts are composed.
    """
    few = judging.too_few_seeds({c.name: c.runs for c in configs})
    parts = {name: few for name in ABLATIONS} if study == "ablations" else None
    if few:
        return judging.Judgement(few, parts)
    spec = get_study(study)
    if study == "learning-rate":
        return judging.with_holm(lambda holm: _judge_learning_rate(configs, spec, settings, holm))
    return judging.with_holm(lambda holm: JUDGES[study](configs, spec, holm))


# Why a run failed, per study: the learning-rate study flags its runs diverged or stuck by
# its own stated rules; the others by judging.failure.
FAILURE: Dict[str, Callable[[Dict[str, object]], Optional[str]]] = {
    "learning-rate": criteria.flagged,
    "ablations": ablated.untrained,
}


# What a study checked and states as fact, not as a verdict: study -> configurations -> lines
FACTS: Dict[str, Callable[[Sequence[Configuration]], List[str]]] = {
    "ablations": lambda configs: [
        line
        for c in configs
        if c.name == BIAS_CHECK
        for line in [ablated.bias_fact(c.runs, BIAS_TOLERANCE)]
        if line
    ]
}


def record_of(
    study: Study,
    settings: Settings,
    options: Dict[str, object],
    environment: Dict[str, object],
    configs: List[Configuration],
    *,
    made_at: Optional[List[Dict[str, object]]] = None,
) -> StudyRecord:
    """Return the study record of finished `configs`: judged, with its comparisons and failures.

    The one place a record is judged: after a run (:func:`gluon_bn.study.runner.run_study`)
    and when the committed records are re-judged (``gluon-bn study --regenerate``).
    `made_at` is what every process that made the runs was made with (the progress file's
    code states, :func:`gluon_bn.study.stated.code_state`); with the criterion's last commit
    now it says whether the criterion was stated before the runs (``stated``).
    """
    judgement = judge(study.name, configs, settings)
    before = stated.stated_before(
        stated.criterion_state(study.name),
        made_at,
        same=functools.partial(stated.made_under, study.name),
    )
    deciding = (
        dict(
            dataclasses.asdict(study.deciding),
            shortfalls=study.below_deciding(settings),
            command=study.deciding_command(),
        )
        if study.deciding
        else {}
    )
    return StudyRecord(
        study.name,
        study.claim,
        study.source,
        study.measurement,
        study.statement(),
        study.scale_note(settings),
        options,
        environment,
        configs,
        judgement.verdict,
        judgement.parts,
        [c.to_json() for c in judgement.comparisons],
        failures(configs, study.name),
        deciding,
        before,
        FACTS.get(study.name, lambda _: [])(configs),
    )
