"""gluon_bn.study.stats (issue 29): the t distribution, paired and Welch intervals, effect sizes,
TOST and the verdict rule, against textbook cases whose expected values SciPy or the
formulas compute here; (issue 38) the exact sign test and the median's order-statistic
interval, the claims' p-values, Holm's adjustment and negligible effects named."""

import math
from fractions import Fraction

import numpy as np
import pytest

from gluon_bn.study import comparison, distributions, stats
from gluon_bn.study.stats import FAILS, HOLDS, NEGLIGIBLE, UNCLEAR

ss = pytest.importorskip("scipy.stats")

# Student's (1908) sleep data, the textbook paired example: extra hours of sleep of ten
# patients under two drugs (Cushny and Peebles).
DRUG_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
DRUG_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


@pytest.mark.parametrize("df", [1, 2, 2.7, 5, 9, 30, 250])
def test_t_distribution_matches_scipy(df):
    for t in (-3.0, -0.4, 0.0, 0.8, 2.5, 12.0):
        assert distributions.t_cdf(t, df) == pytest.approx(ss.t.cdf(t, df), abs=1e-12)
    for p in (0.025, 0.6, 0.95, 0.975, 0.995):
        assert distributions.t_quantile(p, df) == pytest.approx(ss.t.ppf(p, df), rel=1e-7)


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
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = ss.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert diff.df == pytest.approx(df)
    assert (diff.lower, diff.upper) == (
        pytest.approx(np.mean(a) - np.mean(b) - half),
        pytest.approx(np.mean(a) - np.mean(b) + half),
    )
    scipy_result = ss.ttest_ind(a, b, equal_var=False)
    assert diff.estimate / diff.se == pytest.approx(scipy_result.statistic)
    two_sided = 2 * (1 - distributions.t_cdf(abs(diff.estimate / diff.se), diff.df))
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
        expected = max(
            ss.ttest_1samp(d, -margin, alternative="greater").pvalue,
            ss.ttest_1samp(d, margin, alternative="less").pvalue,
        )
        assert stats.tost_p(diff, margin) == pytest.approx(expected, abs=1e-9)
        within = -margin < diff.lower and diff.upper < margin
        assert (stats.tost_p(diff, margin) < alpha) == within


def _diff(lower, upper):
    middle = (lower + upper) / 2
    return stats.Difference(
        middle, lower, upper, 0.95, (upper - lower) / 4, 2, 3, "made up", None, "d_z"
    )


@pytest.mark.parametrize(
    "claim, lower, upper, expected",
    [
        ("greater", 0.02, 0.05, HOLDS),
        ("greater", 0.001, 0.003, NEGLIGIBLE),  # above 0 but within the margin: named (issue 38)
        ("greater", -0.005, 0.008, FAILS),  # within ±0.01: equivalence shown
        ("greater", -0.05, -0.02, FAILS),  # the opposite shown
        ("greater", -0.03, 0.04, UNCLEAR),
        ("less", -0.05, -0.02, HOLDS),
        ("less", -0.008, -0.002, NEGLIGIBLE),
        ("less", -0.02, -0.001, HOLDS),  # reaches beyond the margin: a difference that counts
        ("less", 0.02, 0.05, FAILS),
        ("less", -0.03, 0.04, UNCLEAR),
        ("equivalent", -0.004, 0.006, HOLDS),
        ("equivalent", 0.012, 0.03, FAILS),  # wholly beyond the margin
        ("equivalent", -0.002, 0.03, UNCLEAR),
        ("noninferior", -0.008, 0.03, HOLDS),
        ("noninferior", -0.05, -0.02, FAILS),
        ("noninferior", -0.03, 0.02, UNCLEAR),
    ],
)
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
    compared = comparison.compare(
        "drugs", "drug 1 − drug 2, extra sleep", stats.paired(DRUG_1, DRUG_2), "less", 0.5
    )
    data = compared.to_json()
    for key in (
        "difference",
        "lower",
        "upper",
        "confidence",
        "method",
        "margin",
        "claim",
        "outcome",
        "effect",
        "tost_p",
        "p",
        "p_holm",
        "holm_survives",
    ):
        assert key in data
    assert data["outcome"] == HOLDS and "95% interval" in compared.text()
    assert data["p"] == pytest.approx(ss.ttest_rel(DRUG_1, DRUG_2, alternative="less").pvalue)
    assert data["p_holm"] is None and data["holm_survives"] is None  # not adjusted on its own


# --------------------------------------------------------------------------- issue 38


