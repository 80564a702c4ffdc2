"""gluon_bn.walkthrough: the notebooks' shared steps, on small arrays in both array APIs.

The demonstrations must print what the notebooks printed before they moved here, and their
assertions must fail when what they check does not hold. One test trains for real, on 64
images for one epoch (seconds); the rest build a few small arrays and layers.
"""

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from gluon_bn import batch_norm, get_recipe
from gluon_bn import walkthrough as wt
from gluon_bn.bn.layer import BatchNorm
from gluon_bn.models import build_net, count_parameters, make_initializer
from gluon_bn.options import RunOptions
from gluon_bn.records import EpochStats, VariantRun
from gluon_bn.run.reproduce import record_runs
from gluon_bn.runtime.loader import mx

npx = mx.npx
# The recipes whose moving statistics start fixed, as the function demonstrations assume.
FIXED_START = ("d2l-1.0", "d2l-en", "d2l-0.17", "d2l-zh", "d2l-zh:upstream")


@pytest.fixture
def shown(monkeypatch):
    """The Markdown that the display functions would show, instead of showing it."""
    texts = []
    monkeypatch.setattr(wt, "_display_markdown", texts.append)
    return texts


def conventions(name):
    return get_recipe(name).conventions


# ---------------------------------------------------------------- conventions
def test_batch_norm_options_are_the_call_conventions_only():
    conv = conventions("straight-dope")
    assert wt.batch_norm_options(conv) == dict(
        eps=1e-5,
        momentum=0.9,
        momentum_on="moving",
        normalize_by="sqrt_var_eps",
        update_in_prediction=True,
    )


@pytest.mark.parametrize(
    "name, weight", [("d2l-1.0", 0.1), ("d2l-en", 0.1), ("d2l-zh", 0.9), ("d2l-zh:upstream", 0.1)]
)
def test_batch_weight_reads_which_side_the_momentum_weighs(name, weight):
    assert wt.batch_weight(conventions(name)) == pytest.approx(weight)


def test_show_conventions_prints_them_and_returns_the_call_keywords(capsys):
    conv = conventions("d2l-zh")
    assert wt.show_conventions(conv) == wt.batch_norm_options(conv)
    out = capsys.readouterr().out.splitlines()
    assert out == [
        str(conv),
        "each training step gives the batch statistics a weight of 0.9 in the moving averages",
    ]


def test_show_assumptions_displays_the_recipes_list(shown):
    recipe = get_recipe("d2l-en")
    wt.show_assumptions(recipe)
    assert shown[0].startswith("**What the recipe had to decide:**\n\n- ")
    assert shown[0].count("\n- ") == len(recipe.assumptions)


# ---------------------------------------------------------------- the function and the layer
@pytest.mark.parametrize("name", FIXED_START)
def test_the_function_demos_hold_for_every_fixed_start_recipe(name, capsys):
    conv = conventions(name)
    demo = wt.demo_function(conv)
    assert isinstance(demo.Y, mx.nd.NDArray) and demo.X.shape == (4, 3)
    wt.demo_prediction(demo)
    wt.demo_per_channel(conv)
    layer = wt.check_layer(demo)
    builtin = wt.compare_with_gluon(demo)
    assert isinstance(layer, BatchNorm) and isinstance(builtin, mx.gluon.nn.BatchNorm)
    out = capsys.readouterr().out
    assert "Y is an" not in out  # the array type is named only for mx.np arrays
    for line in (
        "per-feature mean of Y:     [0. 0. 0.]",
        "per-feature variance of Y: [1. 1. 1.]",
        "moving statistics unchanged: True",
        "statistics are kept per channel, shape (1, 2, 1, 1)",
        "after one training call the layer holds the same moving statistics as the function",
        "output equals ours: True",
        "running mean equals ours: True",
    ):
        assert line in out, line


