"""How large a study runs and what it states before it runs: settings, comparisons, scales.

Pure data, no MXNet: :class:`Settings` (seeds, epochs, data, grid), :class:`Claimed` (one
comparison a verdict reads, its claimed direction and margin) and :class:`Scale` (the
smallest scale at which a verdict is meant). The studies themselves are in
:mod:`gluon_bn.study.registry`.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

TRAIN_SIZE, TEST_SIZE = 60000, 10000  # Fashion-MNIST's training and test sets
GRID_KINDS = ("lr", "batch_size")     # what a study's grid holds, when it has one
ACCURACY_MARGIN = 0.01  # one point of test accuracy: smaller differences count as none
SPEED_MARGIN = math.log(1.1)  # within 10 % of each other, two times count as the same


@dataclass(frozen=True)
class Claimed:
    """One comparison a study's verdict reads, stated before the study runs.

    Attributes
    ----------
    name : str
        Which part of the claim (a loop, an ablation, "faster", ...).
    label : str
        The difference a − b, in words: what minus what, of which quantity.
    claim : {"greater", "less", "equivalent", "noninferior"}
        What the documents' claim says about the difference (see
        :mod:`gluon_bn.study.stats`).
    margin : float
        The largest difference that counts as none, in the difference's units.
    role : {"decides", "reference"}
        Whether the verdict reads it or the report only shows it (dropout, other rates).
    """

    name: str
    label: str
    claim: str
    margin: float
    role: str = "decides"

    def text(self) -> str:
        """Return the statement in one phrase: label, claim and margin."""
        return f"{self.name}: {self.label}, claimed {self.claim}, margin ±{self.margin:.3g}"


@dataclass(frozen=True)
class Scale:
    """The smallest scale at which a study's verdict is meant: below it, a verdict is provisional.

    Attributes
    ----------
    fraction : float
        Share of the training images.
    epochs : int
    seeds : int
    why : str
        Why this scale (what the control must do there).
    """

    fraction: float
    epochs: int
    seeds: int
    why: str = ""

    def shortfalls(self, settings: "Settings") -> List[str]:
        """Return how `settings` fall short of this scale (empty when they reach it)."""
        short = []
        if settings.fraction < self.fraction:
            short.append(f"fraction {settings.fraction:g} < {self.fraction:g}")
        if settings.epochs < self.epochs:
            short.append(f"{settings.epochs} epochs < {self.epochs}")
        if settings.seeds < self.seeds:
            short.append(f"{settings.seeds} seeds < {self.seeds}")
        return short


@dataclass(frozen=True)
class Settings:
    """How large a study runs: seeds, epochs, the share of the data, the grid.

    Attributes
    ----------
    seeds : int
        Seeds 0 .. seeds-1 per configuration (rounds, for compiled-speed).
    epochs : int
        Training epochs per run (for compiled-speed: epochs of the d2l.Trainer timing, the
        first one a warm-up).
    fraction : float
        Share of the 60000 training images (the first ones), in (0, 1]; for compiled-speed
        the share of an epoch each path is timed on (scaled up to an epoch).
    test_fraction : float
        Share of the 10000 test images evaluated.
    batch_size : int
        Training batch size.
    lr : float
        Learning rate (of the mean loss's gradient).
    grid : tuple of float
        The swept values: learning rates (``learning-rate``) or batch sizes (``batch-noise``).
    params : tuple of (str, object)
        Study-specific values (noise amplitude, dropout rate, the activation when not the
        documents' sigmoid, ...), read with :meth:`param`.
    """

    seeds: int = 3
    epochs: int = 5
    fraction: float = 0.25
    test_fraction: float = 1.0
    batch_size: int = 256
    lr: float = 1.0
    grid: Tuple[float, ...] = ()
    params: Tuple[Tuple[str, object], ...] = ()

    @property
    def train_examples(self) -> int:
        """Training images used: ``fraction`` of 60000, at least one."""
        return max(1, round(self.fraction * TRAIN_SIZE))

    @property
    def test_examples(self) -> int:
        """Test images evaluated: ``test_fraction`` of 10000, at least one."""
        return max(1, round(self.test_fraction * TEST_SIZE))

    def param(self, name: str) -> object:
        """Return the study-specific value called `name`."""
        try:
            return dict(self.params)[name]
        except KeyError:
            raise KeyError(f"no setting {name!r}; this study has {sorted(dict(self.params))}") from None

    def as_dict(self) -> Dict[str, object]:
        """Return the settings as JSON-ready data (the record's ``options``)."""
        data = dataclasses.asdict(self)
        data.update(grid=list(self.grid), params=dict(self.params))
        return data

    @classmethod
    def from_dict(cls, data: Dict[str, object]) -> "Settings":
        """Return the settings stored as `data` (:meth:`as_dict`)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        values.update(grid=tuple(data.get("grid", ())),
                      params=tuple(sorted(dict(data.get("params", {})).items())))
        return cls(**values)

    def check(self, grid_kind: Optional[str] = None) -> None:
        """Raise ValueError, in one line, for settings that cannot run (before any training).

        Parameters
        ----------
        grid_kind : {"lr", "batch_size"}, optional
            What the grid holds, so that each value is checked as what it is.
        """
        for name in ("seeds", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("fraction", "test_fraction"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in (0, 1], got {getattr(self, name)!r}")
        if not self.lr > 0:
            raise ValueError(f"the learning rate must be positive, got {self.lr!r}")
        if grid_kind == "lr" and any(not v > 0 for v in self.grid):
            raise ValueError(f"every learning rate of the grid must be positive, got "
                             f"{list(self.grid)}")
        sizes = list(self.grid) if grid_kind == "batch_size" else [self.batch_size]
        for size in sizes:
            if size != int(size) or size < 1:
                raise ValueError(f"batch sizes must be positive integers, got {size!r}")
            if size > self.train_examples:
                raise ValueError(
                    f"batch size {int(size)} is larger than the {self.train_examples} training "
                    f"images that fraction {self.fraction:g} keeps; raise --fraction or use a "
                    f"smaller batch")


def percent(fraction: float) -> str:
    """Return a fraction as a percentage with three significant digits: 0.4 -> "40%", 0.005 -> "0.5%"."""
    return f"{fraction * 100:.3g}%"
