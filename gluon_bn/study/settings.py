"""How large a study runs and what it states before it runs: settings, comparisons, scales.

Pure data, no MXNet: :class:`Settings` (seeds, epochs, data, grid), :class:`Claimed` (one
comparison a verdict reads, its claimed direction and margin), :class:`Scale` (the
smallest scale at which a verdict is meant, which a study's defaults are) and
:class:`Study`, which holds them. The studies themselves are in
:mod:`gluon_bn.study.registry`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from gluon_bn.recipes import TEST_SIZE, TRAIN_SIZE
from gluon_bn.study.stats import CONFIDENCE, FAMILY_LEVEL, NEGLIGIBLE

GRID_KINDS = ("lr", "batch_size")  # what a study's grid holds, when it has one
ACCURACY_MARGIN = 0.01  # one point of test accuracy: smaller differences count as none
SPEED_MARGIN = math.log(1.1)  # within 10 % of each other, two times count as the same
# ablations and regularization: the share of the kept training images held out (the last
# ones) to choose each network's learning rate, 10000 of 60000
HELD_OUT_SHARE = 1 / 6
# the quick runs' scale (every study's ``quick`` settings); the study package's own names
_TINY = dict(seeds=1, epochs=1, fraction=0.02, test_fraction=0.05)


def _params(**values: object) -> Tuple[Tuple[str, object], ...]:
    """Return a study's extra parameters as sorted (name, value) pairs (hashable, stable)."""
    return tuple(sorted(values.items()))


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
    test : {"t", "sign"}
        A t interval of the mean difference (:mod:`gluon_bn.study.stats`), or the exact
        sign test over the seeds with the median and its order-statistic interval.
    """

    name: str
    label: str
    claim: str
    margin: float
    role: str = "decides"
    test: str = "t"

    def text(self) -> str:
        """Return the statement in one phrase: label, claim, margin (and the test when not t)."""
        by = (
            ", by the exact one-sided sign test over the seeds (ties against the claim)"
            if self.test == "sign"
            else ""
        )
        return f"{self.name}: {self.label}, claimed {self.claim}, margin ±{self.margin:.3g}{by}"


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


def without_first_seed_0(settings: Dict[str, object]) -> Dict[str, object]:
    """Return a settings dict without ``first_seed`` when it is 0 (in place): records, progress
    files and entry fingerprints written before the field existed read the same."""
    if not settings.get("first_seed"):
        settings.pop("first_seed", None)
    return settings


@dataclass(frozen=True)
class Settings:
    """How large a study runs: seeds, epochs, the share of the data, the grid.

    Attributes
    ----------
    seeds : int
        How many seeds per configuration (rounds, for compiled-speed).
    first_seed : int
        The first of them: seeds ``first_seed .. first_seed + seeds - 1`` (:attr:`seed_numbers`),
        so that a study re-run after a pilot draws seeds the pilot did not. Left out of
        :meth:`as_dict` when 0, so records written before it existed read the same.
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
    first_seed: int = 0
    epochs: int = 5
    fraction: float = 0.25
    test_fraction: float = 1.0
    batch_size: int = 256
    lr: float = 1.0
    grid: Tuple[float, ...] = ()
    params: Tuple[Tuple[str, object], ...] = ()

    @property
    def seed_numbers(self) -> range:
        """The seeds each configuration runs with, in order."""
        return range(self.first_seed, self.first_seed + self.seeds)

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
            raise KeyError(
                f"no setting {name!r}; this study has {sorted(dict(self.params))}"
            ) from None

    def as_dict(self) -> Dict[str, object]:
        """Return the settings as JSON-ready data (the record's ``options``)."""
        data = dataclasses.asdict(self)
        data.update(grid=list(self.grid), params=dict(self.params))
        return without_first_seed_0(data)

    @classmethod
    def from_dict(cls, data: Dict[str, object]) -> "Settings":
        """Return the settings stored as `data` (:meth:`as_dict`)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        values.update(
            grid=tuple(data.get("grid", ())),
            params=tuple(sorted(dict(data.get("params", {})).items())),
        )
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
        first = self.first_seed
        if isinstance(first, bool) or not isinstance(first, int) or first < 0:
            raise ValueError(f"the first seed must be a non-negative integer, got {first!r}")
        for name in ("fraction", "test_fraction"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in (0, 1], got {getattr(self, name)!r}")
        if not self.lr > 0:
            raise ValueError(f"the learning rate must be positive, got {self.lr!r}")
        if grid_kind == "lr" and any(not v > 0 for v in self.grid):
            raise ValueError(
                f"every learning rate of the grid must be positive, got {list(self.grid)}"
            )
        sizes = list(self.grid) if grid_kind == "batch_size" else [self.batch_size]
        for size in sizes:
            if size != int(size) or size < 1:
                raise ValueError(f"batch sizes must be positive integers, got {size!r}")
            if size > self.train_examples:
                raise ValueError(
                    f"batch size {int(size)} is larger than the {self.train_examples} training "
                    f"images that fraction {self.fraction:g} keeps; raise --fraction or use a "
                    f"smaller batch"
                )


def smaller_than(settings: Settings, options: Dict[str, object]) -> List[str]:
    """Return how `settings` are smaller than a record's `options`: fewer seeds or epochs, a
    smaller share of the training or test images (empty when they are not smaller).

    Parameters
    ----------
    settings : Settings
        What a study is about to run.
    options : dict
        A record's or progress file's options (:meth:`Settings.as_dict`).
    """
    short = []
    for name, what in (
        ("seeds", "seeds"),
        ("epochs", "epochs"),
        ("fraction", "fraction"),
        ("test_fraction", "test fraction"),
    ):
        theirs = options.get(name)
        if isinstance(theirs, (int, float)) and getattr(settings, name) < theirs:
            short.append(f"{what} {getattr(settings, name):g} < {theirs:g}")
    return short


def percent(fraction: float) -> str:
    """Return a fraction as a percentage with three significant digits: 0.4 -> "40%", 0.005 -> "0.5%"."""
    return f"{fraction * 100:.3g}%"


@dataclass(frozen=True)
class Study:
    """One claim of the documents, turned into an experiment with a computed verdict.

    Attributes
    ----------
    name : str
        The command-line name, also the stem of its files.
    claim : str
        What the documents say, in their words where they have them.
    source : str
        Which document and section.
    measurement : str
        What is measured, stated before the study runs.
    criterion : str
        How the numbers decide the verdict (see :mod:`gluon_bn.study.criteria`).
    recipe : str
        Whose LeNet, initialisation and BN conventions are trained (a recipe name).
    document_epochs : int
        Epochs the documents train for (0 when the study does not train to an accuracy).
    defaults, quick : Settings
        The committed settings, which are the deciding scale (``gluon-bn study NAME`` with no
        flags runs it), and those of ``--quick``.
    grid_kind : {"lr", "batch_size"}, optional
        What ``Settings.grid`` holds.
    ablations : tuple of str
        Names of the separate verdicts (``ablations`` only).
    timed : bool
        Its numbers are times: its runs never run in parallel (``--jobs`` is ignored for it,
        with one line), since runs side by side would time each other.
    comparisons : tuple of Claimed
        The differences the criterion reads, each with its claimed direction and margin.
    deciding : Scale, optional
        The smallest scale at which the verdict is meant.
    """

    name: str
    claim: str
    source: str
    measurement: str
    criterion: str
    recipe: str
    document_epochs: int
    defaults: Settings
    quick: Settings
    grid_kind: Optional[str] = None
    ablations: Tuple[str, ...] = ()
    timed: bool = False
    comparisons: Tuple[Claimed, ...] = ()
    deciding: Optional[Scale] = None

    def stated(self, name: str) -> Claimed:
        """Return the stated comparison called `name`."""
        for claimed in self.comparisons:
            if claimed.name == name:
                return claimed
        raise KeyError(f"study {self.name} states no comparison {name!r}")

    def statement(self) -> str:
        """Return the criterion with its comparisons and margins, as printed before the runs.

        It ends with the rules every study shares: what a directional comparison shown by
        less than its margin reads, and Holm's adjustment over the deciding comparisons.
        """
        return (
            f"{self.criterion}. Comparisons, each a {CONFIDENCE:.0%} t interval of a − b "
            f"paired over the shared seeds (Welch's when the seeds differ) unless stated "
            f"as a sign test: "
            + "; ".join(
                c.text() + (" (shown, not deciding)" if c.role != "decides" else "")
                for c in self.comparisons
            )
            + f". A claimed direction (greater, less) shown while the whole interval lies "
            f"within ±margin reads '{NEGLIGIBLE}': it holds, and is named as smaller "
            f"than the margin (so does a conjunction with such a part). The deciding "
            f"comparisons are one family: each has the p-value of its claim (one-sided "
            f"against 0 for greater/less, against −margin for noninferior, the TOST p for "
            f"equivalent, the sign test's), Holm-adjusted over the family at family-wise "
            f"level {FAMILY_LEVEL:g}; one whose adjusted p is above {FAMILY_LEVEL:g} "
            f"cannot hold (it is inconclusive unless it does not hold)"
        )

    def below_deciding(self, settings: Settings) -> List[str]:
        """Return how `settings` fall short of the deciding scale (empty: at or above it)."""
        return self.deciding.shortfalls(settings) if self.deciding else []

    def deciding_command(self, out: str = "results/studies") -> str:
        """Return the command that runs this study at its deciding scale."""
        d = self.deciding or Scale(
            self.defaults.fraction, self.defaults.epochs, self.defaults.seeds
        )
        return self.command(d.seeds, d.epochs, d.fraction, out=out)

    def command(
        self,
        seeds: int,
        epochs: int,
        fraction: float,
        *,
        first_seed: Optional[int] = None,
        batch_size: Optional[int] = None,
        grid: Optional[Sequence[float]] = None,
        threads: Optional[int] = None,
        out: str = "results/studies",
    ) -> str:
        """Return the ``gluon-bn study`` command that runs this study with these settings.

        Parameters
        ----------
        seeds, epochs, fraction
            As in :class:`Settings`.
        first_seed, batch_size, grid : optional
            Named only where they differ from the study's defaults.
        threads : int, optional
            ``--threads``: the OpenMP thread count the numbers depend on.
        out : str
            ``--out``.
        """
        words = [
            f"gluon-bn study {self.name} --seeds {seeds} --epochs {epochs} --fraction {fraction:g}"
        ]
        if first_seed is not None and first_seed != self.defaults.first_seed:
            words.append(f"--first-seed {first_seed}")
        if batch_size is not None and batch_size != self.defaults.batch_size:
            words.append(f"--batch-size {batch_size}")
        if grid and tuple(grid) != tuple(self.defaults.grid):
            words.append("--grid " + " ".join(f"{g:g}" for g in grid))
        if threads is not None:
            words.append(f"--threads {threads}")
        return " ".join(words + [f"--out {out}"])

    def settings(
        self,
        *,
        quick: bool = False,
        seeds: Optional[int] = None,
        first_seed: Optional[int] = None,
        epochs: Optional[int] = None,
        fraction: Optional[float] = None,
        batch_size: Optional[int] = None,
        grid: Optional[Sequence[float]] = None,
    ) -> Settings:
        """Return the defaults (or the quick settings) with what the user gave replaced, checked.

        Raises
        ------
        ValueError
            In one line, for settings that cannot run.
        """
        base = self.quick if quick else self.defaults
        given = dict(
            seeds=seeds,
            first_seed=first_seed,
            epochs=epochs,
            fraction=fraction,
            batch_size=batch_size,
            grid=None if grid is None else tuple(grid),
        )
        settings = dataclasses.replace(base, **{k: v for k, v in given.items() if v is not None})
        settings.check(self.grid_kind)
        return settings

    def scale_note(self, settings: Settings) -> str:
        """Return the report's first line: how the run's scale compares with the documents'."""
        if not self.document_epochs:
            return (
                f"Scale: each path is timed on {settings.fraction:g} of an epoch "
                f"({settings.train_examples} of {TRAIN_SIZE} images) and scaled to a whole epoch."
            )
        reduced = []
        if settings.fraction < 1:
            reduced.append(
                f"{percent(settings.fraction)} of the training images "
                f"({settings.train_examples} of {TRAIN_SIZE})"
            )
        if settings.test_fraction < 1:
            reduced.append(f"{settings.test_examples} of the {TEST_SIZE} test images")
        if settings.epochs < self.document_epochs:
            reduced.append(
                f"{settings.epochs} epochs where the documents train {self.document_epochs}"
            )
        if not reduced:
            return "Scale: the documents' full training set and epochs."
        return "Scale: smaller than the documents': " + ", ".join(reduced) + "."