def test_the_moving_statistics_follow_the_convention():
    demo = wt.demo_function(conventions("d2l-en"))  # batch weight 0.1, variance from 0
    x = demo.X.asnumpy()
    np.testing.assert_allclose(demo.new_mean.asnumpy().ravel(), 0.1 * x.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(demo.new_var.asnumpy().ravel(), 0.1 * x.var(axis=0), rtol=1e-5)
    assert demo.bn_kwargs == wt.batch_norm_options(demo.conv)


def test_gluon_comparison_reports_the_gap_of_the_starting_variance(capsys):
    wt.compare_with_gluon(wt.demo_function(conventions("d2l-en")))  # starts at 0, Gluon at 1
    assert (
        "(expected 0.9: the running variance starts at 1 in Gluon and at 0 here)"
        in capsys.readouterr().out
    )


def test_the_demos_build_numpy_arrays_in_numpy_mode(numpy_mode, capsys):
    conv = conventions("d2l-1.0")
    demo = wt.demo_function(conv)
    assert all(isinstance(a, mx.np.ndarray) for a in (demo.X, demo.Y, demo.new_mean))
    assert isinstance(wt.demo_prediction(demo), mx.np.ndarray)
    assert isinstance(wt.demo_per_channel(conv), mx.np.ndarray)
    wt.check_layer(demo)
    wt.compare_with_gluon(demo)
    out = capsys.readouterr().out
    assert out.startswith("Y is an mxnet.numpy.ndarray\nY = [[-1.3416395")
    assert "moving mean after one step: [[0.4 0.5 0.4]]" in out


def test_numpy_api_chooses_the_array_kind_outside_numpy_mode():
    assert isinstance(wt.demo_function(conventions("d2l-1.0"), numpy_api=False).Y, mx.nd.NDArray)
    # outside numpy mode, mx.np arrays go through the function and come back as such
    Y4 = wt.demo_per_channel(conventions("d2l-1.0"), numpy_api=True)
    assert isinstance(Y4, mx.np.ndarray) and Y4.shape == (4, 2, 3, 3)


def test_prediction_mode_that_updates_says_so(capsys):
    conv = dataclasses.replace(conventions("straight-dope"), moving_init="fixed")
    wt.demo_prediction(wt.demo_function(conv))
    assert "moving statistics unchanged: False" in capsys.readouterr().out


def test_the_checks_fail_when_what_they_check_does_not_hold(monkeypatch):
    demo = wt.demo_function(conventions("d2l-en"))
    wrong = dataclasses.replace(demo, new_mean=demo.new_mean + 1)
    with pytest.raises(AssertionError):
        wt.check_layer(wrong)
    with pytest.raises(AssertionError):
        wt.compare_with_gluon(wrong)

    def moves_in_prediction(X, gamma, beta, mean, var, **options):
        Y, _, _ = batch_norm(X, gamma, beta, mean, var, **options)
        return Y, mean + 1, var  # as if prediction mode had updated the moving mean

    monkeypatch.setattr(wt, "batch_norm", moves_in_prediction)
    with pytest.raises(AssertionError):
        wt.demo_prediction(demo)
    monkeypatch.setattr(wt, "batch_norm", lambda X, *a, **k: (X, a[2], a[3]))
    with pytest.raises(AssertionError):  # a function that does not standardise the batch
        wt.demo_function(conventions("d2l-en"))


# ---------------------------------------------------------------- the network
def test_layer_shapes_and_parameter_counts(capsys):
    recipe = get_recipe("d2l-en")
    net = build_net(recipe, "scratch")
    net.initialize(make_initializer(recipe.initializer_for("scratch")))
    shapes = wt.show_layer_shapes(net)
    assert len(shapes) == len(net) and shapes[0] == (2, 6, 24, 24) and shapes[-1] == (2, 10)
    assert "    Conv2D  (2, 6, 24, 24)" in capsys.readouterr().out
    counts = wt.show_parameter_counts(recipe)
    assert list(counts) == ["scratch", "gluon", "plain"]
    assert counts["scratch"] == counts["gluon"] == count_parameters(net) > counts["plain"]
    assert " scratch: 44,878 trainable parameters" in capsys.readouterr().out


def test_layer_shapes_in_numpy_mode(numpy_mode):
    from gluon_bn.models import BNLeNetScratch

    model = BNLeNetScratch()
    assert wt.show_layer_shapes(model.net, (3, 1, 28, 28))[-1] == (3, 10)


def test_first_bn_of_untrained_networks_and_the_documents_values(capsys):
    recipe = get_recipe("d2l-en")
    nets = {}
    for variant in ("scratch", "gluon", "plain"):
        nets[variant] = build_net(recipe, variant)
        nets[variant].initialize()
        nets[variant](mx.nd.zeros(wt.IMAGE_BATCH))
    learned = wt.show_first_bn(nets, recipe)
    assert learned["plain"] is None
    for variant in ("scratch", "gluon"):
        gamma, beta = learned[variant]
        np.testing.assert_array_equal(gamma, np.ones(6))
        np.testing.assert_array_equal(beta, np.zeros(6))
    out = capsys.readouterr().out
    assert "plain: no batch normalization" in out and "document gamma: [1.787" in out
    wt.show_first_bn({"scratch": nets["scratch"]}, get_recipe("d2l-1.0"))  # printed none
    assert "document" not in capsys.readouterr().out


# ---------------------------------------------------------------- the report
def _record(recipe_name):
    """A record of one made-up train_ch5 epoch (d2l-1.0 too: its notebook comparison uses it)."""
    history = (EpochStats(1, 2.0, 0.3, 0.25, 1.0, 0.8, 640.0),)
    return record_runs(
        get_recipe(recipe_name),
        RunOptions(epochs=1, loop="train_ch5"),
        mx.cpu(),
        [VariantRun("scratch", 0, history)],
    )


@pytest.mark.parametrize(
    "name, what",
    [("d2l-en", "how the document's numbers compare"), ("d2l-1.0", "what the networks can learn")],
)
def test_show_report_notes_a_smoke_run_first(name, what, shown):
    result = _record(name)
    wt.show_report(result, smoke=True)
    assert len(shown) == 2 and what in shown[0] and shown[0].startswith("*Smoke run")
    from gluon_bn.report import markdown_report

    assert shown[1] == markdown_report(result)
    shown.clear()
    wt.show_report(result)
    assert shown == [markdown_report(result)]


# ---------------------------------------------------------------- loading and training
def test_importing_loads_neither_d2l_nor_ipython():
    code = (
        "import sys, gluon_bn.walkthrough; "
        "print(sorted(m for m in ('d2l', 'IPython') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.slow
def test_train_live_trains_and_returns_the_record_and_the_net(fashion_root, monkeypatch, capsys):
    pytest.importorskip("d2l", reason="pip install -e '.[test]' (d2l, for its Animator)")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    options = RunOptions(epochs=1, limit=64, test_limit=32, data_root=str(fashion_root))
    record, net = wt.train_live(
        "scratch", recipe=get_recipe("d2l-en"), options=options, seed=0, ctx=mx.cpu()
    )
    assert record.variant == "scratch" and len(record.history) == 1
    assert "d2l-en / scratch / seed 0" in capsys.readouterr().out
    learned = wt.show_first_bn({"scratch": net})
    np.testing.assert_allclose(learned["scratch"][0], record.first_bn_gamma, rtol=1e-6)
