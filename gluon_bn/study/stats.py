"""Differences between two configurations: t intervals, effect sizes, equivalence tests, verdicts.

Pure functions of per-seed numbers; no MXNet, no SciPy (the Student t distribution is
computed here from the regularized incomplete beta function, and tested against SciPy).

A study's configurations share their seeds (seed s of one is trained like seed s of the
other but for the difference under study), so a comparison is *paired*: the per-seed
differences ``a_s − b_s`` get a one-sample Student t interval, at :data:`CONFIDENCE` (95 %)
unless told otherwise, and the effect size is Cohen's d_z (mean difference over the sd of
the differences). When the seeds differ the runs are *unpaired*: Welch's t interval
(Welch–Satterthwaite degrees of freedom) and Cohen's d with the two variances averaged.

Every comparison states a claim about the difference δ = a − b and a margin m > 0, the
largest difference that counts as "no difference", before it runs; :func:`decide` reads
the interval:

- ``greater`` (δ > 0): holds when the interval lies above 0 — "holds, below the margin"
  (:data:`NEGLIGIBLE`) when it also lies below m, a difference in the claimed direction too
  small to count; does not hold when it lies within (−m, m) and contains 0 (equivalence
  shown) or lies below 0 (the opposite shown); else inconclusive.
- ``less`` (δ < 0): the mirror image.
- ``equivalent`` (|δ| < m): holds when the interval lies within (−m, m); does not hold when
  it lies wholly beyond the margin (at or above m, or at or below −m); else inconclusive.
- ``noninferior`` (δ > −m): holds when the interval's lower end is above −m; does not hold
  when its upper end is below −m; else inconclusive.

"The interval lies within (−m, m)" is the two one-sided tests (TOST) of equivalence, each
at level (1 − confidence) / 2: :func:`tost_p` is below that level exactly then (tested), so
one interval, the one drawn in the figures, decides everything.

Every comparison also carries the p-value of its claim (:func:`claim_p`: one-sided against
0 for ``greater``/``less``, against −m for ``noninferior``, the TOST p for ``equivalent``),
so that a study's deciding comparisons can be adjusted together for multiplicity:
:func:`holm` (Holm's step-down adjustment) at the family-wise level :data:`FAMILY_LEVEL`,
and :func:`holm_adjusted`, after which a comparison whose adjusted p exceeds that level
cannot hold.

Some claims are about a count of seeds rather than a mean: :func:`sign_test` (exact,
one-sided, ties counted against the claim) with the median of the per-seed values and a
distribution-free interval for it from their order statistics (:func:`median_interval`,
its exact coverage stated); :func:`sign_compare` makes such a comparison.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional, Sequence, Tuple

from gluon_bn.study.distributions import CONFIDENCE, binomial_tail, t_cdf, t_quantile

HOLDS, FAILS, UNCLEAR = "holds", "does not hold", "inconclusive"
# A directional claim shown in its direction but by less than its margin: it starts with
# "holds", so it counts as holding, and it is never shown as plain "holds".
NEGLIGIBLE = "holds, below the margin"
FAMILY_LEVEL = 0.05  # family-wise error rate of a study's deciding comparisons (Holm)
CLAIMS = ("greater", "less", "equivalent", "noninferior")
SIDED = ("greater", "less")  # the claims a sign test can state


@dataclass(frozen=True)
class Difference:
    """The difference a − b of two configurations: estimate, interval and effect size.

    Attributes
    ----------
    estimate : float
        Mean of the per-seed differences (paired), or of a minus mean of b (Welch); the
        median of the per-seed values for a sign test.
    lower, upper : float
        The two-sided interval at `confidence` (a sign test's: order statistics).
    confidence : float
        E.g. 0.95; a sign test's interval has the exact coverage its order statistics give.
    se : float or None
        Standard error of the estimate (None for a sign test).
    df : float or None
        Degrees of freedom of the t distribution used (None for a sign test).
    n : int
        Pairs (paired, one-sample) or runs of both (Welch); seeds (sign test).
    method : str
        ``"paired t over n shared seeds"``, ``"one-sample t over n rounds against r"``,
        ``"Welch t (unpaired: different seeds), n_a and n_b runs"`` or ``"exact sign test
        over n seeds, ties against the claim"``.
    effect : float or None
        Cohen's d_z (paired, one-sample) or d (Welch); None when the spread is zero, and
        for a sign test.
    effect_name : str
        ``"d_z"`` or ``"d"`` (empty for a sign test).
    """

    estimate: float
    lower: float
    upper: float
    confidence: float
    se: Optional[float]
    df: Optional[float]
    n: int
    method: str
    effect: Optional[float]
    effect_name: str


def p_text(p: float) -> str:
    """Return p-value `p` for a report: two significant digits, or "< 1e-16" where the t
    distribution's tail has underflowed to 0 in double precision (never printed as 0)."""
    return "< 1e-16" if p < 1e-16 else f"{p:.2g}"


def _mean_sd(values: Sequence[float]) -> Tuple[float, float]:
    data = [float(v) for v in values]
    mean = sum(data) / len(data)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in data) / (len(data) - 1))


