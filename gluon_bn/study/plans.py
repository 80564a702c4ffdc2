"""What each study runs and how its numbers reach the criterion. Pure data and functions, no MXNet.

Per study: :data:`CONFIGURATIONS` lists its configurations for given settings, :data:`JUDGES`
reads the finished runs and calls :mod:`gluon_bn.study.criteria`, :data:`DISPLAYS` says
which numbers its report tabulates and how its figure draws them. The experiments that
produce the runs are in :mod:`gluon_bn.study.experiments` (MXNet).

Every run is a dict with its ``seed``. Accuracies are fractions in [0, 1]; a diverged run
has ``diverged: true`` and ``None`` accuracies, which the criteria count at chance.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from gluon_bn.study import criteria
from gluon_bn.study.criteria import Judgement
from gluon_bn.study.record import Configuration, StudyRecord
from gluon_bn.study.registry import Settings, Study, get_study

LOOPS = ("train_ch5", "d2l.Trainer")
ABLATIONS = {  # ablation name -> (configuration, lenet options); claims: registry.STUDIES
    "bias": ("no bias before BN", {"bn": "gluon", "bias_before_bn": False}),
    "frozen-gamma-beta": ("gamma, beta frozen", {"bn": "frozen"}),
    "mean-only": ("mean-only BN", {"bn": "mean-only"}),
    "variance-only": ("variance-only BN", {"bn": "var-only"}),
    "after-activation": ("BN after activation", {"bn": "gluon", "bn_position": "after"}),
}
FULL_BN = "full BN"


def _names(configs: Sequence[Configuration]) -> Dict[str, Configuration]:
    return {c.name: c for c in configs}


# --------------------------------------------------------------------------- configurations

def _faster(s: Settings) -> List[Configuration]:
    return [Configuration(f"{loop} / {variant}", {"loop": loop, "variant": variant})
            for loop in LOOPS for variant in ("plain", "gluon")]


def _learning_rate(s: Settings) -> List[Configuration]:
    return [Configuration(f"{net} lr {lr:g}", {"network": net, "bn": kind, "lr": lr})
            for lr in s.grid for net, kind in (("plain", "none"), ("BN", "gluon"))]


def _batch_noise(s: Settings) -> List[Configuration]:
    # The learning rate scales with the batch (s.lr at the settings' batch size).
    return [Configuration(f"batch {int(b)}", {"bn": "gluon", "batch_size": int(b),
                                              "lr": s.lr * b / s.batch_size}) for b in s.grid]


def _regularization(s: Settings) -> List[Configuration]:
    rate = s.param("dropout")
    return [Configuration(f"{net}{' + dropout' if p else ''}", {"network": net, "bn": kind,
                                                                "dropout": p})
            for net, kind in (("plain", "none"), ("BN", "gluon")) for p in (0.0, rate)]


def _covariate_shift(s: Settings) -> List[Configuration]:
    noise = {"shift": s.param("shift"), "spread": s.param("spread")}
    return [Configuration("plain", {"bn": "none"}), Configuration("BN", {"bn": "gluon"}),
            Configuration("noisy BN", {"bn": "gluon", "noise": noise})]


def _compiled_speed(s: Settings) -> List[Configuration]:
    configs = []
    for pipeline in ("d2l", "fast"):  # the bench's paths (gluon_bn.bench.bench.default_configs)
        for variant, impl, compiled in (("scratch", "faithful", "none"),
                                        ("scratch", "faithful", "layers"),
                                        ("scratch", "fast", "none"), ("gluon", "faithful", "none"),
                                        ("gluon", "faithful", "layers")):
            configs.append(Configuration(
                f"train_ch5 / {pipeline} / {variant}{' ' + impl if variant == 'scratch' else ''}"
                f"{' hybridized' if compiled != 'none' else ''}",
                {"kind": "bench", "loop": "train_ch5", "pipeline": pipeline, "variant": variant,
                 "bn_impl": impl, "hybridize": compiled}))
    for variant, impl in (("scratch", "faithful"), ("scratch", "fast"), ("gluon", "faithful")):
        configs.append(Configuration(
            f"d2l.Trainer / d2l / {variant}{' ' + impl if variant == 'scratch' else ''}",
            {"kind": "book", "loop": "d2l.Trainer", "pipeline": "d2l", "variant": variant,
             "bn_impl": impl, "hybridize": "none"}))
    # What the claim implies: a compiled scratch layer (our C++ operator) in the same static
    # graph as the built-in one. Shown beside the verdict, not deciding it.
    for name, (variant, impl) in NATIVE_PATH.items():
        configs.append(Configuration(name, {"kind": "bench", "loop": "train_ch5", "pipeline": "fast",
                                            "variant": variant, "bn_impl": impl,
                                            "hybridize": "graph"}))
    for impl in ("faithful", "fast", "gluon"):
        configs.append(Configuration(f"profile / {impl}", {"kind": "profile", "impl": impl}))
    return configs


# compiled-speed's shown comparison: the native scratch layer against nn.BatchNorm, both in
# one static graph (train_ch5, fast pipeline); (variant, bn_impl) by configuration name.
NATIVE_PATH = {"train_ch5 / fast / scratch native graph": ("scratch", "native"),
               "train_ch5 / fast / gluon graph": ("gluon", "faithful")}


def _ablations(s: Settings) -> List[Configuration]:
    return [Configuration(FULL_BN, {"bn": "gluon"})] + [
        Configuration(name, dict(options)) for name, options in ABLATIONS.values()]


CONFIGURATIONS: Dict[str, Callable[[Settings], List[Configuration]]] = {
    "faster": _faster, "learning-rate": _learning_rate, "batch-noise": _batch_noise,
    "regularization": _regularization, "covariate-shift": _covariate_shift,
    "compiled-speed": _compiled_speed, "ablations": _ablations}


# --------------------------------------------------------------------------- judges

def _seeded(config: Configuration, key: str) -> criteria.Seeded:
    """`key` of every run of `config`, with the runs' seeds."""
    return criteria.Seeded(config.values(key), config.values("seed"))


