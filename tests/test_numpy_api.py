"""The core in MXNet's numpy dialect (``npx.set_np()``, document 000), against ``npx.batch_norm``.

Every test runs inside the `numpy_mode` fixture, which switches numpy mode on and back off,
so that nothing leaks into the legacy-API tests of the same process. The reference is the
same operator as in test_core.py, through its numpy-API name, with ``fix_gamma=False`` and
the same eps: outputs, moving statistics and gradients, 2-D and 4-D, both modes.
"""

import numpy as np
import pytest
from test_core import ATOL, RTOL, STAT_ATOL, STAT_RTOL, random_case

from gluon_bn import BatchNorm, batch_norm, pure_batch_norm
from gluon_bn.bn.functional import stats_shape
from gluon_bn.models import hybridize_network, lenet
from gluon_bn.runtime.loader import mx

autograd, npx = mx.autograd, mx.npx
NAMES = ["output", "moving_mean", "moving_var", "grad X", "grad gamma", "grad beta"]


def reference_np(X, gamma, beta, mm, mv, head, eps, momentum, training):
    """``npx.batch_norm`` on mx.np arrays: output, moving statistics, gradients."""
    x, g, b, m, v = (mx.np.array(a) for a in (X, gamma, beta, mm, mv))
    for a in (x, g, b):
        a.attach_grad()
    with autograd.record(train_mode=training):
        y = npx.batch_norm(
            x,
            g,
            b,
            m,
            v,
            eps=eps,
            momentum=momentum,
            fix_gamma=False,
            axis=1,
            use_global_stats=not training,
        )
    y.backward(mx.np.array(head))
    return [a.asnumpy() for a in (y, m, v, x.grad, g.grad, b.grad)]


def scratch_np(X, gamma, beta, mm, mv, head, eps, momentum, training):
    """`gluon_bn.batch_norm` on mx.np arrays, returning the same six values as numpy."""
    shape = stats_shape(X.shape[1], X.ndim)
    x = mx.np.array(X)
    g, b, m, v = (mx.np.array(a).reshape(shape) for a in (gamma, beta, mm, mv))
    for a in (x, g, b):
        a.attach_grad()
    with autograd.record(train_mode=training):
        y, m2, v2 = batch_norm(x, g, b, m, v, eps=eps, momentum=momentum)
    for out in (y, m2, v2):
        assert isinstance(out, mx.np.ndarray), type(out)
    y.backward(mx.np.array(head))
    return (
        [y.asnumpy()]
        + [a.asnumpy().ravel() for a in (m2, v2)]
        + [x.grad.asnumpy()]
        + [a.grad.asnumpy().ravel() for a in (g, b)]
    )


@pytest.mark.parametrize("num_dims", [2, 4])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("eps,momentum", [(1e-5, 0.9), (1e-3, 0.7)])
def test_functional_matches_npx_batch_norm(numpy_mode, num_dims, training, eps, momentum):
    case = random_case(num_dims, seed=num_dims)
    ref = reference_np(*case, eps, momentum, training)
    ours = scratch_np(*case, eps, momentum, training)
    for name, a, b in zip(NAMES, ours, ref):
        tol = (STAT_RTOL, STAT_ATOL) if name.startswith("moving") else (RTOL, ATOL)
        np.testing.assert_allclose(a, b, rtol=tol[0], atol=tol[1], err_msg=name)


def test_prediction_hands_back_the_callers_statistics(numpy_mode):
    X, gamma, beta, mm, mv, _ = random_case(4)
    shape = stats_shape(3, 4)
    args = [mx.np.array(a).reshape(shape) for a in (gamma, beta, mm, mv)]
    y, m2, v2 = batch_norm(mx.np.array(X), *args)
    assert isinstance(y, mx.np.ndarray) and m2 is args[2] and v2 is args[3]


def test_pure_batch_norm_returns_numpy_arrays(numpy_mode):
    A = mx.np.array([1, 7, 5, 4, 6, 10]).reshape((3, 2))
    out = pure_batch_norm(A, mx.np.array([1, 1]), mx.np.array([0, 0]))
    assert isinstance(out, mx.np.ndarray)
    np.testing.assert_allclose(
        out.asnumpy(),
        [[-1.3887237, 0.0], [0.4629079, -1.2247398], [0.9258158, 1.2247398]],
        atol=1e-5,
    )


def run_np(layer, X, head, training=True):
    x = mx.np.array(X)
    x.attach_grad()
    with autograd.record(train_mode=training):
        y = layer(x)
    assert isinstance(y, mx.np.ndarray), type(y)
    y.backward(mx.np.array(head))
    return y.asnumpy(), x.grad.asnumpy()


