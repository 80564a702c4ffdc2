"""What every study's criterion shares: verdict strings and their parts, per-seed values,
failed runs, the comparison of two configurations, and Holm's adjustment over a study's
family of deciding comparisons. The criteria themselves are in :mod:`gluon_bn.study.criteria`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence

from gluon_bn.study import stats
from gluon_bn.study.comparison import Comparison, compare, holm_adjusted
from gluon_bn.study.distributions import holm
from gluon_bn.study.stats import FAILS, HOLDS, NEGLIGIBLE, UNCLEAR

OUTCOMES = (HOLDS, FAILS, UNCLEAR)
MIN_SEEDS = 3
CHANCE = 0.1  # accuracy of a ten-class guess; a diverged run is counted at chance
LEARNED = 2 * CHANCE  # a run whose final accuracy is at most this has not learned
CHANCE_LOSS = math.log(10)  # cross-entropy of the uniform guess over ten classes
DIVERGED_LOSS = 2 * CHANCE_LOSS  # far worse than the uniform guess: the loss has exploded
TRAINS_AT = 0.7  # learning-rate: a run trains when its test accuracy reaches this
# Holm-adjusted p-values of a study's deciding comparisons, by name (None: not adjusted yet)
Adjusted = Optional[Mapping[str, float]]


class Seeded(list):
    """A list of per-run values that also knows each run's seed (``seeds``)."""

    def __init__(self, values: Sequence, seeds: Sequence[int]):
        super().__init__(values)
        self.seeds = list(seeds)


def seeds_of(values: Sequence) -> List[int]:
    """Return the seeds of `values`: its own for a :class:`Seeded`, else 0 .. n-1."""
    return list(getattr(values, "seeds", range(len(values))))


@dataclass
class Judgement:
    """A verdict, its parts, and the comparisons they were read from."""

    verdict: str
    parts: Optional[Dict[str, str]] = None
    comparisons: List[Comparison] = field(default_factory=list)


@dataclass(frozen=True)
class Interval:
    """Mean ± sample standard deviation of `n` values (sd 0 for a single value): the tables' cells."""

    mean: float
    sd: float
    n: int

    def text(self, digits: int = 3) -> str:
        """Return ``mean ± sd`` rounded to `digits` decimals."""
        return f"{self.mean:.{digits}f} ± {self.sd:.{digits}f}"


def interval(values: Sequence[float]) -> Interval:
    """Return the :class:`Interval` (mean ± sd) of `values`, a non-empty sequence of numbers."""
    data = [float(v) for v in values]
    if not data:
        raise ValueError("an interval needs at least one value")
    mean = sum(data) / len(data)
    sd = math.sqrt(sum((v - mean) ** 2 for v in data) / (len(data) - 1)) if len(data) > 1 else 0.0
    return Interval(mean, sd, len(data))


def outcome(verdict: str) -> str:
    """Return the outcome a verdict string starts with (one of :data:`OUTCOMES`)."""
    for word in (FAILS, HOLDS, UNCLEAR):
        if verdict.startswith(word):
            return word
    raise ValueError(f"not a verdict: {verdict!r}")


def phrase(verdict: str) -> str:
    """Return how a verdict's outcome is said: its outcome, or "holds, below the margin"."""
    return NEGLIGIBLE if verdict.startswith(NEGLIGIBLE) else outcome(verdict)


def too_few_seeds(groups: Mapping[str, Sequence]) -> Optional[str]:
    """Return an "inconclusive" verdict when any group has fewer than :data:`MIN_SEEDS` values."""
    if not groups:
        return f"{UNCLEAR}: nothing was measured"
    fewest = min(len(v) for v in groups.values())
    if fewest < MIN_SEEDS:
        name = min(groups, key=lambda k: len(groups[k]))
        return (
            f"{UNCLEAR}: {fewest} seed(s) for {name}; a verdict needs at least "
            f"{MIN_SEEDS} per configuration"
        )
    return None


def conjunction(parts: Mapping[str, str]) -> str:
    """Return the outcome of a conjunction: holds if all parts hold, fails if any fails.

    When every part holds and one of them only below its margin, the conjunction holds
    "below the margin" too (:data:`NEGLIGIBLE`).
    """
    outcomes = [outcome(v) for v in parts.values()]
    if all(o == HOLDS for o in outcomes):
        return NEGLIGIBLE if any(phrase(v) == NEGLIGIBLE for v in parts.values()) else HOLDS
    return FAILS if FAILS in outcomes else UNCLEAR


