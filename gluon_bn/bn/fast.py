"""The same batch normalization as :mod:`gluon_bn.bn.functional`, written for MXNet's CPU speed.

MXNet 1.9's reductions over axes (0, 2, 3) and its (1, C, 1, 1) broadcasts are slow on the
CPU (measured at the conv1 shape (256, 6, 24, 24): a mean over those axes 6.3 ms, one
broadcast 1.2 ms, while a matrix product with a ones vector takes 0.17 ms and a broadcast
of an (N*C, 1) column over (N*C, H*W) rows 0.47 ms). So this module:

- views a 4-D input (N, C, H, W) as rows (N*C, H*W), one row per example and channel, and
  a 2-D input (N, C) as it is;
- reduces by matrix products with ones vectors (per row, then per channel);
- broadcasts per-channel numbers as an (N*C, 1) column (4-D) or a (1, C) row (2-D);
- differentiates by hand: the backward pass is one formula instead of autograd's replay of
  every elementwise step;
- compiles the training forward and backward once per input shape (two hybridized blocks),
  so that each pass is one call into MXNet instead of some twenty from Python.

The mathematics, the conventions and the moving-statistics updates are those of
:func:`gluon_bn.bn.functional.batch_norm`; the numbers agree to float32 rounding (tested).
"""

from __future__ import annotations

import functools
from typing import Tuple

import numpy as np

from gluon_bn.bn.dialect import LegacyHybridBlock, as_kind, as_legacy, is_numpy_array
from gluon_bn.bn.functional import (
    check_conventions,
    check_input,
    safe_std,
    stats_shape,
    update_moving,
)
from gluon_bn.runtime.loader import mx

nd, autograd = mx.nd, mx.autograd


class _Layout:
    """How a 2-D or 4-D input maps to rows, and how per-channel values map onto them.

    The methods take ``F`` (``mx.nd`` or ``mx.sym``) so that the same steps run
    imperatively and inside the compiled training kernels below; shapes are fixed here.
    """

    def __init__(self, shape: Tuple[int, ...]):
        self.shape = tuple(shape)
        self.N, self.C = shape[0], shape[1]
        self.L = 1 if len(shape) == 2 else shape[2] * shape[3]  # values per row
        self.count = self.N * self.L  # values per channel
        self.four_d = len(shape) == 4
        # per-channel gradients leave in the parameters' shape
        self.param_shape = stats_shape(self.C, len(shape))

    def ones(self, ctx, dtype) -> Tuple:
        """Return the reductions' ones vectors: per row (L, 1), 4-D only; per example (1, N)."""
        ones_n = nd.ones((1, self.N), ctx=ctx, dtype=dtype)
        return (nd.ones((self.L, 1), ctx=ctx, dtype=dtype), ones_n) if self.four_d else (ones_n,)

    def rows(self, F, X):
        """(N, C, H, W) -> (N*C, H*W); (N, C) unchanged."""
        return F.reshape(X, shape=(self.N * self.C, self.L)) if self.four_d else X

    def channel_sum(self, F, R, ones):
        """Sum each channel of a rows view: returns (1, C)."""
        if self.four_d:
            ones_row, ones_n = ones
            per_row = F.dot(R, ones_row)  # (N*C, 1)
            return F.dot(ones_n, F.reshape(per_row, shape=(self.N, self.C)))  # (1, C)
        return F.dot(ones[0], R)  # (1, C)

    def spread(self, F, v):
        """Per-channel (1, C) -> what broadcasts against the rows view."""
        if self.four_d:
            return F.reshape(F.tile(v, reps=(self.N, 1)), shape=(self.N * self.C, 1))
        return v

    def times_plus(self, F, R, a, b):
        """Rows ``R * a + b`` with per-channel a, b of shape (1, C)."""
        return F.broadcast_add(F.broadcast_mul(R, self.spread(F, a)), self.spread(F, b))


def _inverse_scale(F, var, eps: float, normalize_by: str):
    """1 / sqrt(var + eps), or 1 / (sqrt(var) + eps) for document 004's pure_batch_norm."""
    if normalize_by == "std_eps":
        return 1.0 / (safe_std(F, var) + eps)
    return F.rsqrt(var + eps)


def _centred_moments(F, layout: _Layout, R, ones):
    """Per-channel mean (1, C), the centred rows, and the biased variance (1, C) of rows `R`."""
    mean = layout.channel_sum(F, R, ones) / layout.count
    centred = F.broadcast_sub(R, layout.spread(F, mean))
    var = layout.channel_sum(F, F.square(centred), ones) / layout.count
    return mean, centred, var


