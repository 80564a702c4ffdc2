"""One stated comparison and its verdict, as a study record keeps it: a t interval or an
exact sign test, decided against its claim and margin (:mod:`gluon_bn.study.stats`), and
adjusted for the study's family (Holm).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Dict, Optional, Sequence, Tuple

from gluon_bn.study.distributions import median, median_interval
from gluon_bn.study.stats import (
    CONFIDENCE,
    FAMILY_LEVEL,
    HOLDS,
    NEGLIGIBLE,
    UNCLEAR,
    Difference,
    claim_p,
    decide,
    decide_sign,
    p_text,
    sign_test,
    tost_p,
)

# An effect size (Cohen's d_z, d) is printed from this many seeds on: below it the estimate
# swings wildly (d_z = -360 at three seeds), and it is printed without an interval.
MIN_EFFECT_N = 5


def effect_shown(effect: Optional[float], effect_name: str, n: int) -> bool:
    """Return whether an effect size is printed: it exists and rests on at least
    :data:`MIN_EFFECT_N` seeds per group (a Welch comparison's `n` counts both groups)."""
    per_group = n / 2 if effect_name == "d" else n
    return effect is not None and per_group >= MIN_EFFECT_N


def level_text(confidence: float) -> str:
    """Return a coverage as a percentage: 0.95 -> "95%", 0.96875 -> "96.9%"."""
    whole = round(confidence * 100)
    return f"{whole}%" if abs(confidence * 100 - whole) < 1e-9 else f"{confidence:.1%}"


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
        From :func:`decide` (or :func:`decide_sign`), then :func:`holm_adjusted`.
    role : str
        ``"decides"`` (the verdict reads it) or ``"reference"`` (shown, not deciding).
    p : float, optional
        The p-value of the claim (:func:`claim_p`, or the sign test's).
    p_holm : float, optional
        Holm-adjusted over the study's deciding comparisons (None: not adjusted).
    family : int
        How many comparisons it was adjusted with (0: not adjusted).
    survives : bool, optional
        Whether `p_holm` is at most :data:`FAMILY_LEVEL`.
    kind : {"t", "sign"}
        A t interval of a mean, or a sign test with the median.
    mirrored_p : float, optional
        A sign test's p-value of the opposite (:class:`SignTest`).
    values : tuple of float, optional
        A sign test's per-seed values.
    demoted : bool
        It held on its own and Holm's adjustment made it inconclusive.
    """

    name: str
    label: str
    claim: str
    margin: float
    diff: Difference
    outcome: str
    reason: str
    role: str = "decides"
    p: Optional[float] = None
    p_holm: Optional[float] = None
    family: int = 0
    survives: Optional[bool] = None
    kind: str = "t"
    mirrored_p: Optional[float] = None
    values: Optional[Tuple[float, ...]] = None
    demoted: bool = False

    def brief(self, digits: int = 3) -> str:
        """Return the difference and its interval: ``+0.012 (95% interval +0.004 to +0.020)``."""
        d = self.diff
        middle = "median " if self.kind == "sign" else ""
        return (
            f"{middle}{d.estimate:+.{digits}f} ({level_text(d.confidence)} interval "
            f"{d.lower:+.{digits}f} to {d.upper:+.{digits}f})"
        )

    def text(self, digits: int = 3) -> str:
        """Return the comparison in one phrase: difference, interval, method, margin, p, outcome."""
        d = self.diff
        effect = (
            f", {d.effect_name} {d.effect:.2g}"
            if effect_shown(d.effect, d.effect_name, d.n)
            else ""
        )
        p = "" if self.p is None else f"; p {p_text(self.p)}"
        if self.p_holm is not None:
            p += f", Holm-adjusted {p_text(self.p_holm)} over {self.family}"
        return (
            f"{self.label} {self.brief(digits)[:-1]}, {d.method}{effect}; claim "
            f"{self.claim}, margin ±{self.margin:.3g}{p}): {self.outcome}, {self.reason}"
        )

    def to_json(self) -> Dict[str, object]:
        """Return the comparison as JSON-ready data (the record's ``comparisons``)."""
        d = self.diff
        data = {
            "name": self.name,
            "label": self.label,
            "claim": self.claim,
            "margin": self.margin,
            "role": self.role,
            "difference": d.estimate,
            "lower": d.lower,
            "upper": d.upper,
            "confidence": d.confidence,
            "method": d.method,
            "n": d.n,
            "df": d.df,
            "se": d.se,
            "effect": d.effect,
            "effect_name": d.effect_name,
            "tost_p": tost_p(d, self.margin) if self.kind == "t" else None,
            "p": self.p,
            "p_holm": self.p_holm,
            "holm_family": self.family,
            "holm_survives": self.survives,
            "holm_demoted": self.demoted,
            "outcome": self.outcome,
            "reason": self.reason,
        }
        if self.kind != "t":
            data.update(kind=self.kind, mirrored_p=self.mirrored_p, values=list(self.values or ()))
        return data


def compare(
    name: str, label: str, diff: Difference, claim: str, margin: float, *, role: str = "decides"
) -> Comparison:
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
    return Comparison(
        name, label, claim, margin, diff, outcome, reason, role, p=claim_p(diff, claim, margin)
    )


def sign_compare(
    name: str,
    label: str,
    values: Sequence[float],
    claim: str,
    margin: float,
    *,
    role: str = "decides",
    level: float = FAMILY_LEVEL,
    confidence: float = CONFIDENCE,
    unit: str = "seeds",
) -> Comparison:
    """Return the :class:`Comparison` of per-seed `values` by the exact sign test, decided.

    Its estimate is the median of `values` and its interval the order-statistic one
    (:func:`median_interval`, at its exact coverage); its p is the sign test's.

    Parameters
    ----------
    name, label : str
    values : sequence of float
        One value per seed, claimed above (``greater``) or below (``less``) 0.
    claim : {"greater", "less"}
    margin : float
        Positive.
    role : {"decides", "reference"}
    level : float
        The one-sided level of the test (and of its mirror).
    confidence : float
        The least coverage sought of the median's interval.
    unit : str
        What a value is.
    """
    test = sign_test(values, claim)
    lower, upper, coverage = median_interval(values, confidence)
    diff = Difference(
        median(values),
        lower,
        upper,
        coverage,
        None,
        None,
        test.n,
        f"exact sign test over {test.n} {unit}, ties against the claim",
        None,
        "",
    )
    outcome, reason = decide_sign(test, diff, claim, margin, level=level, unit=unit)
    return Comparison(
        name,
        label,
        claim,
        margin,
        diff,
        outcome,
        reason,
        role,
        p=test.p,
        kind="sign",
        mirrored_p=test.mirrored_p,
        values=tuple(float(v) for v in values),
    )


def holm_adjusted(
    comparison: Comparison, p_holm: float, family: int, *, level: float = FAMILY_LEVEL
) -> Comparison:
    """Return `comparison` with its Holm-adjusted p; one that held cannot hold above `level`.

    Parameters
    ----------
    comparison : Comparison
        A deciding comparison, decided on its own.
    p_holm : float
        Its p adjusted over the study's family (:func:`holm`).
    family : int
        How many comparisons the family holds.
    level : float
        The family-wise error rate.
    """
    survives = p_holm <= level
    outcome, reason = comparison.outcome, comparison.reason
    demoted = not survives and outcome in (HOLDS, NEGLIGIBLE)
    if demoted:
        # shown on its own, not once the family's other chances to hold are counted
        outcome = UNCLEAR
        reason = (
            f"{reason}, but its Holm-adjusted p {p_holm:.2g} over the study's {family} "
            f"deciding comparison(s) is above {level:g}"
        )
    return replace(
        comparison,
        outcome=outcome,
        reason=reason,
        p_holm=p_holm,
        family=family,
        survives=survives,
        demoted=demoted,
    )
