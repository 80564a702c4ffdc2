"""The fast and native scratch layers compute what the faithful one and MXNet's operator compute."""

import contextlib

import numpy as np
import pytest

from gluon_bn import BatchNorm
from gluon_bn.models import hybridize_network, lenet
from gluon_bn.runtime.loader import mx

nd, autograd = mx.nd, mx.autograd
RTOL, ATOL = 1e-4, 1e-5
# The twins of the faithful layer; "native" compiles a C++ operator on first use, and
# "native-graph" is that layer hybridized (one static graph per mode, gluon_bn.bn.modal).
TWINS = [
    "fast",
    pytest.param("native", marks=pytest.mark.native),
    pytest.param("native-graph", marks=pytest.mark.native),
]


def make_layer(impl, *args, **kwargs):
    """BatchNorm(*args, impl=...), hybridized with static memory for "native-graph"."""
    layer = BatchNorm(*args, impl=impl.replace("-graph", ""), **kwargs)
    if impl.endswith("-graph"):
        layer.hybridize(static_alloc=True)  # as hybridize_network(net, "graph")
    return layer


SHAPES = {2: (32, 7), 4: (16, 3, 9, 7)}
CONVENTIONS = [
    dict(),
    dict(momentum=0.1, momentum_on="batch"),
    dict(moving_var_init=0.0, momentum_on="batch"),
    dict(normalize_by="std_eps", eps=1e-3),
    dict(moving_init="first_batch", update_in_prediction=True, moving_var_init=0.0),
]


def step(layer, X, head, training):
    x = nd.array(X)
    x.attach_grad()
    with autograd.record(train_mode=training):
        y = layer(x)
    y.backward(nd.array(head))
    params = layer.collect_params()
    grads = [p.grad().asnumpy().ravel() for p in params.values() if p.grad_req != "null"]
    stats = [layer.moving_mean.data().asnumpy().ravel(), layer.moving_var.data().asnumpy().ravel()]
    return [y.asnumpy(), x.grad.asnumpy()] + grads + stats


@pytest.mark.parametrize("twin", TWINS)
@pytest.mark.parametrize("num_dims", [2, 4])
@pytest.mark.parametrize("conventions", CONVENTIONS)
def test_twin_equals_faithful(twin, num_dims, conventions):
    rng = np.random.default_rng(num_dims)
    shape = SHAPES[num_dims]
    layers = [make_layer(impl, shape[1], num_dims, **conventions) for impl in ("faithful", twin)]
    for layer in layers:
        layer.initialize(mx.init.Uniform(1.0))  # gamma and beta away from 1 and 0
    layers[1].gamma.set_data(layers[0].gamma.data())
    layers[1].beta.set_data(layers[0].beta.data())
    for training in (True, True, False, True, False):
        X = rng.normal(0.5, 2.0, size=shape).astype("float32")
        head = rng.normal(size=shape).astype("float32")
        a, b = (step(layer, X, head, training) for layer in layers)
        names = ["output", "grad X", "grad gamma", "grad beta", "moving_mean", "moving_var"]
        for name, u, v in zip(names, a, b):
            np.testing.assert_allclose(
                v, u, rtol=RTOL, atol=ATOL, err_msg=f"{name}, training={training}"
            )


@pytest.mark.parametrize("twin", TWINS)
@pytest.mark.parametrize("num_dims", [2, 4])
def test_twin_equals_mxnet_operator(twin, num_dims):
    rng = np.random.default_rng(10 + num_dims)
    shape = SHAPES[num_dims]
    ours = make_layer(twin, shape[1], num_dims)
    theirs = mx.gluon.nn.BatchNorm(in_channels=shape[1])  # fix_gamma=False, eps 1e-5 as ours
    ours.initialize()
    theirs.initialize()
    for _ in range(3):
        X = rng.normal(-1.0, 3.0, size=shape).astype("float32")
        head = rng.normal(size=shape).astype("float32")
        a = step(ours, X, head, True)
        x = nd.array(X)
        x.attach_grad()
        with autograd.record():
            y = theirs(x)
        y.backward(nd.array(head))
        b = [
            y.asnumpy(),
            x.grad.asnumpy(),
            theirs.gamma.grad().asnumpy(),
            theirs.beta.grad().asnumpy(),
            theirs.running_mean.data().asnumpy(),
            theirs.running_var.data().asnumpy(),
        ]
        for u, v in zip(a, b):
            np.testing.assert_allclose(u, v, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(
        ours(nd.array(X)).asnumpy(), theirs(nd.array(X)).asnumpy(), rtol=RTOL, atol=ATOL
    )


@pytest.mark.parametrize("twin", TWINS)
def test_twin_lenet_trains_like_faithful_lenet(twin):
    """Three SGD steps of the whole LeNet: the same losses to float32 rounding."""
    rng = np.random.default_rng(0)
    X = nd.array(rng.random((32, 1, 28, 28)).astype("float32"))
    y = nd.array(rng.integers(0, 10, 32))
    losses = []
    for impl in ("faithful", twin):
        mx.random.seed(1)
        net = lenet(
            "scratch", bn_options={"impl": impl.replace("-graph", ""), "moving_var_init": 0.0}
        )
        net.initialize(mx.init.Xavier())
        net = hybridize_network(net, "graph" if impl.endswith("-graph") else "none")
        trainer = mx.gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 1.0})
        run = []
        for _ in range(3):
            with autograd.record():
                loss = mx.gluon.loss.SoftmaxCrossEntropyLoss()(net(X), y).sum()
            loss.backward()
            trainer.step(32)
            run.append(loss.asscalar())
        run.append(net(X).asnumpy())
        losses.append(run)
    np.testing.assert_allclose(losses[1][:3], losses[0][:3], rtol=1e-4)
    np.testing.assert_allclose(losses[1][3], losses[0][3], rtol=1e-3, atol=1e-4)


def test_bad_impl_is_a_value_error():
    with pytest.raises(ValueError, match="impl"):
        BatchNorm(3, 4, impl="turbo")


@pytest.mark.parametrize("twin", TWINS)
def test_one_layer_twice_in_one_graph_equals_faithful(twin):
    """The compiled kernels are shared by shape: two calls before one backward keep apart."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=SHAPES[4]).astype("float32")
    results = []
    for impl in ("faithful", twin):
        layer = make_layer(impl, 3, 4)
        layer.initialize()
        x = nd.array(X)
        x.attach_grad()
        with autograd.record():
            y = layer(layer(x) * 2.0 + 1.0) * nd.array(X)
        y.backward()
        results.append(
            [
                y.asnumpy(),
                x.grad.asnumpy(),
                layer.gamma.grad().asnumpy(),
                layer.moving_var.data().asnumpy(),
            ]
        )
    for u, v in zip(*results):
        np.testing.assert_allclose(v, u, rtol=RTOL, atol=ATOL)


def test_legacy_then_numpy_mode_with_one_shape():
    """A shape compiled for mx.nd arrays is compiled again in numpy mode, not reused."""
    from gluon_bn.bn.dialect import numpy_mode

    X = np.random.default_rng(4).normal(size=SHAPES[4]).astype("float32")
    outputs = []
    for mode in (False, True):
        layer = BatchNorm(3, 4, impl="fast")
        layer.initialize()
        with numpy_mode() if mode else contextlib.nullcontext():
            x = mx.np.array(X) if mode else nd.array(X)
            x.attach_grad()
            with autograd.record():
                y = layer(x)
            y.backward()
            outputs.append([y.asnumpy(), x.grad.asnumpy()])
    for u, v in zip(*outputs):
        np.testing.assert_allclose(v, u, rtol=0, atol=0)