def _failed(config: Configuration) -> List[str]:
    """Why runs of `config` failed to train (one entry per failed run)."""
    return [why for why in map(criteria.failure, config.runs) if why]


def failures(configs: Sequence[Configuration]) -> List[Dict[str, object]]:
    """Return every run that failed to train: configuration, seed and why (the record keeps it)."""
    return [{"configuration": c.name, "seed": run.get("seed"), "why": why}
            for c in configs for run in c.runs for why in [criteria.failure(run)] if why]


def _judge_faster(configs: Sequence[Configuration], study: Study) -> Judgement:
    by = _names(configs)
    parts = {loop: criteria.faster(_seeded(by[f"{loop} / plain"], "curve"),
                                   _seeded(by[f"{loop} / gluon"], "curve"), study.stated(loop),
                                   _failed(by[f"{loop} / plain"])) for loop in LOOPS}
    return criteria.Judgement(criteria.combine({k: j.verdict for k, j in parts.items()}),
                              {k: j.verdict for k, j in parts.items()},
                              [c for j in parts.values() for c in j.comparisons])


def _judge_learning_rate(configs: Sequence[Configuration], study: Study,
                         s: Settings) -> Judgement:
    by = _names(configs)
    at = {net: [by[f"{net} lr {lr:g}"] for lr in s.grid] for net in ("plain", "BN")}
    return criteria.learning_rate(
        list(s.grid), *([_seeded(c, "final_acc") for c in at[net]] for net in ("plain", "BN")),
        *([len(_failed(c)) for c in at[net]] for net in ("plain", "BN")),
        study.stated("at BN's largest training rate"), study.stated("at the other rates"))


