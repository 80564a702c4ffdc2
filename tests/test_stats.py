"""gluon_bn.study.stats (issue 29): the t distribution, paired and Welch intervals, effect sizes,
TOST and the verdict rule, against textbook cases whose expected values SciPy or the
formulas compute here."""
import math

import numpy as np
import pytest

from gluon_bn.study import stats
from gluon_bn.study.stats import FAILS, HOLDS, UNCLEAR

ss = pytest.importorskip("scipy.stats")

# Student's (1908) sleep data, the textbook paired example: extra hours of sleep of ten
# patients under two drugs (Cushny and Peebles).
DRUG_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
DRUG_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


@pytest.mark.parametrize("df", [1, 2, 2.7, 5, 9, 30, 250])
def test_t_distribution_matches_scipy(df):
    for t in (-3.0, -0.4, 0.0, 0.8, 2.5, 12.0):
        assert stats.t_cdf(t, df) == pytest.approx(ss.t.cdf(t, df), abs=1e-12)
    for p in (0.025, 0.6, 0.95, 0.975, 0.995):
        assert stats.t_quantile(p, df) == pytest.approx(ss.t.ppf(p, df), rel=1e-7)


def test_paired_interval_is_students_sleep_example():
    diff = stats.paired(DRUG_1, DRUG_2)
    scipy_result = ss.ttest_rel(DRUG_1, DRUG_2)
    low, high = scipy_result.confidence_interval(0.95)
    assert (diff.lower, diff.upper) == (pytest.approx(low), pytest.approx(high))
    assert diff.estimate / diff.se == pytest.approx(scipy_result.statistic)
    assert diff.df == scipy_result.df and diff.n == len(DRUG_1)
    d = np.subtract(DRUG_1, DRUG_2)
    assert diff.effect == pytest.approx(d.mean() / d.std(ddof=1))  # Cohen's d_z
    assert diff.method == "paired t over 10 shared seeds" and diff.confidence == 0.95
    # another confidence level: the interval of scipy at that level
    wide = stats.paired(DRUG_1, DRUG_2, confidence=0.99)
    assert wide.lower == pytest.approx(scipy_result.confidence_interval(0.99).low)


def test_one_sample_against_a_reference():
    shares = [0.46, 0.52, 0.49, 0.55]
    diff = stats.one_sample(shares, 0.5, unit="rounds")
    result = ss.ttest_1samp(shares, 0.5)
    low, high = result.confidence_interval(0.95)
    assert (diff.lower, diff.upper) == (pytest.approx(low - 0.5), pytest.approx(high - 0.5))
    assert diff.method == "one-sample t over 4 rounds against 0.5"


def test_welch_interval_by_its_formula_and_scipy():
    a, b = [0.81, 0.84, 0.79, 0.86, 0.83], [0.70, 0.78, 0.66]
    diff = stats.welch(a, b)
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = ss.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert diff.df == pytest.approx(df)
    assert (diff.lower, diff.upper) == (pytest.approx(np.mean(a) - np.mean(b) - half),
                                        pytest.approx(np.mean(a) - np.mean(b) + half))
    scipy_result = ss.ttest_ind(a, b, equal_var=False)
    assert diff.estimate / diff.se == pytest.approx(scipy_result.statistic)
    two_sided = 2 * (1 - stats.t_cdf(abs(diff.estimate / diff.se), diff.df))
    assert two_sided == pytest.approx(scipy_result.pvalue)
    assert diff.method.startswith("Welch t (unpaired")


def test_difference_pairs_shared_seeds_and_otherwise_says_unpaired():
    a, b = [0.80, 0.82, 0.85], [0.78, 0.79, 0.84]
    same = stats.difference(a, b, [0, 1, 2], [0, 1, 2])
    assert same == stats.paired(a, b)
    reordered = stats.difference(a, b[::-1], [0, 1, 2], [2, 1, 0])  # paired by seed, not position
    assert reordered == same
    other = stats.difference(a, b, [0, 1, 2], [3, 4, 5])
    assert other == stats.welch(a, b) and "unpaired" in other.method


def test_tost_is_the_interval_within_the_margin():
    """TOST at (1 − confidence) / 2 per side rejects exactly when the interval lies within ±m."""
    rng = np.random.default_rng(0)
    alpha = (1 - stats.CONFIDENCE) / 2
    for _ in range(200):
        d = rng.normal(rng.uniform(-0.02, 0.02), rng.uniform(0.001, 0.02), size=rng.integers(3, 8))
        diff = stats.one_sample(list(d))
        margin = 0.01
        expected = max(ss.ttest_1samp(d, -margin, alternative="greater").pvalue,
                       ss.ttest_1samp(d, margin, alternative="less").pvalue)
        assert stats.tost_p(diff, margin) == pytest.approx(expected, abs=1e-9)
        within = -margin < diff.lower and diff.upper < margin
        assert (stats.tost_p(diff, margin) < alpha) == within


def _diff(lower, upper):
    middle = (lower + upper) / 2
    return stats.Difference(middle, lower, upper, 0.95, (upper - lower) / 4, 2, 3, "made up",
                            None, "d_z")


@pytest.mark.parametrize("claim, lower, upper, expected", [
    ("greater", 0.02, 0.05, HOLDS),
    ("greater", 0.001, 0.003, HOLDS),       # above 0, even if within the margin
    ("greater", -0.005, 0.008, FAILS),      # within ±0.01: equivalence shown
    ("greater", -0.05, -0.02, FAILS),       # the opposite shown
    ("greater", -0.03, 0.04, UNCLEAR),
    ("less", -0.05, -0.02, HOLDS),
    ("less", 0.02, 0.05, FAILS),
    ("less", -0.03, 0.04, UNCLEAR),
    ("equivalent", -0.004, 0.006, HOLDS),
    ("equivalent", 0.012, 0.03, FAILS),     # wholly beyond the margin
    ("equivalent", -0.002, 0.03, UNCLEAR),
    ("noninferior", -0.008, 0.03, HOLDS),
    ("noninferior", -0.05, -0.02, FAILS),
    ("noninferior", -0.03, 0.02, UNCLEAR),
])
def test_decide(claim, lower, upper, expected):
    outcome, reason = stats.decide(_diff(lower, upper), claim, 0.01)
    assert outcome == expected and reason


def test_decide_refuses_unknown_claims_and_margins():
    with pytest.raises(ValueError, match="unknown claim"):
        stats.decide(_diff(0, 1), "bigger", 0.01)
    with pytest.raises(ValueError, match="margin must be positive"):
        stats.decide(_diff(0, 1), "greater", 0)


def test_no_spread_is_a_point_interval():
    diff = stats.paired([1, 1, 1], [10, 10, 10])
    assert (diff.lower, diff.upper, diff.effect) == (-9, -9, None)
    assert stats.decide(diff, "less", 1.0)[0] == HOLDS
    assert stats.tost_p(diff, 1.0) == 1.0 and stats.tost_p(stats.paired([1] * 3, [1] * 3), 1) == 0


def test_comparison_carries_everything_the_record_needs():
    comparison = stats.compare("drugs", "drug 1 − drug 2, extra sleep", stats.paired(DRUG_1, DRUG_2),
                               "less", 0.5)
    data = comparison.to_json()
    for key in ("difference", "lower", "upper", "confidence", "method", "margin", "claim",
                "outcome", "effect", "tost_p"):
        assert key in data
    assert data["outcome"] == HOLDS and "95% interval" in comparison.text()
