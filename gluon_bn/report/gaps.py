"""The results table's verdicts: is a published number out of our reach, and is it an outlier?

The rules, stated once (the README that :mod:`gluon_bn.results` generates says the same):

*Spread* of a metric is the sample standard deviation (``ddof=1``) of its last-epoch values;
it needs at least two values. The **seeds' spread** is taken over our seeds of one variant in
one record. The **published spread** is taken over the numbers printed for the same variant
and epoch by the document and by the other published runs stored with its recipe
(:attr:`gluon_bn.recipes.Recipe.published_elsewhere`, e.g. the upstream edition of the book).

The **tolerance** of a metric is ``TOLERANCE_SPREADS`` (2) times the larger of the two
spreads that are known, and the table names the one it used. A document's number more than
the tolerance away from our mean is a **gap**. With one seed and no other published run
there is no tolerance and the metric is **untested**: a single run's spread of 0 says nothing
about how far runs scatter, so it cannot turn a difference into a gap.

A **document outlier** is found by the same measure. A document's scratch layer and its
built-in one compute the same thing with the same set-up, so their printed numbers are two
runs of one computation. Two runs whose spreads are s1 and s2 differ by their difference's
spread ``sqrt(s1² + s2²)``; so the pair *disagrees* when it differs by more than
``sqrt(t1² + t2²)`` (t the two variants' tolerances, i.e. two such spreads). When it
disagrees and exactly one of the two numbers is outside its own tolerance of our mean, that
number is the outlier; otherwise the note says the pair disagrees and names neither.

This module imports no MXNet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from gluon_bn.recipes import EpochLine, Recipe

TOLERANCE_SPREADS = 2.0
SOURCES = ("seeds", "published")


def published_lines(recipe: Recipe, variant: str, epoch: int) -> Dict[str, EpochLine]:
    """Return source -> line printed for `variant` at `epoch`: "document", then each other source.

    Parameters
    ----------
    recipe : Recipe
        Whose document (:attr:`Recipe.printed`) and other published runs
        (:attr:`Recipe.published_elsewhere`) to read.
    variant : {"scratch", "gluon", "plain"}
        Which network.
    epoch : int
        Only lines of this epoch count: runs of other lengths are not comparable.
    """
    sources = [("document", recipe.printed_run(variant))] + [
        (name, next((r for r in other.runs if r.variant == variant), None))
        for name, other in recipe.published_elsewhere.items()
    ]
    return {name: line for name, run in sources if run for line in run.lines if line.epoch == epoch}


def spread(values: Sequence[float]) -> Optional[float]:
    """Return the sample standard deviation of `values`; None for fewer than two values.

    Parameters
    ----------
    values : sequence of float
        Last-epoch values of one metric (one per seed, or one per published run).
    """
    arr = np.asarray(values, dtype="float64")
    return float(arr.std(ddof=1)) if arr.size > 1 else None


@dataclass(frozen=True)
class Tolerance:
    """How far a published number may lie from our mean, and which spread set it.

    Attributes
    ----------
    seeds : float, optional
        Our seeds' spread (None with one seed).
    published : float, optional
        The published runs' spread (None with fewer than two published numbers).
    """

    seeds: Optional[float]
    published: Optional[float]

    @property
    def source(self) -> Optional[str]:
        """Return "seeds" or "published", whichever spread is larger (seeds on a tie), or None."""
        known = [
            (value, name)
            for name, value in zip(SOURCES, (self.seeds, self.published))
            if value is not None
        ]
        return max(known, key=lambda pair: pair[0])[1] if known else None

    @property
    def value(self) -> Optional[float]:
        """Return ``TOLERANCE_SPREADS`` times the chosen spread, or None when none is known."""
        source = self.source
        return None if source is None else TOLERANCE_SPREADS * getattr(self, source)

    def describe(self, digits: int) -> str:
        """Return the tolerance as the table shows it: ``±0.018 published``, or ``none``."""
        return "none" if self.value is None else f"±{self.value:.{digits}f} {self.source}"


def choose_tolerance(ours: Sequence[float], published: Sequence[float]) -> Tolerance:
    """Return the tolerance of one metric from our last-epoch values and the published numbers.

    Parameters
    ----------
    ours : sequence of float
        Our last-epoch values, one per seed.
    published : sequence of float
        What the document and the other published runs printed for the same variant and
        epoch (the document's own number included).
    """
    return Tolerance(seeds=spread(ours), published=spread(published))


@dataclass(frozen=True)
class Comparison:
    """One metric of one variant at our last epoch: the published numbers, ours, the tolerance.

    Attributes
    ----------
    metric : str
        The metric's name (``loss``, ``test_acc``, ...).
    published : dict
        Source ("document", or a name of :attr:`Recipe.published_elsewhere`) -> number.
    ours : tuple of float
        Our values, one per seed.
    tolerance : Tolerance
        From `ours` and every number in `published`.
    """

    metric: str
    published: Mapping[str, float]
    ours: Tuple[float, ...]
    tolerance: Tolerance

    @property
    def mean(self) -> float:
        """Return our mean."""
        return float(np.mean(self.ours))

    def outside(self, source: str = "document") -> Optional[bool]:
        """Return whether `source`'s number lies beyond the tolerance of our mean (None: untestable)."""
        number, allowed = self.published.get(source), self.tolerance.value
        if number is None or allowed is None:
            return None
        return abs(number - self.mean) > allowed

    @property
    def verdict(self) -> Optional[str]:
        """Return "gap", "within" or "untested" for the document's number (None: it printed none)."""
        if "document" not in self.published:
            return None
        outside = self.outside()
        return "untested" if outside is None else ("gap" if outside else "within")


def compare(
    lines: Mapping[str, object], ours: Mapping[str, Sequence[float]]
) -> Dict[str, Comparison]:
    """Return a :class:`Comparison` per metric of `ours`.

    Parameters
    ----------
    lines : mapping
        Source -> printed line with the metrics as attributes (what
        :func:`published_lines` returns).
    ours : mapping
        Metric -> our last-epoch values, one per seed.
    """
    out = {}
    for metric, values in ours.items():
        published = {
            source: float(getattr(line, metric))
            for source, line in lines.items()
            if getattr(line, metric, None) is not None
        }
        out[metric] = Comparison(
            metric, published, tuple(values), choose_tolerance(values, list(published.values()))
        )
    return out


@dataclass(frozen=True)
class Outlier:
    """A published pair (scratch, built-in) that disagrees beyond what two runs do.

    Attributes
    ----------
    source : str
        "document", or the name of another published run.
    metric : str
        The metric.
    numbers : dict
        Variant -> the number printed.
    means : dict
        Variant -> our mean.
    difference, allowed : float
        How far apart the pair is, and how far two runs may be (``sqrt(t1² + t2²)``).
    odd : str, optional
        The variant whose number is the outlier, or None when the rule names neither.
    """

    source: str
    metric: str
    numbers: Mapping[str, float]
    means: Mapping[str, float]
    difference: float
    allowed: float
    odd: Optional[str]


PAIR = ("scratch", "gluon")


def find_outliers(comparisons: Mapping[str, Mapping[str, Comparison]]) -> List[Outlier]:
    """Return every published scratch/built-in pair that disagrees (see the module's rule).

    Parameters
    ----------
    comparisons : mapping
        Variant -> metric -> :class:`Comparison` (what :func:`compare` returns per variant).
    """
    if not all(v in comparisons for v in PAIR):
        return []
    found = []
    for metric in comparisons[PAIR[0]]:
        pair = [comparisons[v].get(metric) for v in PAIR]
        if None in pair or None in (c.tolerance.value for c in pair):
            continue
        allowed = math.hypot(*(c.tolerance.value for c in pair))
        for source in pair[0].published:
            if source not in pair[1].published:
                continue
            numbers = {v: c.published[source] for v, c in zip(PAIR, pair)}
            difference = abs(numbers[PAIR[0]] - numbers[PAIR[1]])
            if difference <= allowed:
                continue
            outside = [v for v, c in zip(PAIR, pair) if c.outside(source)]
            found.append(
                Outlier(
                    source,
                    metric,
                    numbers,
                    {v: c.mean for v, c in zip(PAIR, pair)},
                    difference,
                    allowed,
                    outside[0] if len(outside) == 1 else None,
                )
            )
    return found
