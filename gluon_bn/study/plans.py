"""What each study runs and how its numbers reach the criterion. Pure data and functions, no MXNet.

Per study: :data:`CONFIGURATIONS` lists its configurations for given settings, :data:`JUDGES`
reads the finished runs and calls :mod:`gluon_bn.study.criteria`, :data:`DISPLAYS` says
which numbers its report tabulates and how its figure draws them. The experiments that
produce the runs are in :mod:`gluon_bn.study.experiments` (MXNet).

Every run is a dict with its ``seed``. Accuracies are fractions in [0, 1]; a diverged run
has ``diverged: true`` and ``None`` accuracies, which the criteria count at chance.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from gluon_bn.study import criteria
from gluon_bn.study.record import Configuration
from gluon_bn.study.registry import Settings

Judgement = Tuple[str, Optional[Dict[str, str]]]  # (verdict, verdicts per ablation or None)

LOOPS = ("train_ch5", "d2l.Trainer")
ABLATIONS = {  # ablation name -> (configuration, lenet options, criterion, what is removed)
    "bias": ("no bias before BN", {"bn": "gluon", "bias_before_bn": False}, "redundant",
             "the bias of the layers BN follows"),
    "frozen-gamma-beta": ("gamma, beta frozen", {"bn": "frozen"}, "matters",
                          "learning gamma and beta"),
    "mean-only": ("mean-only BN", {"bn": "mean-only"}, "matters", "scaling by the deviation"),
    "variance-only": ("variance-only BN", {"bn": "var-only"}, "matters", "centring on the mean"),
    "after-activation": ("BN after activation", {"bn": "gluon", "bn_position": "after"},
                         "matters", "BN before the activation"),
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
    for impl in ("faithful", "fast", "gluon"):
        configs.append(Configuration(f"profile / {impl}", {"kind": "profile", "impl": impl}))
    return configs


def _ablations(s: Settings) -> List[Configuration]:
    return [Configuration(FULL_BN, {"bn": "gluon"})] + [
        Configuration(name, dict(options)) for name, options, _, _ in ABLATIONS.values()]


CONFIGURATIONS: Dict[str, Callable[[Settings], List[Configuration]]] = {
    "faster": _faster, "learning-rate": _learning_rate, "batch-noise": _batch_noise,
    "regularization": _regularization, "covariate-shift": _covariate_shift,
    "compiled-speed": _compiled_speed, "ablations": _ablations}


# --------------------------------------------------------------------------- judges

def _judge_faster(configs: Sequence[Configuration], s: Settings) -> Judgement:
    by = _names(configs)
    parts = {loop: criteria.faster(by[f"{loop} / plain"].values("curve"),
                                   by[f"{loop} / gluon"].values("curve")) for loop in LOOPS}
    return criteria.combine(parts), None


def _judge_learning_rate(configs: Sequence[Configuration], s: Settings) -> Judgement:
    by = _names(configs)
    runs = {net: [by[f"{net} lr {lr:g}"].values("final_acc") for lr in s.grid]
            for net in ("plain", "BN")}
    return criteria.learning_rate(list(s.grid), runs["plain"], runs["BN"]), None


def _judge_batch_noise(configs: Sequence[Configuration], s: Settings) -> Judgement:
    ordered = sorted(configs, key=lambda c: c.settings["batch_size"])
    values = {key: [criteria.accuracies(c.values(key)) for c in ordered]
              for key in ("moving_acc", "batch_stats_acc", "population_acc")}
    return criteria.batch_noise([c.settings["batch_size"] for c in ordered], values["moving_acc"],
                                values["batch_stats_acc"], values["population_acc"]), None


def _judge_regularization(configs: Sequence[Configuration], s: Settings) -> Judgement:
    by = _names(configs)
    plain, bn = by["plain"], by["BN"]
    return criteria.regularization(
        *(criteria.accuracies(c.values(k)) for c in (plain, bn) for k in ("train_acc", "final_acc"))
    ), None


def _judge_covariate_shift(configs: Sequence[Configuration], s: Settings) -> Judgement:
    by = _names(configs)
    return criteria.covariate_shift(*(by[n].values("final_acc")
                                      for n in ("plain", "BN", "noisy BN"))), None


def speed_ratios(configs: Sequence[Configuration]) -> Dict[str, List[float]]:
    """Per loop and pipeline, per round: the faithful imperative scratch layer's time over nn.BatchNorm's."""
    by = _names(configs)
    pairs = {"train_ch5 / d2l": ("train_ch5 / d2l / scratch faithful", "train_ch5 / d2l / gluon"),
             "train_ch5 / fast": ("train_ch5 / fast / scratch faithful", "train_ch5 / fast / gluon"),
             "d2l.Trainer / d2l": ("d2l.Trainer / d2l / scratch faithful", "d2l.Trainer / d2l / gluon")}
    return {path: [a / b for a, b in zip(by[scratch].values("seconds_per_epoch"),
                                         by[builtin].values("seconds_per_epoch"))]
            for path, (scratch, builtin) in pairs.items()}


def _judge_compiled_speed(configs: Sequence[Configuration], s: Settings) -> Judgement:
    share = _names(configs)["profile / faithful"].values("python_share")
    return criteria.compiled_speed(speed_ratios(configs), share), None


def _judge_ablations(configs: Sequence[Configuration], s: Settings) -> Judgement:
    by = _names(configs)
    full = by[FULL_BN].values("final_acc")
    rules = {"redundant": criteria.redundant, "matters": criteria.matters}
    verdicts = {name: rules[rule](full, by[config].values("final_acc"), what)
                for name, (config, _, rule, what) in ABLATIONS.items()}
    return criteria.combine(verdicts), verdicts


JUDGES: Dict[str, Callable[[Sequence[Configuration], Settings], Judgement]] = {
    "faster": _judge_faster, "learning-rate": _judge_learning_rate,
    "batch-noise": _judge_batch_noise, "regularization": _judge_regularization,
    "covariate-shift": _judge_covariate_shift, "compiled-speed": _judge_compiled_speed,
    "ablations": _judge_ablations}


def judge(study: str, configs: Sequence[Configuration], settings: Settings) -> Judgement:
    """Return (verdict, verdicts) of `study` from its finished configurations.

    With fewer than three seeds anywhere, every verdict is that one "inconclusive".
    """
    few = criteria.too_few_seeds({c.name: c.runs for c in configs})
    if few:
        return few, ({name: few for name in ABLATIONS} if study == "ablations" else None)
    return JUDGES[study](configs, settings)


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
