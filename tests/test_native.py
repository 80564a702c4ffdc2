"""impl="native": the C++ operator against autograd of the functional code, its build, its errors.

The layer-level comparisons with the faithful layer and with MXNet's operator (2-D and 4-D,
every convention, training and prediction) are in tests/test_fast.py, run for both twins.
"""

import contextlib

import numpy as np
import pytest

from gluon_bn import BatchNorm
from gluon_bn.bn import dialect, functional, native
from gluon_bn.bn.modal import ModeHybridSequential
from gluon_bn.models import hybridize_network, lenet
from gluon_bn.runtime import synchronous_engine
from gluon_bn.runtime.loader import mx

nd, autograd = mx.nd, mx.autograd
pytestmark = pytest.mark.native
SHAPES = {2: (24, 5), 4: (6, 3, 5, 4)}


def grads_of(compute, X, gamma, beta, heads):
    """Outputs (Y, mean, var) of `compute` and the gradients of sum(head * output) by autograd."""
    args = [nd.array(a, dtype="float64") for a in (X, gamma, beta)]
    for a in args:
        a.attach_grad()
    with autograd.record():
        outputs = compute(*args)
        total = sum((o * nd.array(h, dtype="float64")).sum() for o, h in zip(outputs, heads))
    total.backward()
    return [o.asnumpy() for o in outputs] + [a.grad.asnumpy() for a in args]


def functional_moments(X, gamma, beta, eps, normalize_by):
    """Y, mean and var from the documents' code: functional.moments, then functional.normalize."""
    mean, var = functional.moments(nd, X, functional.reduction_axes(X.ndim))
    return functional.normalize(nd, X, mean, var, gamma, beta, eps, normalize_by), mean, var


def operator_call(moving, training, eps, normalize_by, momentum=0.9):
    """The operator on (X, gamma, beta) with `moving` as its (mutated) statistics."""
    op = getattr(nd, native.OP_NAME)
    return lambda x, g, b: op(
        x,
        g,
        b,
        *moving,
        training=int(training),
        eps=eps,
        momentum=momentum,
        momentum_on="moving",
        normalize_by=normalize_by,
        update_in_prediction=0,
        first_batch=0,
    )


@pytest.mark.parametrize("num_dims", [2, 4])
@pytest.mark.parametrize("normalize_by,eps", [("sqrt_var_eps", 1e-5), ("std_eps", 1e-3)])
def test_operator_and_its_gradients_equal_autograd_in_float64(num_dims, normalize_by, eps):
    """Training: all three outputs carry a head, so dmean and dvar reach dX too (1e-10).

    The moving statistics, given as the operator's mutable inputs, are updated in place.
    """
    rng = np.random.default_rng(num_dims)
    shape = SHAPES[num_dims]
    pshape = functional.stats_shape(shape[1], num_dims)
    X = rng.normal(0.5, 2.0, size=shape)
    gamma, beta = rng.uniform(0.5, 1.5, size=pshape), rng.normal(size=pshape)
    heads = [rng.normal(size=shape), rng.normal(size=pshape), rng.normal(size=pshape)]
    start = [rng.normal(size=pshape), rng.uniform(0.5, 2.0, size=pshape)]
    moving = [nd.array(a, dtype="float64") for a in start]
    ours = grads_of(operator_call(moving, True, eps, normalize_by), X, gamma, beta, heads)
    reference = grads_of(
        lambda x, g, b: functional_moments(x, g, b, eps, normalize_by), X, gamma, beta, heads
    )
    names = ["Y", "mean", "var", "dX", "dgamma", "dbeta"]
    for name, u, v in zip(names, ours, reference):
        np.testing.assert_allclose(u, v.reshape(u.shape), rtol=1e-10, atol=1e-10, err_msg=name)
    for name, m, old, batch in zip(["moving_mean", "moving_var"], moving, start, reference[1:3]):
        np.testing.assert_allclose(m.asnumpy(), 0.9 * old + 0.1 * batch, rtol=1e-12, err_msg=name)


