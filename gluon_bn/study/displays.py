"""What each study's report tabulates and how its figure draws it (pure data, no MXNet)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple


@dataclass(frozen=True)
class Display:
    """What a study's report tabulates and how its figure draws it.

    Attributes
    ----------
    metrics : tuple of str
        Run keys tabulated (mean ± sd over seeds), in order.
    plot : {"curves", "sweep", "bars", "statistics", "fit"}
        Per-epoch curves (``curve``), a metric against a swept setting, bars per
        configuration; batch-noise's accuracy by the statistics used, regularization's gap
        at matched fit (:mod:`gluon_bn.study.figures`).
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
    "learning-rate": Display(
        ("final_acc",), "sweep", x="lr", series="network", ylabel="final test accuracy"
    ),
    "batch-noise": Display(
        ("moving_acc", "population_acc", "train_seconds"), "statistics", ylabel="test accuracy"
    ),
    "regularization": Display(
        ("fit_epoch", "train_acc", "val_acc", "final_acc", "gap", "train_seconds"),
        "fit",
        ylabel="train − test accuracy gap",
    ),
    "covariate-shift": Display(("final_acc", "train_seconds"), "curves"),
    "compiled-speed": Display(
        ("seconds_per_epoch", "python_share", "operator_ms", "wall_ms"),
        "bars",
        bars=("seconds_per_epoch", "python_share"),
    ),
    "ablations": Display(("final_acc", "train_seconds"), "bars", bars=("final_acc",)),
}


LABELS = {
    "final_acc": "test acc",
    "train_acc": "train acc (prediction mode)",
    "gap": "train − test gap",
    "train_seconds": "training s",
    "moving_acc": "moving averages",
    "batch_stats_acc": "batch statistics",
    "population_acc": "whole-data statistics",
    "seconds_per_epoch": "s/epoch",
    "python_share": "share outside operators",
    "operator_ms": "operator ms/step",
    "wall_ms": "wall ms/step",
    "fit_epoch": "epochs to fit",
    "val_acc": "validation acc",
}


ACCURACY_KEYS = (
    "final_acc",
    "train_acc",
    "moving_acc",
    "batch_stats_acc",
    "population_acc",
    "val_acc",
)


TIME_KEYS = ("train_seconds", "seconds_per_epoch", "operator_ms", "wall_ms", "unprofiled_ms")