def moments(X) -> Tuple[object, object]:
    """Return the per-channel batch mean and biased variance of `X`, each (1, C)."""
    layout = _Layout(X.shape)
    mean, _, var = _centred_moments(nd, layout, layout.rows(nd, X), layout.ones(X.context, X.dtype))
    return mean, var


class _ForwardKernel(LegacyHybridBlock):
    """Training forward for one input shape: Y, the batch statistics, and what backward needs."""

    def __init__(self, layout: _Layout, eps: float, normalize_by: str, **kwargs):
        super().__init__(**kwargs)
        self.layout, self.eps, self.normalize_by = layout, eps, normalize_by

    def compute(self, F, X, gamma, beta, *ones):
        layout, C = self.layout, self.layout.C
        mean, centred, var = _centred_moments(F, layout, layout.rows(F, X), ones)
        inv = _inverse_scale(F, var, self.eps, self.normalize_by)  # (1, C)
        scale = F.reshape(gamma, shape=(1, C)) * inv  # (1, C)
        Y = layout.times_plus(F, centred, scale, F.reshape(beta, shape=(1, C)))
        # d inv / d var, as a factor of inv: -inv^2 / 2 (sqrt(var + eps)) or
        # -inv / (2 sqrt(var)) (sqrt(var) + eps); the backward pass multiplies it by
        # 2 * centred / count from d var / d X. For std + eps the factor is 0 where the
        # variance is 0 (a constant channel): the one-sided limit, as functional.safe_std;
        # var + (var == 0) keeps the division finite.
        if self.normalize_by == "sqrt_var_eps":
            coef = inv * inv
        else:
            coef = F.where(var > 0, inv / F.sqrt(var + (var == 0)), F.zeros_like(var))
        return F.reshape(Y, shape=layout.shape), mean, var, centred, inv, scale, coef


class _BackwardKernel(LegacyHybridBlock):
    """Training backward for one input shape: dX, dgamma, dbeta from dY, by hand."""

    def __init__(self, layout: _Layout, **kwargs):
        super().__init__(**kwargs)
        self.layout = layout

    def compute(self, F, dY, centred, inv, scale, coef, *ones):
        layout = self.layout
        dR = layout.rows(F, dY)
        sum_dy = layout.channel_sum(F, dR, ones)  # (1, C)
        sum_dy_centred = layout.channel_sum(F, dR * centred, ones)  # (1, C)
        k = coef * sum_dy_centred / layout.count
        # dX = gamma * inv * (dY - mean(dY) - centred * k)
        inner = dR - F.broadcast_mul(centred, layout.spread(F, k))
        dX = layout.times_plus(F, inner, scale, -scale * sum_dy / layout.count)
        return (
            F.reshape(dX, shape=layout.shape),
            F.reshape(sum_dy_centred * inv, shape=layout.param_shape),
            F.reshape(sum_dy, shape=layout.param_shape),
        )


@functools.lru_cache(maxsize=32)
def _kernels(
    shape: Tuple[int, ...], ctx, dtype: str, eps: float, normalize_by: str, numpy_api: bool
) -> Tuple:
    """The compiled forward and backward kernels, and the ones vectors, for one input shape.

    A memo of immutable graphs, bounded by ``maxsize``: compiling once per shape turns some
    twenty imperative calls per pass into one. `numpy_api` (MXNet's numpy mode) is part of
    the key because Gluon builds a graph for the mode it was first called in.
    """
    layout = _Layout(shape)
    forward = _ForwardKernel(layout, eps, normalize_by)
    backward = _BackwardKernel(layout)
    forward.hybridize()
    backward.hybridize()
    return forward, backward, layout.ones(ctx, dtype)


class _TrainingBatchNorm(autograd.Function):
    """Y = gamma * (X - mean) * inv + beta with batch statistics; backward by hand."""

    def __init__(self, eps: float, normalize_by: str):
        super().__init__()
        self.eps, self.normalize_by = eps, normalize_by

    def forward(self, X, gamma, beta):
        self.kernels = _kernels(
            X.shape,
            X.context,
            np.dtype(X.dtype).name,
            self.eps,
            self.normalize_by,
            mx.util.is_np_array(),
        )
        forward, _, ones = self.kernels
        Y, mean, var, *saved = (as_legacy(a) for a in forward(X, gamma, beta, *ones))
        # Save only arrays made here: saving a view of a Parameter (gamma) hangs MXNet's
        # engine on the next step (apache/mxnet#15844).
        self.save_for_backward(*saved)
        self.mean, self.var = mean, var
        return Y

    def backward(self, dY):
        _, backward, ones = self.kernels
        return tuple(as_legacy(a) for a in backward(dY, *self.saved_tensors, *ones))


