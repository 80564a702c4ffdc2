"""What each study runs: its configurations for given settings. Pure data and functions, no MXNet.

Per study, :data:`CONFIGURATIONS` lists its configurations for given settings. How their
finished runs reach the criterion is :mod:`gluon_bn.study.judges` (each judge run through
:func:`gluon_bn.study.judging.with_holm`); what a report tabulates and a figure draws is
:mod:`gluon_bn.study.displays`; the experiments that produce the runs are in
:mod:`gluon_bn.study.experiments` (MXNet).

Every run is a dict with its ``seed``. Accuracies are fractions in [0, 1]; a diverged run
has ``diverged: true`` and ``None`` accuracies, which the criteria count at chance.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Sequence

from gluon_bn.study.registry import Settings
from gluon_bn.study.study_record import Configuration

LOOPS = ("train_ch5", "d2l.Trainer")
ABLATIONS = {  # ablation name -> (configuration, lenet options); claims: registry.STUDIES
    "frozen-gamma-beta": ("gamma, beta frozen", {"bn": "frozen"}),
    "mean-only": ("mean-only BN", {"bn": "mean-only"}),
    "variance-only": ("variance-only BN", {"bn": "var-only"}),
    "after-activation": ("BN after activation", {"bn": "gluon", "bn_position": "after"}),
}
FULL_BN = "full BN"
# the ablations' bias identity: checked per seed on BN LeNet, not trained (ablated.bias_fact)
BIAS_CHECK = "bias identity (checked, not trained)"


def _names(configs: Sequence[Configuration]) -> Dict[str, Configuration]:
    return {c.name: c for c in configs}


# --------------------------------------------------------------------------- configurations


def _faster(s: Settings) -> List[Configuration]:
    return [
        Configuration(f"{loop} / {variant}", {"loop": loop, "variant": variant})
        for loop in LOOPS
        for variant in ("plain", "gluon")
    ]


def _learning_rate(s: Settings) -> List[Configuration]:
    return [
        Configuration(f"{net} lr {lr:g}", {"network": net, "bn": kind, "lr": lr})
        for lr in s.grid
        for net, kind in (("plain", "none"), ("BN", "gluon"))
    ]


def _batch_noise(s: Settings) -> List[Configuration]:
    # One network per seed, trained at the settings' batch size and rate; the grid holds the
    # evaluation batch sizes of its batch statistics.
    return [
        Configuration("BN", {"bn": "gluon", "eval_batch_sizes": sorted(int(b) for b in s.grid)})
    ]


def _regularization(s: Settings) -> List[Configuration]:
    # Each network at every rate of the grid (each picks its own, criteria.choose_fitted_rate).
    drop, fit, share = s.param("dropout"), s.param("fit_loss"), s.param("validation")
    return [
        Configuration(
            f"{net} lr {lr:g}",
            {
                "network": net,
                "bn": kind,
                "dropout": p,
                "lr": lr,
                "fit_loss": fit,
                "validation": share,
            },
        )
        for net, kind, p in (
            ("plain", "none", 0.0),
            ("plain + dropout", "none", drop),
            ("BN", "gluon", 0.0),
            ("BN + dropout", "gluon", drop),
        )
        for lr in s.grid
    ]


def _covariate_shift(s: Settings) -> List[Configuration]:
    noise = {"shift": s.param("shift"), "spread": s.param("spread")}
    return [
        Configuration("plain", {"bn": "none"}),
        Configuration("BN", {"bn": "gluon"}),
        Configuration("noisy BN", {"bn": "gluon", "noise": noise}),
    ]


def _compiled_speed(s: Settings) -> List[Configuration]:
    configs = []
    for pipeline in ("d2l", "fast"):  # the bench's paths (gluon_bn.bench.bench.default_configs)
        for variant, impl, compiled in (
            ("scratch", "faithful", "none"),
            ("scratch", "faithful", "layers"),
            ("scratch", "fast", "none"),
            ("gluon", "faithful", "none"),
            ("gluon", "faithful", "layers"),
        ):
            configs.append(
                Configuration(
                    f"train_ch5 / {pipeline} / {variant}{' ' + impl if variant == 'scratch' else ''}"
                    f"{' hybridized' if compiled != 'none' else ''}",
                    {
                        "kind": "bench",
                        "loop": "train_ch5",
                        "pipeline": pipeline,
                        "variant": variant,
                        "bn_impl": impl,
                        "hybridize": compiled,
                    },
                )
            )
    for variant, impl in (("scratch", "faithful"), ("scratch", "fast"), ("gluon", "faithful")):
        configs.append(
            Configuration(
                f"d2l.Trainer / d2l / {variant}{' ' + impl if variant == 'scratch' else ''}",
                {
                    "kind": "book",
                    "loop": "d2l.Trainer",
                    "pipeline": "d2l",
                    "variant": variant,
                    "bn_impl": impl,
                    "hybridize": "none",
                },
            )
        )
    # What the claim implies: a compiled scratch layer (our C++ operator) in the same static
    # graph as the built-in one. Shown beside the verdict, not deciding it.
    for name, (variant, impl) in NATIVE_PATH.items():
        configs.append(
            Configuration(
                name,
                {
                    "kind": "bench",
                    "loop": "train_ch5",
                    "pipeline": "fast",
                    "variant": variant,
                    "bn_impl": impl,
                    "hybridize": "graph",
                },
            )
        )
    for impl in ("faithful", "fast", "gluon"):
        configs.append(Configuration(f"profile / {impl}", {"kind": "profile", "impl": impl}))
    return configs


# compiled-speed's shown comparison: the native scratch layer against nn.BatchNorm, both in
# one static graph (train_ch5, fast pipeline); (variant, bn_impl) by configuration name.
NATIVE_PATH = {
    "train_ch5 / fast / scratch native graph": ("scratch", "native"),
    "train_ch5 / fast / gluon graph": ("gluon", "faithful"),
}


def _ablations(s: Settings) -> List[Configuration]:
    # each trained network chooses its rate of s.grid inside its run (one run per seed)
    return (
        [Configuration(FULL_BN, {"bn": "gluon"})]
        + [Configuration(name, dict(options)) for name, options in ABLATIONS.values()]
        + [Configuration(BIAS_CHECK, {"bn": "gluon", "check": "bias identity"})]
    )


CONFIGURATIONS: Dict[str, Callable[[Settings], List[Configuration]]] = {
    "faster": _faster,
    "learning-rate": _learning_rate,
    "batch-noise": _batch_noise,
    "regularization": _regularization,
    "covariate-shift": _covariate_shift,
    "compiled-speed": _compiled_speed,
    "ablations": _ablations,
}


# --------------------------------------------------------------------------- judges


# --------------------------------------------------------------------------- displays
