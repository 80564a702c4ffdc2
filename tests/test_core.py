"""The scratch batch normalization against MXNet's own operator, value by value."""

import numpy as np
import pytest

import gluon_bn
from gluon_bn import BatchNorm, batch_norm, pure_batch_norm
from gluon_bn.bn.functional import stats_shape
from gluon_bn.runtime.loader import mx

nd, autograd = mx.nd, mx.autograd
RTOL, ATOL = 1e-4, 1e-5  # float32 outputs and gradients
STAT_RTOL, STAT_ATOL = 1e-5, 1e-6  # moving statistics: one multiply-add from the batch moments
SHAPES = {2: (16, 5), 4: (8, 3, 6, 5)}


def random_case(num_dims, seed=0):
    rng = np.random.default_rng(seed)
    shape = SHAPES[num_dims]
    C = shape[1]
    X = rng.normal(1.5, 2.0, size=shape).astype("float32")
    gamma = rng.uniform(0.5, 1.5, size=C).astype("float32")
    beta = rng.normal(size=C).astype("float32")
    mm = rng.normal(size=C).astype("float32")
    mv = rng.uniform(0.5, 2.0, size=C).astype("float32")
    head = rng.normal(size=shape).astype("float32")  # upstream gradient
    return X, gamma, beta, mm, mv, head


def reference_op(X, gamma, beta, mm, mv, head, eps, momentum, training):
    """MXNet's operator: output, moving statistics after forward+backward, gradients.

    Prediction mode is ``use_global_stats=True``: recorded with ``train_mode=False`` alone,
    MXNet 1.9.1's CPU backward does not differentiate the forward it ran (measured: its
    input gradient differs from gamma / sqrt(moving_var + eps) times the head).
    """
    x, g, b = nd.array(X), nd.array(gamma), nd.array(beta)
    m, v = nd.array(mm), nd.array(mv)
    for a in (x, g, b):
        a.attach_grad()
    with autograd.record(train_mode=training):
        y = nd.BatchNorm(
            x,
            g,
            b,
            m,
            v,
            fix_gamma=False,
            eps=eps,
            momentum=momentum,
            axis=1,
            use_global_stats=not training,
        )
    y.backward(nd.array(head))
    return (
        y.asnumpy(),
        m.asnumpy(),
        v.asnumpy(),
        x.grad.asnumpy(),
        g.grad.asnumpy(),
        b.grad.asnumpy(),
    )


def scratch(X, gamma, beta, mm, mv, head, eps, momentum, training, **conv):
    shape = stats_shape(X.shape[1], X.ndim)
    x = nd.array(X)
    g, b = nd.array(gamma).reshape(shape), nd.array(beta).reshape(shape)
    m, v = nd.array(mm).reshape(shape), nd.array(mv).reshape(shape)
    for a in (x, g, b):
        a.attach_grad()
    with autograd.record(train_mode=training):
        y, m2, v2 = batch_norm(x, g, b, m, v, eps=eps, momentum=momentum, **conv)
    y.backward(nd.array(head))
    return (
        y.asnumpy(),
        m2.asnumpy().ravel(),
        v2.asnumpy().ravel(),
        x.grad.asnumpy(),
        g.grad.asnumpy().ravel(),
        b.grad.asnumpy().ravel(),
    )


@pytest.mark.parametrize("num_dims", [2, 4])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("eps,momentum", [(1e-5, 0.9), (1e-3, 0.7)])
def test_functional_matches_mxnet_operator(num_dims, training, eps, momentum):
    case = random_case(num_dims, seed=num_dims)
    ref = reference_op(*case, eps, momentum, training)
    ours = scratch(*case, eps, momentum, training)
    names = ["output", "moving_mean", "moving_var", "grad X", "grad gamma", "grad beta"]
    for name, a, b in zip(names, ours, ref):
        tol = (STAT_RTOL, STAT_ATOL) if name.startswith("moving") else (RTOL, ATOL)
        np.testing.assert_allclose(a, b, rtol=tol[0], atol=tol[1], err_msg=name)
    if not training:  # prediction: moving statistics untouched
        np.testing.assert_array_equal(ours[1], case[3])
        np.testing.assert_array_equal(ours[2], case[4])