def predict(
    X, gamma, beta, moving_mean, moving_var, eps: float, normalize_by: str = "sqrt_var_eps"
):
    """Normalise `X` with the moving statistics: ``X * scale + shift`` per channel."""
    layout = _Layout(X.shape)
    C = layout.C
    scale = gamma.reshape((1, C)) * _inverse_scale(
        nd, moving_var.reshape((1, C)), eps, normalize_by
    )
    shift = beta.reshape((1, C)) - moving_mean.reshape((1, C)) * scale
    return layout.times_plus(nd, layout.rows(nd, X), scale, shift).reshape(X.shape)


def _training_step(X, gamma, beta, eps: float, normalize_by: str):
    """Y and the batch's mean and variance, through the compiled kernels and the hand-written backward."""
    if X.dtype == np.float16 and X.context.device_type == "cpu":
        raise TypeError(
            "impl='fast' cannot train in float16 on the CPU: its reductions are "
            "matrix products, which MXNet's CPU build has no float16 kernel "
            "for. Use impl='faithful', or float32"
        )
    op = _TrainingBatchNorm(eps, normalize_by)
    Y = op(X, gamma, beta)
    return Y, op.mean, op.var


def batch_norm(
    X,
    gamma,
    beta,
    moving_mean,
    moving_var,
    eps: float = 1e-5,
    momentum: float = 0.9,
    *,
    momentum_on: str = "moving",
    normalize_by: str = "sqrt_var_eps",
    update_in_prediction: bool = False,
    seeded=None,
):
    """Fast twin of :func:`gluon_bn.bn.functional.batch_norm`: same arguments, same results.

    Parameters
    ----------
    X, gamma, beta, moving_mean, moving_var, eps, momentum, momentum_on, normalize_by, update_in_prediction
        As in :func:`gluon_bn.bn.functional.batch_norm` (moving statistics must be arrays).
    seeded : NDArray, optional
        Shape (1,), 0 or 1: where 0 the batch statistics replace the moving ones.

    Returns
    -------
    (Y, moving_mean, moving_var)
        Of the kind of `X` (``mx.nd`` or ``mx.np``); the moving statistics without autograd
        history, shaped like the ones passed.
    """
    return batch_norm_with(
        _training_step,
        X,
        gamma,
        beta,
        moving_mean,
        moving_var,
        eps,
        momentum,
        momentum_on=momentum_on,
        normalize_by=normalize_by,
        update_in_prediction=update_in_prediction,
        seeded=seeded,
    )


def batch_norm_with(
    training_step,
    X,
    gamma,
    beta,
    moving_mean,
    moving_var,
    eps: float,
    momentum: float,
    *,
    momentum_on: str,
    normalize_by: str,
    update_in_prediction: bool,
    seeded=None,
):
    """:func:`batch_norm` around a given training step: prediction and the moving statistics.

    Parameters
    ----------
    training_step : callable
        ``training_step(X, gamma, beta, eps, normalize_by) -> (Y, mean, var)`` on legacy
        arrays, recorded by autograd; mean and var in any shape holding C values.
    X, gamma, beta, moving_mean, moving_var, eps, momentum, momentum_on, normalize_by, update_in_prediction, seeded
        As in :func:`batch_norm`.
    """
    check_input(X)
    check_conventions(momentum_on, normalize_by)
    numpy_api = is_numpy_array(X)
    given = (moving_mean, moving_var)
    X, gamma, beta, moving_mean, moving_var, seeded = (
        as_legacy(a) for a in (X, gamma, beta, moving_mean, moving_var, seeded)
    )
    shape = moving_mean.shape
    if autograd.is_training():
        Y, mean, var = training_step(X, gamma, beta, eps, normalize_by)
    else:
        if not update_in_prediction:
            Y = predict(X, gamma, beta, moving_mean, moving_var, eps, normalize_by)
            return (as_kind(Y, numpy_api), *given)
        # The caller overwrites the moving statistics in place after this call, while a
        # recorded graph of Y would still read them in backward: give it copies.
        Y = predict(X, gamma, beta, moving_mean.copy(), moving_var.copy(), eps, normalize_by)
        with autograd.pause():
            mean, var = moments(X)
    with autograd.pause():
        new_mean, new_var = update_moving(
            nd,
            moving_mean,
            moving_var,
            mean.reshape(shape),
            var.reshape(shape),
            momentum,
            momentum_on,
            seeded,
        )
    return tuple(as_kind(a, numpy_api) for a in (Y, new_mean, new_var))
