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

- ``greater`` (δ > 0): holds when the interval lies above 0; does not hold when it lies
  within (−m, m) (equivalence shown) or below 0 (the opposite shown); else inconclusive.
- ``less`` (δ < 0): the mirror image.
- ``equivalent`` (|δ| < m): holds when the interval lies within (−m, m); does not hold when
  it lies wholly beyond the margin (at or above m, or at or below −m); else inconclusive.
- ``noninferior`` (δ > −m): holds when the interval's lower end is above −m; does not hold
  when its upper end is below −m; else inconclusive.

"The interval lies within (−m, m)" is the two one-sided tests (TOST) of equivalence, each
at level (1 − confidence) / 2: :func:`tost_p` is below that level exactly then (tested), so
one interval, the one drawn in the figures, decides everything.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Dict, Optional, Sequence, Tuple

HOLDS, FAILS, UNCLEAR = "holds", "does not hold", "inconclusive"
CONFIDENCE = 0.95
CLAIMS = ("greater", "less", "equivalent", "noninferior")


# --------------------------------------------------------------------------- Student t

def _incomplete_beta(x: float, a: float, b: float) -> float:
    """Regularized incomplete beta I_x(a, b), by its continued fraction (modified Lentz)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast only below this point
        return 1.0 - _incomplete_beta(1.0 - x, b, a)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x)) / a
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 500):
        # the even and the odd term of the fraction, in turn
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return front * result


def t_cdf(t: float, df: float) -> float:
    """Return P(T ≤ t) for Student's t distribution with `df` degrees of freedom.

    Parameters
    ----------
    t : float
        Where the distribution function is evaluated (±inf allowed).
    df : float
        Degrees of freedom, positive and not necessarily whole (Welch's are not).
    """
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {df!r}")
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = 0.5 * _incomplete_beta(df / (df + t * t), df / 2, 0.5)  # P(T > |t|)
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """Return the `p`-quantile of Student's t with `df` degrees of freedom, by bisection.

    Parameters
    ----------
    p : float
        The probability, in (0, 1).
    df : float
        Degrees of freedom, positive.
    """
    if not 0 < p < 1:
        raise ValueError(f"a quantile needs 0 < p < 1, got {p!r}")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        low, high = high, high * 2
    for _ in range(200):
        middle = (low + high) / 2
        if t_cdf(middle, df) < p:
            low = middle
        else:
            high = middle
        if high - low <= 1e-13 * max(1.0, high):
            break
    return (low + high) / 2


# --------------------------------------------------------------------------- differences

@dataclass(frozen=True)
class Difference:
    """The difference a − b of two configurations: estimate, t interval and effect size.

    Attributes
    ----------
    estimate : float
        Mean of the per-seed differences (paired), or of a minus mean of b (Welch).
    lower, upper : float
        The two-sided interval at `confidence`.
    confidence : float
        E.g. 0.95.
    se : float
        Standard error of the estimate.
    df : float
        Degrees of freedom of the t distribution used.
    n : int
        Pairs (paired, one-sample) or runs of both (Welch).
    method : str
        ``"paired t over n shared seeds"``, ``"one-sample t over n rounds against r"`` or
        ``"Welch t (unpaired: different seeds), n_a and n_b runs"``.
    effect : float or None
        Cohen's d_z (paired, one-sample) or d (Welch); None when the spread is zero.
    effect_name : str
        ``"d_z"`` or ``"d"``.
    """

    estimate: float
    lower: float
    upper: float
    confidence: float
    se: float
    df: float
    n: int
    method: str
    effect: Optional[float]
    effect_name: str


def _mean_sd(values: Sequence[float]) -> Tuple[float, float]:
    data = [float(v) for v in values]
    mean = sum(data) / len(data)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in data) / (len(data) - 1))


def _interval(estimate: float, se: float, df: float, confidence: float) -> Tuple[float, float]:
    if not 0 < confidence < 1:
        raise ValueError(f"the confidence level must lie in (0, 1), got {confidence!r}")
    half = t_quantile(1 - (1 - confidence) / 2, df) * se
    return estimate - half, estimate + half


def one_sample(values: Sequence[float], reference: float = 0.0, *,
               confidence: float = CONFIDENCE, unit: str = "seeds") -> Difference:
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
    return Difference(mean - reference, lower, upper, confidence, se, n - 1, n, method,
                      (mean - reference) / sd if sd > 0 else None, "d_z")


def paired(a: Sequence[float], b: Sequence[float], *, confidence: float = CONFIDENCE,
           unit: str = "seeds") -> Difference:
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
        raise ValueError(f"Welch's interval needs at least 2 runs of each, got {len(a)} and {len(b)}")
    (ma, sa), (mb, sb) = _mean_sd(a), _mean_sd(b)
    va, vb = sa * sa / len(a), sb * sb / len(b)
    se = math.sqrt(va + vb)
    # Welch–Satterthwaite; with no spread at all the interval is the point itself
    df = (va + vb) ** 2 / (va * va / (len(a) - 1) + vb * vb / (len(b) - 1)) if se > 0 else 1.0
    lower, upper = _interval(ma - mb, se, df, confidence)
    spread = math.sqrt((sa * sa + sb * sb) / 2)
    return Difference(ma - mb, lower, upper, confidence, se, df, len(a) + len(b),
                      f"Welch t (unpaired: different seeds), {len(a)} and {len(b)} runs",
                      (ma - mb) / spread if spread > 0 else None, "d")


def difference(a: Sequence[float], b: Sequence[float], seeds_a: Sequence[int],
               seeds_b: Sequence[int], *, confidence: float = CONFIDENCE) -> Difference:
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


# --------------------------------------------------------------------------- tests and verdicts

def one_sided_p(diff: Difference, threshold: float, side: str) -> float:
    """Return the one-sided p-value of H0: δ ≤ threshold (side "above") or δ ≥ threshold ("below").

    Parameters
    ----------
    diff : Difference
    threshold : float
    side : {"above", "below"}
        The alternative: the difference lies above (below) the threshold.
    """
    if side not in ("above", "below"):
        raise ValueError(f"side must be 'above' or 'below', got {side!r}")
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
    if (lo > 0) if sign > 0 else (hi < 0):
        return HOLDS, f"the interval lies {'above' if sign > 0 else 'below'} 0"
    if within:
        return FAILS, f"the interval lies within ±{m:g}: no difference beyond the margin"
    if (hi < 0) if sign > 0 else (lo > 0):
        return FAILS, f"the interval lies {'below' if sign > 0 else 'above'} 0: the opposite"
    return UNCLEAR, f"the interval contains 0 and reaches beyond ±{m:g}"


@dataclass(frozen=True)
class Comparison:
    """One stated comparison and its verdict: what a study record keeps per comparison.

    Attributes
    ----------
    name : str
        Which part of the claim (``"train_ch5"``, ``"bias"``, ``"lr 10"``, ...).
    label : str
        What minus what, and of which quantity.
    claim : str
        One of :data:`CLAIMS`.
    margin : float
    diff : Difference
    outcome, reason : str
        From :func:`decide`.
    role : str
        ``"decides"`` (the verdict reads it) or ``"reference"`` (shown, not deciding).
    """

    name: str
    label: str
    claim: str
    margin: float
    diff: Difference
    outcome: str
    reason: str
    role: str = "decides"

    def brief(self, digits: int = 3) -> str:
        """Return the difference and its interval: ``+0.012 (95% interval +0.004 to +0.020)``."""
        d = self.diff
        return (f"{d.estimate:+.{digits}f} ({d.confidence:.0%} interval {d.lower:+.{digits}f} "
                f"to {d.upper:+.{digits}f})")

    def text(self, digits: int = 3) -> str:
        """Return the comparison in one phrase: difference, interval, method, margin, outcome."""
        d = self.diff
        effect = f", {d.effect_name} {d.effect:.2g}" if d.effect is not None else ""
        return (f"{self.label} {self.brief(digits)[:-1]}, {d.method}{effect}; claim "
                f"{self.claim}, margin ±{self.margin:.3g}): {self.outcome}, {self.reason}")

    def to_json(self) -> Dict[str, object]:
        """Return the comparison as JSON-ready data (the record's ``comparisons``)."""
        d = self.diff
        return {"name": self.name, "label": self.label, "claim": self.claim,
                "margin": self.margin, "role": self.role, "difference": d.estimate,
                "lower": d.lower, "upper": d.upper, "confidence": d.confidence,
                "method": d.method, "n": d.n, "df": d.df, "se": d.se,
                "effect": d.effect, "effect_name": d.effect_name,
                "tost_p": tost_p(d, self.margin), "outcome": self.outcome, "reason": self.reason}


def compare(name: str, label: str, diff: Difference, claim: str, margin: float, *,
            role: str = "decides") -> Comparison:
    """Return the :class:`Comparison` of `diff` against `claim` within `margin`, decided.

    Parameters
    ----------
    name, label : str
        Which part of the claim, and the difference in words (see :class:`Comparison`).
    diff : Difference
    claim : str
        One of :data:`CLAIMS`.
    margin : float
    role : {"decides", "reference"}
    """
    outcome, reason = decide(diff, claim, margin)
    return Comparison(name, label, claim, margin, diff, outcome, reason, role)