@pytest.mark.parametrize("num_dims", [2, 4])
@pytest.mark.parametrize(
    "impl,hybridize", [("faithful", False), ("faithful", True), ("fast", False)]
)
def test_layer_matches_gluon_batchnorm_in_numpy_mode(numpy_mode, num_dims, impl, hybridize):
    """Document 000's conventions (momentum 0.1 on the batch) against nn.BatchNorm (0.9)."""
    X, _, _, _, _, head = random_case(num_dims, seed=7)
    C = X.shape[1]
    ours = BatchNorm(C, num_dims, momentum=0.1, momentum_on="batch", impl=impl)
    theirs = mx.gluon.nn.BatchNorm(in_channels=C)
    for layer in (ours, theirs):
        layer.initialize()
        if hybridize:
            layer.hybridize()
    for step in range(3):
        (y1, gx1), (y2, gx2) = (run_np(layer, X * (step + 1), head) for layer in (ours, theirs))
        np.testing.assert_allclose(y1, y2, rtol=RTOL, atol=ATOL, err_msg="output")
        np.testing.assert_allclose(gx1, gx2, rtol=RTOL, atol=ATOL, err_msg="grad X")
        for mine, its in (("gamma", "gamma"), ("beta", "beta")):
            np.testing.assert_allclose(
                getattr(ours, mine).grad().asnumpy().ravel(),
                getattr(theirs, its).grad().asnumpy(),
                rtol=RTOL,
                atol=ATOL,
                err_msg=f"grad {mine}",
            )
    for mine, its in (("moving_mean", "running_mean"), ("moving_var", "running_var")):
        assert isinstance(getattr(ours, mine).data(), mx.np.ndarray)
        np.testing.assert_allclose(
            getattr(ours, mine).data().asnumpy().ravel(),
            getattr(theirs, its).data().asnumpy(),
            rtol=STAT_RTOL,
            atol=STAT_ATOL,
            err_msg=mine,
        )
    # Gluon predicts outside record(): the moving statistics normalise, nothing changes
    before = ours.moving_mean.data().asnumpy()
    out = ours(mx.np.array(X))
    assert isinstance(out, mx.np.ndarray)
    np.testing.assert_allclose(
        out.asnumpy(), theirs(mx.np.array(X)).asnumpy(), rtol=RTOL, atol=ATOL
    )
    np.testing.assert_array_equal(before, ours.moving_mean.data().asnumpy())


@pytest.mark.parametrize("bn_impl", ["faithful", "fast"])
def test_hybridized_lenet_in_numpy_mode_equals_imperative(numpy_mode, bn_impl):
    """Document 000's scratch LeNet compiled as static graphs between its BN layers.

    Outputs, gradients and moving statistics, over two batch sizes in turn.
    """
    options = dict(momentum=0.1, momentum_on="batch", impl=bn_impl)
    nets = []
    for mode in ("none", "graph"):
        net = hybridize_network(lenet("scratch", pool="avg", bn_options=options), mode)
        net.initialize(mx.init.Xavier())
        net(mx.np.zeros((2, 1, 28, 28)))  # shapes the deferred parameters
        nets.append(net)
    for a, b in zip(*(net.collect_params().values() for net in nets)):
        b.set_data(a.data())
    rng = np.random.default_rng(0)
    for batch in (16, 5, 16):
        X = mx.np.array(rng.random((batch, 1, 28, 28)).astype("float32"))
        head = mx.np.array(rng.standard_normal((batch, 10)).astype("float32"))
        results = []
        for net in nets:
            with autograd.record():
                Y = net(X)
            Y.backward(head)
            params = list(net.collect_params().values())
            results.append(
                [Y.asnumpy(), net(X).asnumpy()]
                + [p.grad().asnumpy() for p in params if p.grad_req != "null"]
                + [p.data().asnumpy() for p in params if p.grad_req == "null"]
            )
        for a, b in zip(*results):
            # A convolution's bias right before BN has a true gradient of 0: what is left is
            # float32 rounding of sums whose terms are O(10) (measured up to 4e-5, the same
            # in legacy mode), so the absolute tolerance is wider than test_core's.
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_legacy_input_in_numpy_mode_is_refused_clearly(numpy_mode):
    layer = BatchNorm(3, 4)
    layer.initialize()
    with pytest.raises(TypeError, match=r"legacy mx\.nd\.NDArray.*numpy mode.*as_np_ndarray"):
        layer(mx.nd.zeros((2, 3, 4, 4)))


def test_numpy_input_in_legacy_mode_works_and_stays_numpy():
    """The reverse mix: a layer built without numpy mode takes an mx.np array."""
    layer = BatchNorm(3, 4)
    layer.initialize()
    x = mx.nd.array(random_case(4)[0]).as_np_ndarray()
    with autograd.record():
        y = layer(x)
    assert isinstance(y, mx.np.ndarray)
    assert isinstance(layer.moving_mean.data(), mx.nd.NDArray)
    assert not isinstance(layer.moving_mean.data(), mx.np.ndarray)
    np.testing.assert_allclose(
        layer.moving_mean.data().asnumpy().ravel(),
        0.1 * random_case(4)[0].mean((0, 2, 3)),
        rtol=1e-5,
        atol=1e-6,
    )


def test_zero_grad_fails_in_numpy_mode_on_mxnet_191(numpy_mode):
    """A trap of MXNet 1.9.1 itself: Parameter.zero_grad() calls a legacy operator.

    Nothing in gluon_bn calls it (gradients are overwritten, grad_req='write'); if a new
    MXNet fixes it, this test fails and the note in docs/bad-input.md can go.
    """
    layer = BatchNorm(3, 2)
    layer.initialize()
    with pytest.raises(TypeError, match="legacy"):
        layer.gamma.zero_grad()


def test_host_numpy_input_is_a_type_error_naming_both_kinds():
    X = np.zeros((2, 3), dtype="float32")
    with pytest.raises(TypeError, match=r"mx\.nd\.NDArray or an mx\.np\.ndarray, got ndarray"):
        batch_norm(X, X[:1], X[:1], X[:1], X[:1])