def _judge_batch_noise(configs: Sequence[Configuration], study: Study) -> Judgement:
    ordered = sorted(configs, key=lambda c: c.settings["batch_size"])
    values = {key: [criteria.accuracies(_seeded(c, key)) for c in ordered]
              for key in ("moving_acc", "batch_stats_acc", "population_acc")}
    return criteria.batch_noise([c.settings["batch_size"] for c in ordered], values["moving_acc"],
                                values["batch_stats_acc"], values["population_acc"],
                                *(study.stated(n) for n in ("noisy", "shrinks", "whole data")))


def _judge_regularization(configs: Sequence[Configuration], study: Study) -> Judgement:
    by = _names(configs)

    def gap(name: str) -> criteria.Seeded:
        return criteria.gaps(*(criteria.accuracies(_seeded(by[name], k))
                               for k in ("train_acc", "final_acc")))

    references = {f"dropout, {net}": (study.stated(f"dropout, {net}"), gap(f"{net} + dropout"),
                                      gap(net)) for net in ("plain", "BN")}
    return criteria.regularization(
        *(criteria.accuracies(_seeded(by[n], k)) for n in ("plain", "BN")
          for k in ("train_acc", "final_acc")), study.stated("gap"), references)


def _judge_covariate_shift(configs: Sequence[Configuration], study: Study) -> Judgement:
    by = _names(configs)
    return criteria.covariate_shift(*(_seeded(by[n], "final_acc") for n in ("plain", "BN", "noisy BN")),
                                    *(study.stated(n) for n in ("BN helps", "above plain",
                                                                "keeps most")))


SPEED_PATHS = {  # path -> (the faithful imperative scratch layer, nn.BatchNorm)
    "train_ch5 / d2l": ("train_ch5 / d2l / scratch faithful", "train_ch5 / d2l / gluon"),
    "train_ch5 / fast": ("train_ch5 / fast / scratch faithful", "train_ch5 / fast / gluon"),
    "d2l.Trainer / d2l": ("d2l.Trainer / d2l / scratch faithful", "d2l.Trainer / d2l / gluon")}


def speed_times(configs: Sequence[Configuration]) -> Dict[str, Tuple[list, list]]:
    """Per loop and pipeline: the scratch layer's and nn.BatchNorm's seconds per epoch, per round."""
    by = _names(configs)
    return {path: tuple(by[name].values("seconds_per_epoch") for name in pair)
            for path, pair in SPEED_PATHS.items()}


def _judge_compiled_speed(configs: Sequence[Configuration], study: Study) -> Judgement:
    by = _names(configs)
    share = by["profile / faithful"].values("python_share")
    # Records made before the native rows existed, or where the operator could not be built
    # (no seconds), show no native comparison.
    native = [by[name].values("seconds_per_epoch") if name in by else [] for name in NATIVE_PATH]
    shown = {"native": (study.stated("native"), *native)} \
        if all(times and None not in times for times in native) else {}
    return criteria.compiled_speed(speed_times(configs), share, study.stated("faster"),
                                   study.stated("because interpreted"), shown)


def _judge_ablations(configs: Sequence[Configuration], study: Study) -> Judgement:
    by = _names(configs)
    full = _seeded(by[FULL_BN], "final_acc")
    parts = {name: criteria.ablation(full, _seeded(by[config], "final_acc"), study.stated(name))
             for name, (config, _) in ABLATIONS.items()}
    verdicts = {name: j.verdict for name, j in parts.items()}
    return criteria.Judgement(criteria.combine(verdicts), verdicts,
                              [c for j in parts.values() for c in j.comparisons])


JUDGES: Dict[str, Callable[..., Judgement]] = {
    "faster": _judge_faster, "batch-noise": _judge_batch_noise,
    "regularization": _judge_regularization, "covariate-shift": _judge_covariate_shift,
    "compiled-speed": _judge_compiled_speed, "ablations": _judge_ablations}