def test_prediction_uses_moving_statistics_outside_record():
    X, gamma, beta, mm, mv, _ = random_case(4)
    shape = stats_shape(3, 4)
    args = [nd.array(a).reshape(shape) for a in (gamma, beta, mm, mv)]
    y, m2, v2 = batch_norm(nd.array(X), *args, eps=1e-5, momentum=0.9)
    expected = gamma.reshape(shape) * (X - mm.reshape(shape)) / np.sqrt(
        mv.reshape(shape) + 1e-5
    ) + beta.reshape(shape)
    np.testing.assert_allclose(y.asnumpy(), expected, rtol=1e-5, atol=1e-5)
    assert m2 is args[2] and v2 is args[3]


def test_returned_statistics_have_no_history():
    X, gamma, beta, mm, mv, _ = random_case(2)
    args = [nd.array(a).reshape(1, -1) for a in (gamma, beta, mm, mv)]
    grads = []
    for with_stats in (False, True):
        x = nd.array(X)
        x.attach_grad()
        with autograd.record():
            y, m2, v2 = batch_norm(x, *args)
            total = y.sum() + (m2.sum() + v2.sum() if with_stats else 0)
        total.backward()
        grads.append(x.grad.asnumpy())
    # the moving statistics contribute nothing to the gradient of X
    np.testing.assert_array_equal(grads[0], grads[1])
    with pytest.raises(mx.base.MXNetError):
        m2.backward()


@pytest.mark.parametrize("num_dims", [2, 4])
def test_two_momentum_forms_agree(num_dims):
    case = random_case(num_dims, seed=3)
    a = scratch(*case, 1e-5, 0.9, True, momentum_on="moving")
    b = scratch(*case, 1e-5, 0.1, True, momentum_on="batch")
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
    # and 003 as written (momentum 0.9 on the batch) really differs
    c = scratch(*case, 1e-5, 0.9, True, momentum_on="batch")
    assert not np.allclose(a[1], c[1])


def test_straight_dope_worked_examples():
    """Document 004's printed outputs of pure_batch_norm, to 1e-5."""
    A = nd.array([1, 7, 5, 4, 6, 10]).reshape((3, 2))
    gamma, beta = nd.array([1, 1]), nd.array([0, 0])
    expected_A = [[-1.3887237, 0.0], [0.4629079, -1.2247398], [0.9258158, 1.2247398]]
    np.testing.assert_allclose(pure_batch_norm(A, gamma, beta).asnumpy(), expected_A, atol=1e-5)
    listed = [1, 6, 5, 7, 4, 3, 2, 5, 6, 3, 2, 4, 5, 3, 2, 5, 6]  # 17 listed, 16 used
    B = nd.array(listed[:16]).reshape((2, 2, 2, 2))
    expected_B = [
        [
            [[-1.6378378, 0.88191265], [0.37796256, 1.3858627]],
            [[0.30779096, -0.51298493], [-1.3337609, 1.1285669]],
        ],
        [
            [[0.88191265, -0.6299376], [-1.1338876, -0.12598751]],
            [[1.1285669, -0.51298493], [-1.3337609, 1.1285669]],
        ],
    ]
    np.testing.assert_allclose(pure_batch_norm(B, gamma, beta).asnumpy(), expected_B, atol=1e-5)


def test_std_eps_differs_from_sqrt_var_eps_by_eps_placement():
    x = np.array([[0.0], [2e-3]], dtype="float32")  # std 1e-3, so eps matters
    args = [nd.ones((1, 1)), nd.zeros((1, 1)), nd.zeros((1, 1)), nd.ones((1, 1))]
    with autograd.record():
        y1 = batch_norm(nd.array(x), *args, eps=1e-3, normalize_by="std_eps")[0]
        y2 = batch_norm(nd.array(x), *args, eps=1e-3)[0]
    np.testing.assert_allclose(y1.asnumpy().ravel(), [-0.5, 0.5], rtol=1e-4)
    np.testing.assert_allclose(
        y2.asnumpy().ravel(), np.array([-1e-3, 1e-3]) / np.sqrt(1e-6 + 1e-3), rtol=1e-4
    )


def test_first_batch_seeds_moving_statistics():
    X = nd.array(random_case(2)[0])
    g, b = nd.ones((1, 5)), nd.zeros((1, 5))
    with autograd.record():
        _, m, v = batch_norm(X, g, b, None, None)
    np.testing.assert_allclose(m.asnumpy().ravel(), X.asnumpy().mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v.asnumpy().ravel(), X.asnumpy().var(0), rtol=1e-5)