def test_a_direction_shown_below_the_margin_is_named_not_plain_holds():
    """The issue's case: +0.002 to +0.008 against ±0.01 excludes 0, and is below the margin."""
    from gluon_bn.study.judging import outcome

    outcome_, reason = stats.decide(_diff(0.002, 0.008), "greater", 0.01)
    assert outcome_ == NEGLIGIBLE == "holds, below the margin" and "within ±0.01" in reason
    assert outcome(outcome_) == HOLDS  # it starts with "holds": it counts as holding
    shown = comparison.compare("x", "a − b", _diff(0.002, 0.008), "greater", 0.01)
    assert shown.text().count(": holds, below the margin,") == 1
    for lower, upper in ((0.002, 0.011), (0.012, 0.03)):  # reaching the margin: plain holds
        assert stats.decide(_diff(lower, upper), "greater", 0.01)[0] == HOLDS
    # not directional: equivalence within the margin is what those claims ask
    assert stats.decide(_diff(0.002, 0.008), "equivalent", 0.01)[0] == HOLDS
    assert stats.decide(_diff(0.002, 0.008), "noninferior", 0.01)[0] == HOLDS


def test_claim_p_values_are_scipys_one_sided_t_tests():
    rng = np.random.default_rng(1)
    m = 0.01
    for _ in range(20):
        d = rng.normal(rng.uniform(-0.03, 0.03), 0.01, size=5)
        diff = stats.one_sample(list(d))

        def t(popmean, side):
            return ss.ttest_1samp(d, popmean, alternative=side).pvalue

        assert stats.claim_p(diff, "greater", m) == pytest.approx(t(0, "greater"), abs=1e-10)
        assert stats.claim_p(diff, "less", m) == pytest.approx(t(0, "less"), abs=1e-10)
        assert stats.claim_p(diff, "noninferior", m) == pytest.approx(t(-m, "greater"), abs=1e-10)
        assert stats.claim_p(diff, "equivalent", m) == stats.tost_p(diff, m)
        # the 95 % interval rule is the one-sided test at 0.025 for a directional claim
        assert (stats.claim_p(diff, "greater", m) < 0.025) == (diff.lower > 0)


@pytest.mark.parametrize("n", range(1, 13))
def test_sign_test_p_values_are_exact_binomial_tails(n):
    for k in range(n + 1):
        exact = Fraction(sum(math.comb(n, i) for i in range(k, n + 1)), 2**n)
        assert distributions.binomial_tail(k, n) == float(exact)
        assert distributions.binomial_tail(k, n) == pytest.approx(
            ss.binomtest(k, n, 0.5, alternative="greater").pvalue, rel=1e-12
        )
    assert (
        distributions.binomial_tail(-1, n) == 1.0 and distributions.binomial_tail(n + 1, n) == 0.0
    )


def test_sign_test_counts_ties_against_the_claim():
    all_up = stats.sign_test([1.7, 3.3, 1.7, 5.0, 1.7, 3.3])
    assert (all_up.n, all_up.positive, all_up.p) == (6, 6, 1 / 64)
    one_tie = stats.sign_test([1.7, 3.3, 1.7, 5.0, 1.7, 0.0])
    assert (one_tie.positive, one_tie.p, one_tie.mirrored_p) == (5, 7 / 64, 63 / 64)
    none_up = stats.sign_test([0.0, 0.0, -1.7, -1.7, -3.3, 0.0])
    assert (none_up.positive, none_up.p, none_up.mirrored_p) == (0, 1.0, 1 / 64)
    assert stats.sign_test([-1.0, -2.0, 0.0], "less").positive == 2
    with pytest.raises(ValueError, match="'greater' or 'less'"):
        stats.sign_test([1.0], "equivalent")


def test_median_interval_from_order_statistics_with_its_exact_coverage():
    six = [3.0, -1.0, 2.0, 8.0, 0.5, 1.0]
    assert distributions.median(six) == 1.5
    assert distributions.median_interval(six) == (-1.0, 8.0, 1 - 2 / 64)  # [min, max] at 96.9 %
    ten = list(range(10, 0, -1))
    lower, upper, coverage = distributions.median_interval(ten)
    assert (lower, upper) == (2, 9)  # x_(2), x_(9)
    assert coverage == pytest.approx(1 - 2 * ss.binom.cdf(1, 10, 0.5)) and coverage >= 0.95
    assert 1 - 2 * ss.binom.cdf(2, 10, 0.5) < 0.95  # x_(3), x_(8) would cover less
    five = [1.0, 2.0, 3.0, 4.0, 5.0]  # even [min, max] covers less than 95 %: said so
    assert distributions.median_interval(five) == (1.0, 5.0, 1 - 2 / 32)
    assert comparison.level_text(1 - 2 / 64) == "96.9%" and comparison.level_text(0.95) == "95%"


