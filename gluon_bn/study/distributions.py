"""The distributions the studies' tests read: Student's t (from the regularized incomplete
beta function, tested against SciPy), the binomial tail of the exact sign test, and the
median with its distribution-free interval from order statistics. Pure functions, no SciPy.
"""

from __future__ import annotations

import math
from typing import List, Sequence, Tuple

CONFIDENCE = 0.95  # of every interval the studies draw


def _incomplete_beta(x: float, a: float, b: float) -> float:
    """Regularized incomplete beta I_x(a, b), by its continued fraction (modified Lentz)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast only below this point
        return 1.0 - _incomplete_beta(1.0 - x, b, a)
    front = (
        math.exp(
            math.lgamma(a + b)
            - math.lgamma(a)
            - math.lgamma(b)
            + a * math.log(x)
            + b * math.log1p(-x)
        )
        / a
    )
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 500):
        # the even and the odd term of the fraction, in turn
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
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


def binomial_tail(k: int, n: int) -> float:
    """Return P(X ≥ k) for X ~ Binomial(n, 1/2), from exact integer counts.

    Parameters
    ----------
    k : int
        The threshold (any integer: 1 below 1, 0 above n).
    n : int
        Trials, at least 0.
    """
    if n < 0:
        raise ValueError(f"a binomial needs n ≥ 0 trials, got {n!r}")
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    # the count of outcomes with at least k successes over all 2^n (one rounding, at the end)
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2**n


def median(values: Sequence[float]) -> float:
    """Return the median of `values` (the mean of the middle two for an even count)."""
    data = sorted(float(v) for v in values)
    if not data:
        raise ValueError("a median needs at least one value")
    middle = len(data) // 2
    return data[middle] if len(data) % 2 else (data[middle - 1] + data[middle]) / 2


def median_interval(
    values: Sequence[float], confidence: float = CONFIDENCE
) -> Tuple[float, float, float]:
    """Return (lower, upper, coverage): a distribution-free interval for the median.

    The interval is the pair of order statistics x_(r), x_(n+1−r); it covers the median of
    any continuous distribution with probability 1 − 2 P(Bin(n, 1/2) ≥ n − r + 1) (at least
    that with ties). r is the largest rank whose coverage is still at least `confidence`;
    when even [min, max] covers less (n ≤ 5 at 95 %), that is returned with its coverage.

    Parameters
    ----------
    values : sequence of float
        At least one value.
    confidence : float
        The coverage sought, in (0, 1).
    """
    data = sorted(float(v) for v in values)
    n = len(data)
    if not n:
        raise ValueError("a median interval needs at least one value")

    def coverage(rank: int) -> float:
        return 1.0 - 2.0 * binomial_tail(n - rank + 1, n)

    rank = 1
    while rank + 1 <= (n + 1) // 2 and coverage(rank + 1) >= confidence:
        rank += 1
    return data[rank - 1], data[n - rank], coverage(rank)


def holm(p_values: Sequence[float]) -> List[float]:
    """Return Holm's step-down adjusted p-values, in the order given.

    The i-th smallest of m p-values is multiplied by m − i + 1 (capped at 1) and made no
    smaller than the adjusted p before it; rejecting every hypothesis whose adjusted p is at
    most α keeps the family-wise error rate at α (Holm 1979).

    Parameters
    ----------
    p_values : sequence of float
        Each in [0, 1].
    """
    for p in p_values:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p-values lie in [0, 1], got {p!r}")
    m = len(p_values)
    adjusted = [0.0] * m
    running = 0.0  # the adjusted p never decreases along the sorted order
    for rank, i in enumerate(sorted(range(m), key=lambda j: p_values[j])):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def rounds_for(sd: float, margin: float, *, confidence: float = CONFIDENCE, least: int = 3) -> int:
    """Return the fewest values for which a t interval of their mean is narrower than `margin`.

    Narrower: its half-width t(1 − (1 − confidence)/2, n − 1) · sd / √n is below the margin,
    so the interval is no wider than the band ±margin a difference is judged against.

    Parameters
    ----------
    sd : float
        The sample standard deviation of one value (a paired difference per round).
    margin : float
        Positive.
    confidence : float
        Of the two-sided interval.
    least : int
        The smallest count returned (the studies' minimum number of seeds).
    """
    if not margin > 0:
        raise ValueError(f"the margin must be positive, got {margin!r}")
    n = max(2, least)
    while t_quantile(1 - (1 - confidence) / 2, n - 1) * sd / math.sqrt(n) >= margin:
        n += 1
    return n


def seeds_for_power(effect: float, *, level: float, power: float = 0.8, least: int = 3) -> int:
    """Return the fewest seeds at which a one-sided paired t test shows a standardized effect.

    The usual t approximation of the power: with n seeds the expected t statistic is
    ``effect · √n``, and the test at `level` has about `power` when it exceeds
    t(1 − level, n − 1) + t(power, n − 1).

    Parameters
    ----------
    effect : float
        The standardized paired difference d_z = mean / sd (a pilot's), either sign.
    level : float
        The one-sided level the comparison must reach (Holm's strictest step, level / family).
    power : float
        The chance, if the effect is as large as `effect`, that the test shows it.
    least : int
        The smallest count returned.
    """
    if not effect:
        raise ValueError("a zero effect cannot be shown at any number of seeds")
    if not (0 < level < 0.5 and 0.5 <= power < 1):
        raise ValueError(f"level must lie in (0, 0.5) and power in [0.5, 1), got {level}, {power}")
    n = max(2, least)
    while abs(effect) * math.sqrt(n) < t_quantile(1 - level, n - 1) + t_quantile(power, n - 1):
        n += 1
    return n