def combine(parts: Mapping[str, str]) -> str:
    """Return the headline of a conjunction: its outcome, then each part's outcome by name.

    Parameters
    ----------
    parts : mapping of str to str
        A name (loop, ablation, part of the claim) to its verdict.
    """
    return f"{conjunction(parts)}: " + "; ".join(
        f"{name}: {phrase(verdict)}" for name, verdict in parts.items()
    )


def family_p(comparisons: Sequence[Comparison]) -> Dict[str, float]:
    """Return the Holm-adjusted p of every deciding comparison, by name: the study's family.

    Parameters
    ----------
    comparisons : sequence of Comparison
        A judgement's comparisons; those of role "reference" are left out of the family.
    """
    deciding = [c for c in comparisons if c.role == "decides"]
    names = [c.name for c in deciding]
    if len(set(names)) != len(names):
        raise ValueError(f"deciding comparisons need distinct names to be adjusted, got {names}")
    missing = [c.name for c in deciding if c.p is None]
    if missing:
        raise ValueError(f"deciding comparisons without a p-value: {missing}")
    return dict(zip(names, holm([c.p for c in deciding])))


def with_holm(judge: Callable[[Adjusted], "Judgement"]) -> "Judgement":
    """Return ``judge(adjusted)``: the judgement with its family's Holm-adjusted p-values.

    Parameters
    ----------
    judge : callable
        ``holm -> Judgement``; judged first with None (the raw p-values), then again with
        :func:`family_p` of those comparisons, so that each verdict is composed from the
        adjusted outcomes.
    """
    first = judge(None)
    adjusted = family_p(first.comparisons)
    return judge(adjusted) if adjusted else first


def _holm(comparison: Comparison, holm: Adjusted) -> Comparison:
    """`comparison` adjusted by the family's Holm p (deciding ones only, and only when given)."""
    if holm is None or comparison.role != "decides":
        return comparison
    return holm_adjusted(comparison, holm[comparison.name], len(holm))


def accuracies(values: Sequence[Optional[float]]) -> List[float]:
    """Return accuracies with a diverged run (None) counted at chance, :data:`CHANCE`."""
    kept = [CHANCE if v is None else float(v) for v in values]
    return Seeded(kept, values.seeds) if isinstance(values, Seeded) else kept


def failure(run: Mapping[str, object]) -> Optional[str]:
    """Return why a training run failed to train, or None: defined against chance.

    Parameters
    ----------
    run : mapping
        A run of a study record: ``diverged``, ``loss`` (per epoch, None where it was not
        finite) and ``final_acc``, as far as the run has them.
    """
    if run.get("diverged"):
        return f"loss not finite or exploding ({run.get('diverged_at', 'diverged')})"
    losses = run.get("loss") or []
    if any(v is None or not math.isfinite(v) for v in losses):
        return "loss not finite"
    if losses and losses[-1] > CHANCE_LOSS:
        return f"final loss {losses[-1]:.3g} above ln 10 = {CHANCE_LOSS:.3f} (uniform guessing)"
    acc = run.get("final_acc")
    if acc is not None and acc <= LEARNED:
        return f"final accuracy {acc:.3f} at most twice chance ({LEARNED:g})"
    return None


def _compared(
    claimed,
    a: Sequence[float],
    b: Sequence[float],
    *,
    name: Optional[str] = None,
    role: Optional[str] = None,
    reference: Optional[float] = None,
    unit: str = "seeds",
    holm: Adjusted = None,
) -> Comparison:
    """Compare a − b (or a against `reference`) as `claimed` (a registry ``Claimed``) states,
    then adjust it by the family's Holm p when `holm` is given."""
    if reference is not None:
        diff = stats.one_sample(list(a), reference, unit=unit)
    elif unit != "seeds":
        diff = stats.paired(list(a), list(b), unit=unit)
    else:
        diff = stats.difference(list(a), list(b), seeds_of(a), seeds_of(b))
    return _holm(
        compare(
            name or claimed.name,
            claimed.label,
            diff,
            claimed.claim,
            claimed.margin,
            role=role or claimed.role,
        ),
        holm,
    )


def _said(comparison: Comparison, digits: int = 3) -> str:
    return f"{comparison.outcome}: {comparison.text(digits)}"
