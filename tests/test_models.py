"""Networks, recipes and the package's import behaviour."""

import subprocess
import sys

import numpy as np
import pytest

from gluon_bn import RECIPES, BatchNorm, get_recipe
from gluon_bn.models import (
    build_net,
    count_parameters,
    hybridize_network,
    lenet,
    straight_dope_convnet,
)
from gluon_bn.runtime.loader import mx

nn = mx.gluon.nn
FASHION_BATCH = (7, 1, 28, 28)

LENET_PLAIN = (
    (6 * 25 + 6) + (16 * 6 * 25 + 16) + (256 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
)
LENET_BN = LENET_PLAIN + 2 * (6 + 16 + 120 + 84)
DOPE_BN = (
    (20 * 9 + 20) + (50 * 20 * 25 + 50) + (800 * 128 + 128) + (128 * 10 + 10) + 2 * (20 + 50 + 128)
)


@pytest.mark.parametrize(
    "bn,expected", [("none", LENET_PLAIN), ("scratch", LENET_BN), ("gluon", LENET_BN)]
)
@pytest.mark.parametrize("pool", ["max", "avg"])
@pytest.mark.parametrize("flatten", [False, True])
def test_lenet_shape_and_parameter_count(bn, expected, pool, flatten):
    net = lenet(bn, pool=pool, flatten=flatten)
    net.initialize()
    assert net(mx.nd.zeros(FASHION_BATCH)).shape == (7, 10)
    assert count_parameters(net) == expected
    kinds = {type(b) for b in net}
    assert (BatchNorm in kinds) == (bn == "scratch")
    assert (nn.BatchNorm in kinds) == (bn == "gluon")
    assert (nn.Flatten in kinds) == flatten
    assert (nn.MaxPool2D if pool == "max" else nn.AvgPool2D) in kinds


@pytest.mark.parametrize("bn", ["scratch", "gluon"])
def test_straight_dope_convnet(bn):
    net = straight_dope_convnet(bn)
    net.initialize(mx.init.One())  # must not override the network's own draws
    assert net(mx.nd.zeros(FASHION_BATCH)).shape == (7, 10)
    assert count_parameters(net) == DOPE_BN
    weights = net[0].weight.data().asnumpy()
    assert abs(weights.mean()) < 0.005 and 0.005 < weights.std() < 0.015
    gamma = net[1].gamma.data().asnumpy()
    assert abs(gamma.mean() - 1) < 0.01 and 0.003 < gamma.std() < 0.02


def test_scratch_and_gluon_lenet_compute_the_same():
    """Same weights, same batches: the scratch layer is Gluon's, in outputs and statistics."""
    nets = [lenet(kind) for kind in ("scratch", "gluon")]
    for net in nets:
        net.initialize(mx.init.Xavier())
        net(mx.nd.zeros(FASHION_BATCH))
    for ours, theirs in zip(nets[0], nets[1]):
        for p, q in zip(ours.collect_params().values(), theirs.collect_params().values()):
            q.set_data(p.data().reshape(q.shape))
    x = mx.nd.array(np.random.default_rng(0).random(FASHION_BATCH).astype("float32"))
    with mx.autograd.record():
        outs = [net(x) for net in nets]
    mx.autograd.backward(outs)  # on CPU, MXNet's operator updates its statistics in backward
    np.testing.assert_allclose(outs[0].asnumpy(), outs[1].asnumpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(nets[0](x).asnumpy(), nets[1](x).asnumpy(), rtol=1e-4, atol=1e-5)


def test_every_recipe_builds_every_variant():
    assert set(RECIPES) == {"d2l-1.0", "d2l-en", "d2l-0.17", "d2l-zh", "straight-dope"}
    for name, recipe in RECIPES.items():
        assert recipe.source_file.endswith(".txt") and recipe.section
        for variant in ("scratch", "gluon", "plain"):
            net = build_net(recipe, variant)
            net.initialize()
            assert net(mx.nd.zeros(FASHION_BATCH)).shape == (7, 10)


def test_recipe_conventions_follow_the_documents():
    assert get_recipe("d2l-en").conventions.moving_var_init == 0.0
    assert get_recipe("d2l-1.0").conventions.momentum_on == "batch"
    assert get_recipe("d2l-1.0").conventions.gluon_momentum() == pytest.approx(0.9)
    zh, upstream = get_recipe("d2l-zh"), get_recipe("d2l-zh:upstream")
    assert (zh.conventions.momentum_on, upstream.conventions.momentum_on) == ("batch", "moving")
    assert zh.learning_rate == 0.9 and zh.initializer == "normal-0.01"
    dope = get_recipe("straight-dope")
    assert dope.trainer_learning_rate() == pytest.approx(0.001 * 64)
    layer = build_net(dope, "scratch")[1]
    assert layer.seeded is not None
    en = get_recipe("d2l-en").printed_run("gluon")
    assert en.lines[-1].test_acc == 0.871 and len(en.lines) == 5
    with pytest.raises(KeyError, match="known recipes"):
        get_recipe("d2l-fr")
    with pytest.raises(ValueError, match="no alternative"):
        get_recipe("d2l-en:upstream")


def test_recipes_are_frozen():
    with pytest.raises(Exception):
        get_recipe("d2l-en").learning_rate = 2.0


def test_use_without_mxnet_names_the_extras():
    code = "import sys; sys.modules['mxnet'] = None; import gluon_bn; gluon_bn.BatchNorm"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "ImportError" in proc.stderr
    assert "gluon-bn[cpu]" in proc.stderr and "gluon-bn[cu112]" in proc.stderr


def test_import_loads_neither_mxnet_nor_d2l():
    # MXNet reads its engine and thread settings when it loads: the CLI sets them first.
    code = (
        "import sys, gluon_bn, gluon_bn.cli, gluon_bn.runtime; "
        "print(*(m in sys.modules for m in ('mxnet', 'd2l', 'pandas')))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["False", "False", "False"]
    code = "import sys, gluon_bn; gluon_bn.BatchNorm; print('mxnet' in sys.modules, 'd2l' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["True", "False"]


@pytest.mark.parametrize("argv", [["list"], ["--help"], ["reproduce", "--help"]])
def test_recipes_and_listing_load_no_mxnet(argv):
    """Recipes are pure data: reading them, listing them and asking for help stay instant."""
    code = (
        "import sys, gluon_bn.recipes\n"
        "from gluon_bn.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "print('mxnet' in sys.modules, file=sys.stderr)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stderr.split()[-1] == "False", proc.stderr
    assert proc.stdout.strip()


def _copy_params(src, dst):
    for a, b in zip(src.collect_params().values(), dst.collect_params().values()):  # layer order
        b.set_data(a.data())


@pytest.mark.parametrize("variant", ["scratch", "gluon", "plain"])
@pytest.mark.parametrize("mode", ["layers", "graph"])
def test_hybridized_network_computes_what_the_imperative_one_does(variant, mode):
    """Outputs, gradients and moving statistics of a compiled network equal the imperative ones.

    Two batch sizes in turn (a static graph re-plans for the last, smaller batch of an epoch).
    """
    recipe = get_recipe("d2l-en")
    nets = []
    for compiled in ("none", mode):
        mx.random.seed(3)
        net = hybridize_network(build_net(recipe, variant, bn_impl="fast"), compiled)
        net.initialize(mx.init.Xavier())
        net(mx.nd.zeros(FASHION_BATCH))
        nets.append(net)
    _copy_params(*nets)
    if mode == "graph":
        segments = [type(b) for b in nets[1]._children.values()]
        if variant == "scratch":  # hybrid runs between the four scratch layers
            assert segments == [nn.HybridSequential, BatchNorm] * 4 + [nn.HybridSequential]
        else:
            assert isinstance(nets[1], nn.HybridSequential)
    rng = np.random.default_rng(0)
    for batch in (16, 5, 16):
        X = mx.nd.array(rng.random((batch, 1, 28, 28)))
        head = mx.nd.array(rng.standard_normal((batch, 10)))  # dLoss/dY, the same for both
        outs, grads, stats = [], [], []
        for net in nets:
            with mx.autograd.record():
                Y = net(X)
            Y.backward(head)
            params = list(net.collect_params().values())
            outs.append(Y.asnumpy())
            grads.append([p.grad().asnumpy() for p in params if p.grad_req != "null"])
            stats.append([p.data().asnumpy() for p in params if p.grad_req == "null"])
        np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-6)
        for a, b in zip(*grads):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
        for a, b in zip(*stats):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        predictions = [net(X).asnumpy() for net in nets]  # outside record(): moving statistics
        np.testing.assert_allclose(*predictions, rtol=1e-5, atol=1e-6)


def test_hybridize_network_rejects_an_unknown_mode():
    with pytest.raises(ValueError, match="hybridize must be one of"):
        hybridize_network(lenet("gluon"), "static")