def judge(study: str, configs: Sequence[Configuration], settings: Settings) -> Judgement:
    """Return the :class:`~gluon_bn.study.criteria.Judgement` of `study` from its finished runs.

    With fewer than three seeds anywhere, every verdict is that one "inconclusive".
    """
    few = criteria.too_few_seeds({c.name: c.runs for c in configs})
    parts = {name: few for name in ABLATIONS} if study == "ablations" else None
    if few:
        return criteria.Judgement(few, parts)
    if study == "learning-rate":
        return _judge_learning_rate(configs, get_study(study), settings)
    return JUDGES[study](configs, get_study(study))


def record_of(study: Study, settings: Settings, options: Dict[str, object],
              environment: Dict[str, object], configs: List[Configuration]) -> StudyRecord:
    """Return the study record of finished `configs`: judged, with its comparisons and failures.

    The one place a record is judged: after a run (:func:`gluon_bn.study.runner.run_study`)
    and when the committed records are re-judged (``gluon-bn study --regenerate``).
    """
    judgement = judge(study.name, configs, settings)
    deciding = dict(dataclasses.asdict(study.deciding), shortfalls=study.below_deciding(settings),
                    command=study.deciding_command()) if study.deciding else {}
    return StudyRecord(study.name, study.claim, study.source, study.measurement,
                       study.statement(), study.scale_note(settings), options, environment,
                       configs, judgement.verdict, judgement.parts,
                       [c.to_json() for c in judgement.comparisons], failures(configs), deciding)


# --------------------------------------------------------------------------- displays

@dataclass(frozen=True)
class Display:
    """What a study's report tabulates and how its figure draws it.

    Attributes
    ----------
    metrics : tuple of str
        Run keys tabulated (mean ± sd over seeds), in order.
    plot : {"curves", "sweep", "bars"}
        Per-epoch curves (``curve``), a metric against a swept setting, or bars per
        configuration.
    panels : str, optional
        "curves": the setting that splits the figure into panels.
    x : str, optional
        "sweep": the swept setting (log axis).
    series : str, optional
        "sweep": the setting whose values are separate lines; without it, each metric is one.
    ylabel : str
        The vertical axis (curves, sweep).
    bars : tuple of str
        "bars": the metrics drawn, one panel each.
    """

    metrics: Tuple[str, ...]
    plot: str
    panels: Optional[str] = None
    x: Optional[str] = None
    series: Optional[str] = None
    ylabel: str = "held-out accuracy"
    bars: Tuple[str, ...] = ()


DISPLAYS: Dict[str, Display] = {
    "faster": Display(("final_acc", "train_seconds"), "curves", panels="loop"),
    "learning-rate": Display(("final_acc",), "sweep", x="lr", series="network",
                             ylabel="final test accuracy"),
    "batch-noise": Display(("moving_acc", "batch_stats_acc", "population_acc", "train_seconds"),
                           "sweep", x="batch_size", ylabel="test accuracy"),
    "regularization": Display(("train_acc", "final_acc", "gap"), "bars",
                              bars=("train_acc", "final_acc", "gap")),
    "covariate-shift": Display(("final_acc", "train_seconds"), "curves"),
    "compiled-speed": Display(("seconds_per_epoch", "python_share", "operator_ms", "wall_ms"),
                              "bars", bars=("seconds_per_epoch", "python_share")),
    "ablations": Display(("final_acc", "train_seconds"), "bars", bars=("final_acc",)),
}

LABELS = {"final_acc": "test acc", "train_acc": "train acc (prediction mode)",
          "gap": "train − test gap", "train_seconds": "training s", "moving_acc":
          "moving averages", "batch_stats_acc": "batch statistics", "population_acc":
          "whole-data statistics", "seconds_per_epoch": "s/epoch", "python_share":
          "share outside operators", "operator_ms": "operator ms/step", "wall_ms": "wall ms/step"}
ACCURACY_KEYS = ("final_acc", "train_acc", "moving_acc", "batch_stats_acc", "population_acc")
TIME_KEYS = ("train_seconds", "seconds_per_epoch", "operator_ms", "wall_ms", "unprofiled_ms")
