"""The studies, gathered: one frozen dataclass per claim, with its settings. Pure data, no MXNet.

A :class:`Study` (defined in :mod:`gluon_bn.study.settings`) says what the documents claim
and where, what is measured, the criterion that turns the numbers into a verdict
(:mod:`gluon_bn.study.criteria`), whose LeNet it trains (a recipe of :mod:`gluon_bn.recipes`),
and two :class:`Settings`: the committed defaults, which are its deciding :class:`Scale`, and
a ``--quick`` one, with the comparisons its verdict reads (:class:`Claimed`). The entries
are written in :mod:`~gluon_bn.study.claims_effects` (what BN does to training) and
:mod:`~gluon_bn.study.claims_layer` (the layer itself); ``gluon-bn study --list`` prints them
in the order of :data:`STUDIES`.
"""

from __future__ import annotations

from typing import Dict

from gluon_bn.study.claims_effects import DROPOUT, EFFECTS, FASTER_TARGET, FIT_LOSS
from gluon_bn.study.claims_layer import BIAS_TOLERANCE, LAYER, SETTLING_STEPS, SPEED_SPREAD
from gluon_bn.study.settings import (
    HELD_OUT_SHARE,
    TEST_SIZE,
    TRAIN_SIZE,
    Claimed,
    Scale,
    Settings,
    Study,
    percent,
)

__all__ = [
    "STUDIES",
    "Study",
    "get_study",
    "Settings",
    "Claimed",
    "Scale",
    "percent",
    "TRAIN_SIZE",
    "TEST_SIZE",
    "FASTER_TARGET",
    "FIT_LOSS",
    "DROPOUT",
    "HELD_OUT_SHARE",
    "BIAS_TOLERANCE",
    "SETTLING_STEPS",
    "SPEED_SPREAD",
]


# in the order `gluon-bn study --list` prints and `gluon-bn study all` runs them
STUDIES: Dict[str, Study] = {s.name: s for s in (*EFFECTS, *LAYER)}


def get_study(name: str) -> Study:
    """Return the study called `name`.

    Raises
    ------
    KeyError
        Naming the valid studies, when `name` is not one.
    """
    if name not in STUDIES:
        raise KeyError(f"unknown study {name!r}; the studies are: {', '.join(STUDIES)} (or all)")
    return STUDIES[name]