@pytest.mark.parametrize("shape", [(2048, 20), (40, 3, 20, 20)])
def test_threads_split_the_passes_and_give_the_bits_of_one_thread(shape):
    """Above 32k values the passes run on OpenMP's threads (sums by channel, writes by row):

    the outputs, gradients and moving statistics at 2 threads equal those at 1 bit for bit,
    and match autograd of the functional code (float64, 1e-10), so the channel blocks cover
    every channel once, also with fewer channels than threads would split evenly (C = 3).
    """
    import ctypes

    from gluon_bn.runtime.watch import set_omp_threads

    before = ctypes.CDLL("libgomp.so.1").omp_get_max_threads()  # MXNet's OpenMP runtime
    rng = np.random.default_rng(len(shape))
    pshape = functional.stats_shape(shape[1], len(shape))
    X = rng.normal(0.5, 2.0, size=shape)
    gamma, beta = rng.uniform(0.5, 1.5, size=pshape), rng.normal(size=pshape)
    heads = [rng.normal(size=shape), rng.normal(size=pshape), rng.normal(size=pshape)]
    start = [rng.normal(size=pshape), rng.uniform(0.5, 2.0, size=pshape)]
    runs = {}
    try:
        for threads in (1, 2):
            set_omp_threads(threads)
            moving = [nd.array(a, dtype="float64") for a in start]
            got = grads_of(operator_call(moving, True, 1e-5, "sqrt_var_eps"), X, gamma, beta, heads)
            runs[threads] = got + [m.asnumpy() for m in moving]
    finally:
        set_omp_threads(before)
    for one, two in zip(runs[1], runs[2]):
        np.testing.assert_array_equal(one, two)
    reference = grads_of(
        lambda x, g, b: functional_moments(x, g, b, 1e-5, "sqrt_var_eps"), X, gamma, beta, heads
    )
    for u, v in zip(runs[2], reference):
        np.testing.assert_allclose(u, v.reshape(u.shape), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("num_dims", [2, 4])
@pytest.mark.parametrize("normalize_by,eps", [("sqrt_var_eps", 1e-5), ("std_eps", 1e-3)])
def test_prediction_normalises_by_the_moving_statistics_and_leaves_them(
    num_dims, normalize_by, eps
):
    """Prediction: the documents' normalize with the moving statistics as constants (1e-10)."""
    rng = np.random.default_rng(20 + num_dims)
    shape = SHAPES[num_dims]
    pshape = functional.stats_shape(shape[1], num_dims)
    X = rng.normal(0.5, 2.0, size=shape)
    gamma, beta = rng.uniform(0.5, 1.5, size=pshape), rng.normal(size=pshape)
    start = [rng.normal(size=pshape), rng.uniform(0.5, 2.0, size=pshape)]
    heads = [rng.normal(size=shape)]
    moving = [nd.array(a, dtype="float64") for a in start]
    ours = grads_of(
        lambda *a: operator_call(moving, False, eps, normalize_by)(*a)[:1], X, gamma, beta, heads
    )
    fixed = [nd.array(a, dtype="float64") for a in start]
    reference = grads_of(
        lambda x, g, b: [functional.normalize(nd, x, *fixed, g, b, eps, normalize_by)],
        X,
        gamma,
        beta,
        heads,
    )
    for name, u, v in zip(["Y", "dX", "dgamma", "dbeta"], ours, reference):
        np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-10, err_msg=name)
    for m, old in zip(moving, start):
        np.testing.assert_array_equal(m.asnumpy(), old)