def _interval(estimate: float, se: float, df: float, confidence: float) -> Tuple[float, float]:
    if not 0 < confidence < 1:
        raise ValueError(f"the confidence level must lie in (0, 1), got {confidence!r}")
    half = t_quantile(1 - (1 - confidence) / 2, df) * se
    return estimate - half, estimate + half


def one_sample(
    values: Sequence[float],
    reference: float = 0.0,
    *,
    confidence: float = CONFIDENCE,
    unit: str = "seeds",
) -> Difference:
    """Return the difference of the mean of `values` from `reference`, with its t interval.

    Parameters
    ----------
    values : sequence of float
        At least two numbers (one per seed or round).
    reference : float
        The value compared against.
    confidence : float
        Of the two-sided interval.
    unit : str
        What one value is ("seeds", "rounds"), for the method's text.
    """
    if len(values) < 2:
        raise ValueError(f"a t interval needs at least 2 values, got {len(values)}")
    mean, sd = _mean_sd(values)
    n = len(values)
    se = sd / math.sqrt(n)
    lower, upper = _interval(mean - reference, se, n - 1, confidence)
    method = f"one-sample t over {n} {unit} against {reference:g}"
    return Difference(
        mean - reference,
        lower,
        upper,
        confidence,
        se,
        n - 1,
        n,
        method,
        (mean - reference) / sd if sd > 0 else None,
        "d_z",
    )


def paired(
    a: Sequence[float], b: Sequence[float], *, confidence: float = CONFIDENCE, unit: str = "seeds"
) -> Difference:
    """Return a − b paired value by value (same seed or round): a t interval of the differences.

    Parameters
    ----------
    a, b : sequence of float
        As many of each, at least two; a[i] and b[i] share a seed (or a round).
    confidence : float
        Of the two-sided interval.
    unit : str
        What a pair is ("seeds", "rounds"), for the method's text.
    """
    if len(a) != len(b):
        raise ValueError(f"paired values need as many of each, got {len(a)} and {len(b)}")
    diff = one_sample([x - y for x, y in zip(a, b)], confidence=confidence, unit=unit)
    return Difference(**{**asdict(diff), "method": f"paired t over {len(a)} shared {unit}"})


def welch(a: Sequence[float], b: Sequence[float], *, confidence: float = CONFIDENCE) -> Difference:
    """Return mean(a) − mean(b) for unpaired runs: Welch's t interval and Cohen's d.

    Parameters
    ----------
    a, b : sequence of float
        At least two runs each, not paired.
    confidence : float
        Of the two-sided interval.
    """
    if len(a) < 2 or len(b) < 2:
        raise ValueError(
            f"Welch's interval needs at least 2 runs of each, got {len(a)} and {len(b)}"
        )
    (ma, sa), (mb, sb) = _mean_sd(a), _mean_sd(b)
    va, vb = sa * sa / len(a), sb * sb / len(b)
    se = math.sqrt(va + vb)
    # Welch–Satterthwaite; with no spread at all the interval is the point itself
    df = (va + vb) ** 2 / (va * va / (len(a) - 1) + vb * vb / (len(b) - 1)) if se > 0 else 1.0
    lower, upper = _interval(ma - mb, se, df, confidence)
    spread = math.sqrt((sa * sa + sb * sb) / 2)
    return Difference(
        ma - mb,
        lower,
        upper,
        confidence,
        se,
        df,
        len(a) + len(b),
        f"Welch t (unpaired: different seeds), {len(a)} and {len(b)} runs",
        (ma - mb) / spread if spread > 0 else None,
        "d",
    )


