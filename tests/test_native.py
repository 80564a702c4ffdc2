"""impl="native": the C++ operator against autograd of the functional code, its build, its errors.

The layer-level comparisons with the faithful layer and with MXNet's operator (2-D and 4-D,
every convention, training and prediction) are in tests/test_fast.py, run for both twins.
"""
import numpy as np
import pytest

from gluon_bn import BatchNorm
from gluon_bn._mxnet import mx
from gluon_bn.bn import functional, native
from gluon_bn.models import lenet

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


@pytest.mark.parametrize("num_dims", [2, 4])
@pytest.mark.parametrize("normalize_by,eps", [("sqrt_var_eps", 1e-5), ("std_eps", 1e-3)])
def test_operator_and_its_gradients_equal_autograd_in_float64(num_dims, normalize_by, eps):
    """All three outputs carry a head, so dmean and dvar reach dX too (tolerance 1e-10)."""
    rng = np.random.default_rng(num_dims)
    shape = SHAPES[num_dims]
    pshape = functional.stats_shape(shape[1], num_dims)
    X = rng.normal(0.5, 2.0, size=shape)
    gamma, beta = rng.uniform(0.5, 1.5, size=pshape), rng.normal(size=pshape)
    heads = [rng.normal(size=shape), rng.normal(size=pshape), rng.normal(size=pshape)]
    op = getattr(nd, native.OP_NAME)
    ours = grads_of(lambda x, g, b: op(x, g, b, eps=eps, normalize_by=normalize_by),
                    X, gamma, beta, heads)
    reference = grads_of(lambda x, g, b: functional_moments(x, g, b, eps, normalize_by),
                         X, gamma, beta, heads)
    names = ["Y", "mean", "var", "dX", "dgamma", "dbeta"]
    for name, u, v in zip(names, ours, reference):
        np.testing.assert_allclose(u, v.reshape(u.shape), rtol=1e-10, atol=1e-10, err_msg=name)


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


def test_lenet_in_numpy_mode_trains_like_faithful(numpy_mode):
    """Document 000's dialect: mx.np arrays in, mx.np arrays out, the same SGD steps."""
    np_ = numpy_mode
    rng = np.random.default_rng(5)
    X = np_.array(rng.random((16, 1, 28, 28)).astype("float32"))
    y = np_.array(rng.integers(0, 10, 16))
    runs = []
    for impl in ("faithful", "native"):
        mx.random.seed(2)
        net = lenet("scratch", pool="avg", bn_options={"impl": impl, "momentum_on": "batch",
                                                      "momentum": 0.1})
        net.initialize(mx.init.Xavier())
        trainer = mx.gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.5})
        losses = []
        for _ in range(3):
            with autograd.record():
                out = net(X)
                loss = mx.gluon.loss.SoftmaxCrossEntropyLoss()(out, y).mean()
            loss.backward()
            trainer.step(1)
            losses.append(float(loss))
        assert isinstance(out, np_.ndarray)
        runs.append(losses + [net(X).asnumpy()])
    np.testing.assert_allclose(runs[1][:3], runs[0][:3], rtol=1e-4)
    np.testing.assert_allclose(runs[1][3], runs[0][3], rtol=1e-3, atol=1e-4)


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
    status = cli.main(["reproduce", "d2l-en", "--variant", "scratch", "--bn-impl", "native",
                       "--pipeline", "fast", "--limit", "512", "--test-limit", "256",
                       "--epochs", "1", "--data-root", str(fashion_root), "--out", str(tmp_path),
                       "--quiet"])
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
        status = cli.main(["reproduce", "d2l-en", "--variant", "scratch", "--bn-impl", "native",
                           "--out", str(tmp_path / "out")])
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
        with pytest.raises(native.NativeUnavailable, match="could not load .*file too short.*delete it to rebuild"):
            native.load()
    finally:
        monkeypatch.undo()
        native.load.cache_clear()
    assert hasattr(nd, native.OP_NAME)