def test_constant_channel_with_std_eps_has_finite_gradients():
    """Document 004's 1 / (sqrt(var) + eps) at var = 0: the one-sided limit, as the faithful code."""
    X = np.ones((8, 2), dtype="float32")
    X[:, 1] = np.arange(8)
    layers = [BatchNorm(2, 2, impl=impl, normalize_by="std_eps") for impl in ("faithful", "native")]
    results = []
    for layer in layers:
        layer.initialize()
        x = nd.array(X)
        x.attach_grad()
        with autograd.record():
            y = layer(x)
        y.backward(nd.array(np.linspace(-1, 1, 16).reshape(8, 2)))
        results.append([y.asnumpy(), x.grad.asnumpy()])
    for u, v in zip(*results):
        assert np.isfinite(v).all()
        np.testing.assert_allclose(v, u, rtol=1e-5, atol=1e-6)


def train_lenet(impl, hybridize, X, y, array, **bn_options):
    """Three SGD steps of document 000's LeNet, predicting after each: what they leave."""
    mx.random.seed(2)  # the same initial weights for every implementation
    net = lenet(
        "scratch",
        pool="avg",
        bn_options={"impl": impl, "momentum_on": "batch", "momentum": 0.1, **bn_options},
    )
    net.initialize(mx.init.Xavier())
    net = hybridize_network(net, hybridize)
    trainer = mx.gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.5})
    seen = []
    for _ in range(3):
        with autograd.record():
            out = net(X)
            loss = mx.gluon.loss.SoftmaxCrossEntropyLoss()(out, y).mean()
        loss.backward()
        trainer.step(1)
        predicted = net(X)  # prediction: must leave the moving statistics alone
        assert isinstance(out, array) and isinstance(predicted, array)
        stats = [p.data().asnumpy() for p in net.collect_params().values() if p.grad_req == "null"]
        seen.append([loss.asnumpy(), predicted.asnumpy()] + stats)
    return net, seen


@pytest.mark.parametrize("numpy_api", [False, True], ids=["nd", "np"])
@pytest.mark.parametrize("hybridize", ["none", "layers", "graph"])
def test_lenet_trains_like_faithful(numpy_api, hybridize):
    """Losses, predictions and the moving statistics after every step, both array APIs.

    The faithful layer updates the statistics once per training step and never in
    prediction; the native one, compiled or not, must leave the same numbers.
    """
    rng = np.random.default_rng(5)
    X, y = rng.random((16, 1, 28, 28)).astype("float32"), rng.integers(0, 10, 16)
    with dialect.numpy_mode() if numpy_api else contextlib.nullcontext():
        make = mx.np.array if numpy_api else nd.array
        array = mx.np.ndarray if numpy_api else nd.NDArray
        _, reference = train_lenet("faithful", "none", make(X), make(y), array)
        net, ours = train_lenet("native", hybridize, make(X), make(y), array)
    if hybridize == "graph":  # the whole network, BN layers included, is one block
        assert isinstance(net, ModeHybridSequential)
        assert sum(isinstance(b, BatchNorm) for b in net._children.values()) == 4
        # bulked into engine segments only where no read can overtake a write
        assert dict(net._flags)["static_shape"] == synchronous_engine()
    for step, (u, v) in enumerate(zip(reference, ours)):
        for i, (a, b) in enumerate(zip(u, v)):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5, err_msg=f"step {step}, {i}")


def graph_operators(net) -> list:
    """The operator names of a compiled block's graph for the current mode, in order."""
    import json

    return [node["op"] for node in json.loads(net._cached_graph[1].tojson())["nodes"]]