def difference(
    a: Sequence[float],
    b: Sequence[float],
    seeds_a: Sequence[int],
    seeds_b: Sequence[int],
    *,
    confidence: float = CONFIDENCE,
) -> Difference:
    """Return a − b, paired when both sides ran the same seeds (in any order), else Welch.

    Parameters
    ----------
    a, b : sequence of float
        One value per run.
    seeds_a, seeds_b : sequence of int
        The seed of each run of `a` and of `b`.
    """
    if sorted(seeds_a) == sorted(seeds_b) and len(set(seeds_a)) == len(seeds_a):
        order_b = dict(zip(seeds_b, b))
        return paired(list(a), [order_b[s] for s in seeds_a], confidence=confidence)
    return welch(a, b, confidence=confidence)


def one_sided_p(diff: Difference, threshold: float, side: str) -> float:
    """Return the one-sided p-value of H0: δ ≤ threshold (side "above") or δ ≥ threshold ("below").

    Parameters
    ----------
    diff : Difference
        A t-based difference (its ``se`` and ``df`` set).
    threshold : float
    side : {"above", "below"}
        The alternative: the difference lies above (below) the threshold.
    """
    if side not in ("above", "below"):
        raise ValueError(f"side must be 'above' or 'below', got {side!r}")
    if diff.se is None:
        raise ValueError(f"a t test needs a standard error; {diff.method!r} has none")
    if diff.se == 0:  # no spread: the estimate is the difference
        shown = diff.estimate > threshold if side == "above" else diff.estimate < threshold
        return 0.0 if shown else 1.0
    t = (diff.estimate - threshold) / diff.se
    return 1.0 - t_cdf(t, diff.df) if side == "above" else t_cdf(t, diff.df)


def tost_p(diff: Difference, margin: float) -> float:
    """Return the p-value of the two one-sided tests (TOST) of equivalence within ±`margin`.

    Parameters
    ----------
    diff : Difference
    margin : float
        Positive.
    """
    return max(one_sided_p(diff, -margin, "above"), one_sided_p(diff, margin, "below"))


def claim_p(diff: Difference, claim: str, margin: float) -> float:
    """Return the p-value of `claim` about δ: the probability of data this far from its null.

    Parameters
    ----------
    diff : Difference
        A t-based difference.
    claim : {"greater", "less", "equivalent", "noninferior"}
        ``greater``/``less``: one-sided against 0; ``noninferior``: one-sided against
        −`margin`; ``equivalent``: the TOST p within ±`margin`.
    margin : float
        Positive.
    """
    if claim == "greater":
        return one_sided_p(diff, 0.0, "above")
    if claim == "less":
        return one_sided_p(diff, 0.0, "below")
    if claim == "noninferior":
        return one_sided_p(diff, -margin, "above")
    if claim == "equivalent":
        return tost_p(diff, margin)
    raise ValueError(f"unknown claim {claim!r}; claims are {', '.join(CLAIMS)}")


def decide(diff: Difference, claim: str, margin: float) -> Tuple[str, str]:
    """Return (outcome, reason): what the interval of `diff` says about `claim` within `margin`.

    Parameters
    ----------
    diff : Difference
    claim : {"greater", "less", "equivalent", "noninferior"}
        What is claimed about δ = a − b (see the module's docstring).
    margin : float
        Positive: differences within ±margin count as none.
    """
    if claim not in CLAIMS:
        raise ValueError(f"unknown claim {claim!r}; claims are {', '.join(CLAIMS)}")
    if not margin > 0:
        raise ValueError(f"the margin must be positive, got {margin!r}")
    lo, hi, m = diff.lower, diff.upper, margin
    within = -m < lo and hi < m
    if claim == "equivalent":
        if within:
            return HOLDS, f"the interval lies within ±{m:g}"
        if lo >= m or hi <= -m:
            return FAILS, f"the interval lies beyond the margin ±{m:g}"
        return UNCLEAR, f"the interval reaches beyond ±{m:g} but not wholly"
    if claim == "noninferior":
        if lo > -m:
            return HOLDS, f"the interval lies above −{m:g}"
        if hi < -m:
            return FAILS, f"the interval lies below −{m:g}"
        return UNCLEAR, f"the interval contains −{m:g}"
    sign = 1 if claim == "greater" else -1
    side, other = ("above", "below") if sign > 0 else ("below", "above")
    shown = lo > 0 if sign > 0 else hi < 0  # the claimed direction, 0 excluded
    # Checked before "excludes 0" alone: a direction shown by less than the margin is named.
    if shown and within:
        return NEGLIGIBLE, (
            f"the interval lies {side} 0 but within ±{m:g}: a difference in "
            f"the claimed direction smaller than the margin"
        )
    if shown:
        return HOLDS, f"the interval lies {side} 0"
    if within:
        return FAILS, f"the interval lies within ±{m:g}: no difference beyond the margin"
    if (hi < 0) if sign > 0 else (lo > 0):
        return FAILS, f"the interval lies {other} 0: the opposite"
    return UNCLEAR, f"the interval contains 0 and reaches beyond ±{m:g}"


