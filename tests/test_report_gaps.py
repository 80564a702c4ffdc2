"""The gap verdict's tolerance, the outlier rule and how a record names its CPU, on made-up numbers."""

import dataclasses

import pytest

from gluon_bn.options import RunOptions
from gluon_bn.recipes import EpochLine, PrintedRun, PublishedRuns, get_recipe
from gluon_bn.records import EpochStats, Reproduction, VariantRun
from gluon_bn.report.gaps import (
    TOLERANCE_SPREADS,
    Comparison,
    Tolerance,
    choose_tolerance,
    compare,
    find_outliers,
    published_lines,
    spread,
)
from gluon_bn.results import final_rows, last_epoch_comparisons, outlier_note


def test_spread_is_the_sample_sd_and_unknown_for_one_value():
    assert spread([0.5]) is None
    assert spread([]) is None
    assert spread([1.0, 3.0]) == pytest.approx(2**0.5)  # ddof=1
    assert spread([0.2, 0.2, 0.2]) == pytest.approx(0.0)


def test_one_seed_and_nothing_published_is_untested_never_a_gap():
    comparison = compare({"document": EpochLine(5, 0.9, 0.1, 0.1)}, {"loss": [0.3]})["loss"]
    assert comparison.tolerance == Tolerance(seeds=None, published=None)
    assert comparison.tolerance.value is None and comparison.tolerance.source is None
    assert comparison.verdict == "untested"
    assert comparison.tolerance.describe(4) == "none"


def test_one_seed_with_a_published_spread_uses_it():
    lines = {
        "document": EpochLine(5, 0.34, 0.877, 0.880),
        "other": EpochLine(5, 0.30, 0.890, 0.870),
    }
    comparisons = compare(lines, {"loss": [0.33], "test_acc": [0.80]})
    loss, acc = comparisons["loss"], comparisons["test_acc"]
    assert loss.tolerance.source == "published"
    assert loss.tolerance.value == pytest.approx(TOLERANCE_SPREADS * spread([0.34, 0.30]))
    assert loss.verdict == "within"  # 0.01 from our one value, tolerance ~0.057
    assert acc.verdict == "gap"  # 0.08 away, tolerance ~0.014
    assert loss.tolerance.describe(4) == f"±{loss.tolerance.value:.4f} published"


def test_several_seeds_without_published_spread_use_the_seeds():
    tol = choose_tolerance([0.30, 0.31, 0.32], [0.35])
    assert tol.published is None
    assert tol.source == "seeds"
    assert tol.value == pytest.approx(2 * 0.01)


@pytest.mark.parametrize(
    "ours, published, source",
    [
        ([0.30, 0.31, 0.32], [0.30, 0.40], "published"),  # published runs scatter more
        ([0.20, 0.30, 0.40], [0.30, 0.31], "seeds"),  # our seeds scatter more
        ([0.30, 0.32], [0.30, 0.32], "seeds"),  # a tie goes to the seeds
    ],
)
def test_the_larger_known_spread_sets_the_tolerance(ours, published, source):
    tol = choose_tolerance(ours, published)
    assert tol.source == source
    assert tol.value == pytest.approx(TOLERANCE_SPREADS * max(spread(ours), spread(published)))


def test_identical_seeds_are_a_measured_spread_of_zero():
    """Several seeds that agree exactly measure a spread of 0; only one seed measures nothing."""
    comparison = compare({"document": EpochLine(1, 0.5, 0.8, 0.8)}, {"loss": [0.4, 0.4]})["loss"]
    assert comparison.tolerance.source == "seeds" and comparison.tolerance.value == 0.0
    assert comparison.verdict == "gap"


def test_no_document_number_gives_no_verdict():
    comparison = compare({"other": EpochLine(5, 0.3, 0.9, 0.9)}, {"loss": [0.3, 0.31]})["loss"]
    assert comparison.verdict is None
    assert comparison.outside("other") is False


def pair(
    scratch: float, gluon: float, ours_scratch, ours_gluon, metric="test_acc", source="document"
):
    return {
        "scratch": {
            metric: Comparison(
                metric,
                {source: scratch},
                tuple(ours_scratch),
                choose_tolerance(ours_scratch, [scratch]),
            )
        },
        "gluon": {
            metric: Comparison(
                metric, {source: gluon}, tuple(ours_gluon), choose_tolerance(ours_gluon, [gluon])
            )
        },
    }


def test_a_pair_that_disagrees_names_the_one_outside_its_tolerance():
    found = find_outliers(pair(0.786, 0.853, [0.86, 0.87, 0.875], [0.84, 0.86, 0.87]))
    assert len(found) == 1
    outlier = found[0]
    assert outlier.odd == "scratch" and outlier.source == "document"
    assert outlier.difference == pytest.approx(0.067)
    assert outlier.allowed == pytest.approx(
        2 * (spread([0.86, 0.87, 0.875]) ** 2 + spread([0.84, 0.86, 0.87]) ** 2) ** 0.5
    )
    assert outlier.means["scratch"] == pytest.approx(0.868333, abs=1e-6)


def test_a_pair_that_disagrees_with_both_outside_names_neither():
    found = find_outliers(pair(0.70, 0.95, [0.86, 0.87, 0.88], [0.86, 0.87, 0.88]))
    assert [o.odd for o in found] == [None]