@pytest.mark.parametrize("hybridize", ["none", "graph"])
def test_blocked_output_hands_on_the_same_bits(hybridize):
    """The layout step after the operator (an identity 1x1 convolution) changes no bit of the
    losses, predictions, moving statistics or trained weights; by default it follows the
    16-channel layer only (LeNet's 6 channels fill no block, dense layers have none)."""
    rng = np.random.default_rng(7)
    X, y = nd.array(rng.random((16, 1, 28, 28))), nd.array(rng.integers(0, 10, 16))
    runs = {
        flag: train_lenet("native", hybridize, X, y, nd.NDArray, blocked_output=flag)
        for flag in (False, True, None)
    }
    (_, plain), (_, blocked), (net, default) = runs.values()
    for seen in (blocked, default):
        for step, (u, v) in enumerate(zip(plain, seen)):
            for i, (a, b) in enumerate(zip(u, v)):
                np.testing.assert_array_equal(b, a, err_msg=f"step {step}, {i}")
    weights = [[p.data().asnumpy() for p in n.collect_params().values()] for n, _ in runs.values()]
    for a, b in zip(weights[0], weights[1]):
        np.testing.assert_array_equal(b, a)
    if hybridize == "graph":
        # LeNet's own two convolutions, then one identity per layer that hands on blocks
        assert graph_operators(runs[False][0]).count("Convolution") == 2
        assert graph_operators(runs[True][0]).count("Convolution") == 4
        assert graph_operators(net).count("Convolution") == 3


def test_blocked_output_goes_where_the_channels_fill_blocks():
    assert native.hands_on_blocked(16, 4, np.float32) == native._onednn()
    assert not native.hands_on_blocked(6, 4, np.float32)  # LeNet's first layer
    assert not native.hands_on_blocked(120, 2, np.float32)  # dense: no layout to keep
    assert not native.hands_on_blocked(16, 4, np.float64)  # oneDNN convolves float32 only
    with pytest.raises(TypeError, match="impl='native' only, not of impl='fast'"):
        BatchNorm(16, 4, impl="fast", blocked_output=True)
    layer = BatchNorm(3, 4, impl="native", blocked_output=True)
    layer.initialize()
    layer.cast("float64")  # MXNet's own convolution then: the same values
    X = np.random.default_rng(8).normal(size=(4, 3, 5, 5))
    with autograd.record():
        Y = layer(nd.array(X, dtype="float64"))
    mean, var = X.mean(axis=(0, 2, 3), keepdims=True), X.var(axis=(0, 2, 3), keepdims=True)
    np.testing.assert_allclose(
        Y.asnumpy(), (X - mean) / np.sqrt(var + 1e-5), rtol=1e-12, atol=1e-12
    )