@dataclass(frozen=True)
class SignTest:
    """An exact one-sided sign test of values claimed above (or below) 0, ties against the claim.

    Attributes
    ----------
    n : int
        Values (seeds), ties included.
    positive : int
        Values strictly on the claimed side of 0.
    p : float
        P(Bin(n, 1/2) ≥ positive): the claim's p-value.
    mirrored_p : float
        P(Bin(n, 1/2) ≥ n − positive): the p-value of "on the other side or tied" on
        significantly many values, which shows the claim does not hold.
    """

    n: int
    positive: int
    p: float
    mirrored_p: float


def sign_test(values: Sequence[float], claim: str = "greater") -> SignTest:
    """Return the exact one-sided sign test of `values` for `claim`, ties counted against it.

    Parameters
    ----------
    values : sequence of float
        One value per seed (a per-seed difference).
    claim : {"greater", "less"}
        Values above (below) 0.
    """
    if claim not in SIDED:
        raise ValueError(f"a sign test states 'greater' or 'less', got {claim!r}")
    n = len(values)
    # ties (exactly 0) stay in n and count as not on the claimed side
    positive = sum(1 for v in values if (v > 0 if claim == "greater" else v < 0))
    return SignTest(n, positive, binomial_tail(positive, n), binomial_tail(n - positive, n))


def decide_sign(
    test: SignTest,
    diff: Difference,
    claim: str,
    margin: float,
    *,
    level: float = FAMILY_LEVEL,
    unit: str = "seeds",
) -> Tuple[str, str]:
    """Return (outcome, reason) of a sign test: holds at p ≤ `level`, fails when the mirror does.

    Parameters
    ----------
    test : SignTest
    diff : Difference
        Its median and order-statistic interval: a direction shown while the interval lies
        within ±`margin` is "holds, below the margin", as for a t interval.
    claim : {"greater", "less"}
    margin : float
        Positive.
    level : float
        The one-sided level of either test.
    unit : str
        What a value is, for the reason's text.
    """
    if not margin > 0:
        raise ValueError(f"the margin must be positive, got {margin!r}")
    side = "above" if claim == "greater" else "below"
    k, n = test.positive, test.n
    if test.p <= level:
        if -margin < diff.lower and diff.upper < margin:
            return NEGLIGIBLE, (
                f"{k} of {n} {unit} {side} 0 (p {test.p:.2g} ≤ {level:g}), but "
                f"the interval of the median lies within ±{margin:g}"
            )
        return HOLDS, f"{k} of {n} {unit} {side} 0: p {test.p:.2g} ≤ {level:g}"
    if test.mirrored_p <= level:
        return FAILS, (
            f"{n - k} of {n} {unit} at 0 or {'below' if side == 'above' else 'above'} "
            f"it (ties against the claim): mirrored p {test.mirrored_p:.2g} ≤ {level:g}"
        )
    smallest = binomial_tail(n, n)
    few = (
        f"; with {n} {unit} the smallest possible p is {smallest:.2g}, above {level:g}"
        if smallest > level
        else ""
    )
    return UNCLEAR, (
        f"{k} of {n} {unit} {side} 0: p {test.p:.2g} and mirrored p "
        f"{test.mirrored_p:.2g}, neither ≤ {level:g}{few}"
    )