def test_sign_comparison_decides_and_carries_what_a_record_shows():
    up = comparison.sign_compare(
        "rate", "BN − plain, log2", [1.7, 3.3, 1.7, 5.0, 1.7, 3.3], "greater", 1.0
    )
    assert up.outcome == HOLDS and up.p == 1 / 64 and up.kind == "sign"
    data = up.to_json()
    assert (data["difference"], data["lower"], data["upper"]) == (2.5, 1.7, 5.0)
    assert data["confidence"] == 1 - 2 / 64 and data["tost_p"] is None
    assert data["method"] == "exact sign test over 6 seeds, ties against the claim"
    assert "median +2.50 (96.9% interval +1.70 to +5.00" in up.text(2)
    tied = comparison.sign_compare("rate", "x", [1.7, 3.3, 0.0, 5.0, 1.7, 3.3], "greater", 1.0)
    assert tied.outcome == UNCLEAR and "5 of 6" in tied.reason
    down = comparison.sign_compare("rate", "x", [0.0, -1.7, 0.0, 0.0, -3.3, 0.0], "greater", 1.0)
    assert down.outcome == FAILS and "mirrored p 0.016" in down.reason
    few = comparison.sign_compare("rate", "x", [1.7, 3.3, 1.7, 1.7], "greater", 1.0)
    assert few.outcome == UNCLEAR and "smallest possible p is 0.062" in few.reason
    small = comparison.sign_compare("rate", "x", [0.2, 0.3, 0.2, 0.5, 0.2, 0.3], "greater", 1.0)
    assert small.outcome == NEGLIGIBLE  # every seed up, by less than the margin


def test_holm_on_the_textbook_example():
    """Holm (1979) as the textbooks (and Wikipedia's Holm–Bonferroni article) show it: four
    hypotheses at α = 0.05 with p = 0.01, 0.04, 0.03, 0.005. Sorted, 0.005 ≤ 0.05/4 and
    0.01 ≤ 0.05/3 are rejected; 0.03 > 0.05/2 stops the procedure."""
    p = [0.01, 0.04, 0.03, 0.005]
    adjusted = distributions.holm(p)
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [a <= 0.05 for a in adjusted] == [True, False, False, True]
    assert distributions.holm([0.04, 0.01]) == pytest.approx(
        [0.04, 0.02]
    )  # monotone along the order
    assert distributions.holm([0.3, 0.4, 0.9]) == pytest.approx([0.9, 0.9, 0.9])  # capped at 1 ...
    assert distributions.holm([0.6, 0.7]) == [1.0, 1.0]
    assert distributions.holm([0.02]) == [0.02] and distributions.holm([]) == []
    with pytest.raises(ValueError, match=r"lie in \[0, 1\]"):
        distributions.holm([1.5])


def test_holm_adjustment_demotes_what_held_and_leaves_failures():
    held = comparison.compare(
        "a", "x", stats.paired([0.62, 0.63, 0.64], [0.6] * 3), "greater", 0.01
    )
    assert held.outcome == HOLDS and 0.01 < held.p < 0.025
    kept = comparison.holm_adjusted(held, 2 * held.p, 2)
    assert kept.outcome == HOLDS and kept.survives and not kept.demoted and kept.family == 2
    lost = comparison.holm_adjusted(held, 3 * held.p, 3)
    assert lost.outcome == UNCLEAR and lost.demoted and lost.survives is False
    assert "Holm-adjusted p 0.053 over the study's 3" in lost.reason
    assert lost.to_json()["p_holm"] == 3 * held.p and lost.to_json()["holm_demoted"]
    failed = comparison.compare(
        "b", "x", stats.paired([0.5] * 3, [0.6, 0.61, 0.6]), "greater", 0.01
    )
    assert comparison.holm_adjusted(failed, 1.0, 3).outcome == FAILS


def _simulated_power(effect: float, n: int, level: float, draws: int = 40000) -> float:
    """Share of `draws` simulated studies of n paired differences (mean `effect`, sd 1) whose
    one-sided t test rejects at `level`."""
    rng = np.random.default_rng(7)
    d = rng.normal(effect, 1.0, size=(draws, n))
    t = d.mean(axis=1) / (d.std(axis=1, ddof=1) / math.sqrt(n))
    return float(np.mean(t > distributions.t_quantile(1 - level, n - 1)))


@pytest.mark.parametrize("effect, level", [(0.882, 0.025), (1.22, 0.025), (0.5, 0.05)])
def test_seeds_for_power_reach_the_power_and_one_fewer_does_not(effect, level):
    n = distributions.seeds_for_power(effect, level=level, power=0.8)
    # the approximation is within about a point of the simulated power of the exact test
    assert _simulated_power(effect, n, level) >= 0.79
    assert _simulated_power(effect, n - 1, level) < 0.81
    assert distributions.seeds_for_power(-effect, level=level) == n  # either sign


def test_seeds_for_power_refuses_what_no_count_can_show():
    with pytest.raises(ValueError, match="zero effect"):
        distributions.seeds_for_power(0.0, level=0.05)
    with pytest.raises(ValueError, match="level must lie in"):
        distributions.seeds_for_power(0.5, level=0.5)