def test_under_naive_engine_the_graph_is_bulked_and_still_trains_like_faithful():
    """MXNet reads its engine when it loads, so the graph test runs again in a child process
    under NaiveEngine, where the native graph is compiled with static_shape (bulked)."""
    import os
    import subprocess
    import sys

    test = f"{__file__}::test_lenet_trains_like_faithful"
    env = {**os.environ, "MXNET_ENGINE_TYPE": "NaiveEngine"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test, "-k", "graph"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 passed" in done.stdout


def test_statistics_live_on_the_input_device_and_move_once_per_training_step():
    """Two CPU contexts hold copies; a compiled graph updates the input's copy only."""
    layer = BatchNorm(3, 4, impl="native", momentum=0.9)
    graph = ModeHybridSequential()
    graph.add(layer)
    graph.initialize(ctx=[mx.cpu(0), mx.cpu(1)])
    graph.hybridize(static_alloc=True)  # as hybridize_network(net, "graph")
    X = np.random.default_rng(6).normal(1.0, 2.0, size=(8, 3, 5, 5)).astype("float32")
    x = nd.array(X, ctx=mx.cpu(1))
    mean, var = X.mean(axis=(0, 2, 3)), X.var(axis=(0, 2, 3))

    def stats(ctx):
        return [p.data(ctx).asnumpy().ravel() for p in (layer.moving_mean, layer.moving_var)]

    expected = [np.zeros(3), np.ones(3)]
    for training in (False, True, False, False, True, False):
        with autograd.record(train_mode=training):
            graph(x).wait_to_read()
        if training:
            expected = [0.9 * expected[0] + 0.1 * mean, 0.9 * expected[1] + 0.1 * var]
        for got, want in zip(stats(mx.cpu(1)), expected):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        for got, start in zip(stats(mx.cpu(0)), ([0.0] * 3, [1.0] * 3)):
            np.testing.assert_array_equal(got, start)
    assert layer.moving_mean.data(mx.cpu(1)).context == mx.cpu(1)


def test_a_one_graph_container_is_refused_with_the_way_out():
    """A plain HybridSequential compiles one graph for both modes: the layer says what to use."""
    net = mx.gluon.nn.HybridSequential()
    net.add(BatchNorm(3, 2, impl="native"))
    net.initialize()
    net.hybridize()
    with pytest.raises(
        RuntimeError, match="once per mode.*hybridize_network.*ModeHybridSequential"
    ):
        net(nd.ones((4, 3)))


def test_float16_is_refused_with_the_way_out():
    layer = BatchNorm(3, 2, impl="native")
    layer.initialize()
    layer.cast("float16")
    with pytest.raises(TypeError, match="float32 or float64.*impl='faithful'"):
        with autograd.record():
            layer(nd.ones((4, 3), dtype="float16"))


def test_build_is_cached_and_keyed(tmp_path):
    first = native.build(tmp_path)
    stamp = first.stat().st_mtime_ns
    assert native.build(tmp_path) == first and first.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no partial files left


def test_no_compiler_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(native, "find_compiler", lambda: None)
    with pytest.raises(native.NativeUnavailable, match="no C.. compiler.*apt-get install g"):
        native.build(tmp_path)


def test_failing_compiler_shows_its_output_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("CXX", "sh -c 'echo broken toolchain >&2; exit 3' --")
    with pytest.raises(native.NativeUnavailable, match="(?s)failed \\(exit 3\\).*broken toolchain"):
        native.build(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_reproduce_trains_with_it_and_records_it(fashion_root, tmp_path, capsys):
    """One short train_ch5 run: the document's lines, and the record names the implementation."""
    import json

    from gluon_bn import cli

    status = cli.main(
        [
            "reproduce",
            "d2l-en",
            "--variant",
            "scratch",
            "--bn-impl",
            "native",
            "--pipeline",
            "fast",
            "--limit",
            "512",
            "--test-limit",
            "256",
            "--epochs",
            "1",
            "--data-root",
            str(fashion_root),
            "--out",
            str(tmp_path),
            "--quiet",
        ]
    )
    assert status == 0, capsys.readouterr().err
    assert "epoch 1, loss" in capsys.readouterr().out
    [record] = tmp_path.glob("*bn-native*.json")
    assert json.loads(record.read_text())["config"]["bn_impl"] == "native"


def test_reproduce_without_a_compiler_is_one_message(tmp_path, capsys, monkeypatch):
    from gluon_bn import cli

    monkeypatch.setattr(native, "find_compiler", lambda: None)
    monkeypatch.setenv("GLUON_BN_CACHE", str(tmp_path / "empty-cache"))
    native.load.cache_clear()
    try:
        status = cli.main(
            [
                "reproduce",
                "d2l-en",
                "--variant",
                "scratch",
                "--bn-impl",
                "native",
                "--out",
                str(tmp_path / "out"),
            ]
        )
    finally:
        native.load.cache_clear()
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert "gluon-bn: error: impl='native' compiles a small C++ library" in err


def test_a_library_mxnet_cannot_load_is_unavailable_with_the_way_out(tmp_path, monkeypatch):
    broken = tmp_path / "libbroken.so"
    broken.write_bytes(b"not a shared object")
    monkeypatch.setattr(native, "build", lambda: broken)
    monkeypatch.delattr(nd, native.OP_NAME, raising=False)  # as in a process before loading
    native.load.cache_clear()
    try:
        with pytest.raises(
            native.NativeUnavailable, match="could not load .*file too short.*delete it to rebuild"
        ):
            native.load()
    finally:
        monkeypatch.undo()
        native.load.cache_clear()
    assert hasattr(nd, native.OP_NAME)