# ---------------------------------------------------------------- the layer
def run_layer(layer, X, head, training=True, ctx=mx.cpu()):
    x = nd.array(X, ctx=ctx)
    x.attach_grad()
    with autograd.record(train_mode=training):
        y = layer(x)
    y.backward(nd.array(head, ctx=ctx))
    return y, x.grad


@pytest.mark.parametrize("num_dims", [2, 4])
@pytest.mark.parametrize("hybridize", [False, True])
def test_layer_matches_gluon_batchnorm(num_dims, hybridize):
    X, _, _, _, _, head = random_case(num_dims, seed=7)
    C = X.shape[1]
    ours = BatchNorm(C, num_dims)
    theirs = mx.gluon.nn.BatchNorm(in_channels=C)
    for layer in (ours, theirs):
        layer.initialize()
        if hybridize:
            layer.hybridize()
    for step in range(3):  # moving statistics accumulate over steps
        y1, gx1 = run_layer(ours, X * (step + 1), head)
        y2, gx2 = run_layer(theirs, X * (step + 1), head)
        np.testing.assert_allclose(y1.asnumpy(), y2.asnumpy(), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(gx1.asnumpy(), gx2.asnumpy(), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(
            ours.gamma.grad().asnumpy().ravel(), theirs.gamma.grad().asnumpy(), rtol=RTOL, atol=ATOL
        )
    np.testing.assert_allclose(
        ours.moving_mean.data().asnumpy().ravel(),
        theirs.running_mean.data().asnumpy(),
        rtol=STAT_RTOL,
        atol=STAT_ATOL,
    )
    np.testing.assert_allclose(
        ours.moving_var.data().asnumpy().ravel(),
        theirs.running_var.data().asnumpy(),
        rtol=STAT_RTOL,
        atol=STAT_ATOL,
    )
    # prediction (Gluon's default outside record) uses the moving statistics, changes nothing
    before = ours.moving_mean.data().copy()
    np.testing.assert_allclose(
        ours(nd.array(X)).asnumpy(), theirs(nd.array(X)).asnumpy(), rtol=RTOL, atol=ATOL
    )
    np.testing.assert_array_equal(before.asnumpy(), ours.moving_mean.data().asnumpy())


@pytest.mark.parametrize(
    "conventions",
    [
        dict(momentum=0.1, momentum_on="batch"),
        dict(momentum=0.9, momentum_on="batch", moving_var_init=0.0),
        dict(moving_init="first_batch", update_in_prediction=True, moving_var_init=0.0),
        dict(normalize_by="std_eps"),
    ],
)
def test_hybridized_equals_imperative(conventions):
    X, _, _, _, _, head = random_case(4, seed=11)
    layers = [BatchNorm(3, 4, **conventions) for _ in range(2)]
    for layer in layers:
        layer.initialize()
    layers[1].hybridize()
    for training in (True, True, False, True, False):
        outs = [run_layer(layer, X, head, training) for layer in layers]
        np.testing.assert_allclose(outs[0][0].asnumpy(), outs[1][0].asnumpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(outs[0][1].asnumpy(), outs[1][1].asnumpy(), rtol=1e-5, atol=1e-6)
        for name in ("moving_mean", "moving_var"):
            a, b = (getattr(layer, name).data().asnumpy() for layer in layers)
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_straight_dope_layer_seeds_and_updates_in_prediction():
    layer = BatchNorm(
        5, 2, moving_init="first_batch", update_in_prediction=True, moving_var_init=0.0
    )
    layer.initialize()
    X1, X2 = (random_case(2, seed=s)[0] for s in (1, 2))
    with autograd.record():
        layer(nd.array(X1))
    np.testing.assert_allclose(layer.moving_mean.data().asnumpy().ravel(), X1.mean(0), rtol=1e-5)
    # prediction normalises with the old statistics, then updates them with X2's
    y = layer(nd.array(X2))
    np.testing.assert_allclose(
        y.asnumpy(), (X2 - X1.mean(0)) / np.sqrt(X1.var(0) + 1e-5), rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(
        layer.moving_mean.data().asnumpy().ravel(), 0.9 * X1.mean(0) + 0.1 * X2.mean(0), rtol=1e-5
    )


def test_moving_statistics_follow_the_device():
    """A copy per context, the one used being the input's; saving averages the copies."""
    ctxs = [mx.cpu(0), mx.cpu(1)]
    layer = BatchNorm(3, 4)
    layer.initialize(ctx=ctxs)
    X = [random_case(4, seed=s)[0] for s in (1, 2)]
    head = np.ones_like(X[0])
    for x, ctx in zip(X, ctxs):
        y, _ = run_layer(layer, x, head, ctx=ctx)
        assert y.context == ctx
    m0, m1 = (layer.moving_mean.data(c) for c in ctxs)
    assert m0.context == ctxs[0] and m1.context == ctxs[1]
    np.testing.assert_allclose(
        m0.asnumpy().ravel(), 0.1 * X[0].mean((0, 2, 3)), rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(
        m1.asnumpy().ravel(), 0.1 * X[1].mean((0, 2, 3)), rtol=1e-5, atol=1e-7
    )


def test_save_load_restores_moving_statistics(tmp_path):
    ctxs = [mx.cpu(0), mx.cpu(1)]
    net = gluon_bn.models.lenet("scratch")
    net.initialize(ctx=ctxs)
    x = nd.array(np.random.default_rng(0).random((4, 1, 28, 28)).astype("float32"))
    for ctx in ctxs:
        with autograd.record():
            net(x.as_in_context(ctx) * (1 + ctx.device_id))
    path = str(tmp_path / "net.params")
    net.save_parameters(path)
    clone = gluon_bn.models.lenet("scratch")
    clone.load_parameters(path, ctx=mx.cpu())
    for name in ("moving_mean", "moving_var"):
        copies = [getattr(net[1], name).data(c).asnumpy() for c in ctxs]
        np.testing.assert_array_equal(
            getattr(clone[1], name).data().asnumpy(), (copies[0] + copies[1]) / 2
        )
    # on one device the round trip is exact, outputs included
    single = gluon_bn.models.lenet("scratch")
    single.initialize()
    with autograd.record():
        single(x)
    single.save_parameters(path)
    clone.load_parameters(path)
    for name in ("moving_mean", "moving_var"):
        for i in (1, 5, 9, 12):
            np.testing.assert_array_equal(
                getattr(clone[i], name).data().asnumpy(), getattr(single[i], name).data().asnumpy()
            )
    np.testing.assert_array_equal(clone(x).asnumpy(), single(x).asnumpy())


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("shape", [(4,), (2, 3, 4), (1, 2, 3, 4, 5)])
def test_wrong_rank_is_a_value_error(shape):
    with pytest.raises(ValueError, match="2-D .* or 4-D"):
        batch_norm(
            nd.zeros(shape), nd.ones((1, 3)), nd.zeros((1, 3)), nd.zeros((1, 3)), nd.ones((1, 3))
        )
    layer = BatchNorm(3, 4)
    layer.initialize()
    with pytest.raises(ValueError, match="rank"):
        layer(nd.zeros(shape))


def test_wrong_channel_count_is_a_value_error():
    layer = BatchNorm(6, 4)
    layer.initialize()
    with pytest.raises(ValueError, match="built for 6 .*num_features=3"):
        layer(nd.zeros((2, 3, 4, 4)))


def test_rank_different_from_num_dims_is_a_value_error():
    layer = BatchNorm(3, 2)
    layer.initialize()
    with pytest.raises(ValueError, match="num_dims=2"):
        layer(nd.zeros((2, 3, 4, 4)))


@pytest.mark.parametrize("dtype", ["int32", "uint8", "int64"])
def test_integer_dtype_is_a_type_error(dtype):
    layer = BatchNorm(3, 2)
    layer.initialize()
    with pytest.raises(TypeError, match=f"floating-point .*{dtype}.*astype"):
        layer(nd.zeros((2, 3), dtype=dtype))


@pytest.mark.parametrize("num_dims", [1, 3, 5, "4"])
def test_bad_num_dims_is_a_value_error(num_dims):
    with pytest.raises(ValueError, match="num_dims"):
        BatchNorm(3, num_dims)


def test_bad_conventions_are_value_errors():
    with pytest.raises(ValueError, match="momentum_on"):
        BatchNorm(3, 2, momentum_on="upside")
    with pytest.raises(ValueError, match="moving_init"):
        BatchNorm(3, 2, moving_init="later")
    with pytest.raises(ValueError, match="num_features"):
        BatchNorm(0, 2)