def test_a_pair_within_two_runs_spread_is_no_outlier():
    assert find_outliers(pair(0.864, 0.871, [0.85, 0.86, 0.865], [0.845, 0.86, 0.87])) == []


def test_no_outlier_without_both_tolerances_or_both_variants():
    assert find_outliers(pair(0.70, 0.95, [0.87], [0.86, 0.87, 0.88])) == []
    only_scratch = pair(0.70, 0.95, [0.86, 0.87], [0.86, 0.87])
    del only_scratch["gluon"]
    assert find_outliers(only_scratch) == []


def test_pairs_of_other_published_runs_are_checked_too():
    found = find_outliers(
        pair(0.70, 0.90, [0.89, 0.90, 0.91], [0.89, 0.90, 0.91], source="upstream")
    )
    assert [(o.source, o.odd) for o in found] == [("upstream", "scratch")]


def made_up_recipe():
    """d2l-en with made-up printed numbers and a made-up second published run."""
    return dataclasses.replace(
        get_recipe("d2l-en"),
        printed=(
            PrintedRun("scratch", "gpu(0)", (EpochLine(2, 0.40, 0.85, 0.70),)),
            PrintedRun("gluon", "gpu(0)", (EpochLine(2, 0.41, 0.85, 0.86),)),
        ),
        published_elsewhere={
            "other": PublishedRuns(
                "made up for a test",
                (PrintedRun("scratch", "?", (EpochLine(2, 0.44, 0.84, 0.72),)),),
            )
        },
    )


def record(recipe, seeds, values):
    """A two-epoch record of scratch and gluon: `values` gives (loss, train acc, test acc) per seed."""
    run = RunOptions(seeds=tuple(seeds), epochs=2).resolve(recipe)
    env = {"device": "cpu(0)", "mxnet": "1.9.1", "cpu_count": 2, "processor": "x86_64"}
    runs = [
        VariantRun(
            v,
            s,
            (EpochStats(1, 1.0, 0.5, 0.5, 1.0, 1.0, 1.0), EpochStats(2, *values[i], 1.0, 1.0, 1.0)),
        )
        for v in ("scratch", "gluon")
        for i, s in enumerate(seeds)
    ]
    return Reproduction(run, env, runs)


def test_published_lines_gather_the_document_and_other_runs_at_one_epoch():
    recipe = made_up_recipe()
    assert set(published_lines(recipe, "scratch", 2)) == {"document", "other"}
    assert set(published_lines(recipe, "gluon", 2)) == {"document"}
    assert published_lines(recipe, "scratch", 1) == {}


def test_the_table_with_one_seed_says_untested_except_where_published_runs_scatter():
    rep = record(made_up_recipe(), [0], [(0.30, 0.90, 0.90)])
    scratch, gluon = final_rows(rep, "made-up")
    assert scratch[6].startswith("±") and "published" in scratch[6]  # two scratch sources
    assert gluon[6] == "none / none / none"
    assert gluon[7] == "untested: loss, train acc, test acc"


def test_the_table_marks_the_documents_outlier_and_the_note_explains_it():
    rep = record(
        made_up_recipe(), [0, 1, 2], [(0.40, 0.85, 0.85), (0.41, 0.85, 0.86), (0.42, 0.85, 0.87)]
    )
    scratch, gluon = final_rows(rep, "made-up")
    assert "test acc (the document's outlier)" in scratch[7]
    assert gluon[7] == "—"
    outliers = find_outliers(last_epoch_comparisons(rep))
    assert [(o.source, o.metric, o.odd) for o in outliers] == [("document", "test_acc", "scratch")]
    note = outlier_note("made-up", outliers[0])
    assert "0.700 for the scratch layer and 0.860 for the built-in one" in note
    assert "the document's scratch test acc is an outlier" in note


def test_document_002s_scratch_test_accuracy_is_flagged_by_the_rule():
    """The rule on the real printed pair (0.786 vs 0.853) with made-up seeds near 0.86."""
    recipe = get_recipe("d2l-0.17")
    lines = {v: published_lines(recipe, v, 10) for v in ("scratch", "gluon")}
    ours = {"scratch": [0.862, 0.868, 0.875], "gluon": [0.845, 0.860, 0.873]}
    found = find_outliers({v: compare(lines[v], {"test_acc": ours[v]}) for v in lines})
    assert [(o.metric, o.odd) for o in found] == [("test_acc", "scratch")]


def test_the_cpu_is_named_by_model_else_processor_and_never_left_blank():
    from gluon_bn.report import cpu_name
    from gluon_bn.report.markdown import machine

    assert cpu_name({"cpu_model": "AMD EPYC", "processor": "x86_64"}) == "AMD EPYC"
    assert cpu_name({"cpu_model": None, "processor": "x86_64"}) == "x86_64"
    assert cpu_name({"processor": ""}) == "an unnamed CPU"
    # a record older than the CPU model: the processor
    assert machine({"mxnet": "1.9.1", "cpu_count": 2, "processor": "x86_64"}) == (
        "MXNet 1.9.1 on 2 CPU(s) (x86_64)"
    )
