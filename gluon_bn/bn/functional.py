"""Batch normalization as plain functions: the mathematics, with each document's conventions.

Shapes. A 2-D input is (batch, features) and is normalised per feature over axis 0; a 4-D
input is (batch, channels, height, width) and is normalised per channel over axes 0, 2 and 3.
`gamma`, `beta` and the moving statistics have shape (1, C) or (1, C, 1, 1), so that they
broadcast against the input; the batch statistics are kept in the same shape (keepdims).

Conventions, named after where they come from:

``momentum_on``
    ``"moving"``: ``moving = momentum * moving + (1 - momentum) * batch`` (MXNet's operator,
    documents 001, 002, 004). ``"batch"``: ``moving = (1 - momentum) * moving + momentum * batch``
    (document 000 with momentum 0.1, document 003 as written with momentum 0.9).
``normalize_by``
    ``"sqrt_var_eps"``: ``(X - mean) / sqrt(var + eps)`` (MXNet, every document's training
    layer). ``"std_eps"``: ``(X - mean) / (sqrt(var) + eps)`` (document 004's `pure_batch_norm`).
``update_in_prediction``
    Document 004 updates its moving statistics with the batch statistics even when it evaluates
    (after normalising with the old moving statistics); everyone else leaves them alone.

The variance is always the biased one (divided by the number of values reduced), as in
MXNet's operator and in every document.

Array APIs. MXNet has two: the legacy ``mx.nd`` arrays (documents 001, 003, 004) and the
numpy-compatible ``mx.np`` arrays of ``npx.set_np()`` (document 000). The mathematics is
written once, in legacy operators; the public functions accept either kind, work on legacy
views of the same memory (``as_nd_ndarray`` keeps autograd's history, so gradients reach
the caller's arrays) and return results of the kind `X` came in.
"""

from __future__ import annotations

import contextlib
from typing import Optional, Tuple

import numpy as np

from gluon_bn.bn.dialect import as_kind, as_legacy, is_numpy_array
from gluon_bn.runtime.loader import mx

nd = mx.nd
autograd = mx.autograd

MOMENTUM_ON = ("moving", "batch")
NORMALIZE_BY = ("sqrt_var_eps", "std_eps")


def check_block_input(X, who: str) -> bool:
    """Return whether `X` is an ``mx.np`` array; raise TypeError for a legacy one in numpy mode.

    In numpy mode (``npx.set_np()``) Gluon requires every Block to return ``mx.np`` arrays,
    so a layer cannot hand a legacy array back to a caller who passed one.

    Parameters
    ----------
    X : mx.nd.NDArray or mx.np.ndarray
        The layer's input.
    who : str
        The layer's name, for the message.
    """
    numpy_api = is_numpy_array(X)
    if not numpy_api and mx.util.is_np_array():
        raise TypeError(
            f"{who} got a legacy mx.nd.NDArray while MXNet's numpy mode is on "
            f"(npx.set_np()), where Gluon blocks must return mx.np arrays. Pass "
            f"X.as_np_ndarray() (or build the batch with mx.np), or run without npx.set_np() "
            f"(npx.reset_np()) to stay with mx.nd arrays."
        )
    return numpy_api


def reduction_axes(num_dims: int) -> Tuple[int, ...]:
    """Return the axes that batch normalization averages over for a `num_dims`-D input.

    Parameters
    ----------
    num_dims : int
        2 for (batch, features), 4 for (batch, channels, height, width).

    Returns
    -------
    tuple of int
        ``(0,)`` or ``(0, 2, 3)``: every axis but the feature/channel axis 1.
    """
    if num_dims == 2:
        return (0,)
    if num_dims == 4:
        return (0, 2, 3)
    raise ValueError(
        f"batch normalization takes 2-D (batch, features) or 4-D (batch, channels, height, "
        f"width) input; got num_dims={num_dims!r}"
    )


def stats_shape(num_features: int, num_dims: int) -> Tuple[int, ...]:
    """Return the broadcastable shape of gamma, beta and the moving statistics.

    Parameters
    ----------
    num_features : int
        Features of a dense layer's output, or channels of a convolution's output.
    num_dims : int
        2 or 4, the rank of the input.

    Returns
    -------
    tuple of int
        ``(1, C)`` or ``(1, C, 1, 1)``.
    """
    reduction_axes(num_dims)  # validates num_dims
    return (1, num_features) if num_dims == 2 else (1, num_features, 1, 1)


def check_conventions(momentum_on: str, normalize_by: str) -> None:
    """Raise ValueError if a convention name is not one this module knows."""
    if momentum_on not in MOMENTUM_ON:
        raise ValueError(f"momentum_on must be one of {MOMENTUM_ON}, got {momentum_on!r}")
    if normalize_by not in NORMALIZE_BY:
        raise ValueError(f"normalize_by must be one of {NORMALIZE_BY}, got {normalize_by!r}")


def check_input(X, num_features: Optional[int] = None, num_dims: Optional[int] = None) -> None:
    """Raise TypeError or ValueError, with what was expected, for input BN cannot take.

    Parameters
    ----------
    X : mx.nd.NDArray or mx.np.ndarray
        The input batch.
    num_features : int, optional
        The channel count the layer was built for (axis 1 of `X`).
    num_dims : int, optional
        The rank the layer was built for.
    """
    if not isinstance(X, nd.NDArray):
        raise TypeError(
            f"batch_norm takes an mx.nd.NDArray or an mx.np.ndarray, got "
            f"{type(X).__name__}; convert it first, e.g. mx.np.array(x)"
        )
    if X.ndim not in (2, 4):
        raise ValueError(
            f"batch_norm takes 2-D (batch, features) or 4-D (batch, channels, height, width) "
            f"input; got shape {X.shape} (rank {X.ndim})"
        )
    if num_dims is not None and X.ndim != num_dims:
        raise ValueError(
            f"this BatchNorm was built with num_dims={num_dims} but got input of rank "
            f"{X.ndim}, shape {X.shape}; build it with num_dims={X.ndim}"
        )
    if num_features is not None and X.shape[1] != num_features:
        raise ValueError(
            f"this BatchNorm was built for {num_features} features/channels (axis 1) but got "
            f"input of shape {X.shape}; build it with num_features={X.shape[1]}"
        )
    dtype = np.dtype(X.dtype)
    if dtype.kind != "f":
        raise TypeError(
            f"batch_norm needs floating-point input, got dtype {dtype.name}; "
            f"convert it first, e.g. X.astype('float32')"
        )


def moments(F, X, axes: Tuple[int, ...]):
    """Return the batch mean and biased variance of `X` over `axes`, keeping dims.

    Parameters
    ----------
    F : module
        ``mx.nd`` or ``mx.sym``: the same code builds an imperative result or a graph.
    X : NDArray or Symbol
        The input, (N, C) or (N, C, H, W).
    axes : tuple of int
        From :func:`reduction_axes`.

    Returns
    -------
    (mean, var)
        Each of shape (1, C) or (1, C, 1, 1).
    """
    mean = F.mean(X, axis=axes, keepdims=True)
    var = F.mean(F.square(F.broadcast_sub(X, mean)), axis=axes, keepdims=True)
    return mean, var


def safe_std(F, var):
    """Return ``sqrt(var)`` whose gradient is 0, not NaN, where `var` is 0 (a constant channel).

    ``sqrt`` has an infinite derivative at 0, and autograd multiplies it by the zero
    derivative of a constant channel's variance: NaN. Taking the square root only where the
    variance is positive (of a stand-in 1 elsewhere, so that neither branch is infinite)
    gives the one-sided limit, 0, for document 004's ``std + eps``.
    """
    positive = var > 0
    return F.where(positive, F.sqrt(F.where(positive, var, F.ones_like(var))), F.zeros_like(var))


def normalize(F, X, mean, var, gamma, beta, eps: float, normalize_by: str = "sqrt_var_eps"):
    """Return ``gamma * (X - mean) / scale + beta`` with the scale of `normalize_by`."""
    if normalize_by == "std_eps":
        scale = safe_std(F, var) + eps
    else:
        scale = F.sqrt(var + eps)
    X_hat = F.broadcast_div(F.broadcast_sub(X, mean), scale)
    return F.broadcast_add(F.broadcast_mul(gamma, X_hat), beta)


def moving_average(moving, batch, momentum: float, momentum_on: str = "moving"):
    """Return the moving statistic after one update with `batch`.

    ``momentum_on="moving"``: ``momentum * moving + (1 - momentum) * batch``;
    ``momentum_on="batch"``: ``(1 - momentum) * moving + momentum * batch``.
    """
    if momentum_on == "batch":
        return (1.0 - momentum) * moving + momentum * batch
    return momentum * moving + (1.0 - momentum) * batch


def batch_norm_step(
    F,
    X,
    gamma,
    beta,
    moving_mean,
    moving_var,
    *,
    training: bool,
    num_dims: int,
    eps: float,
    momentum: float,
    momentum_on: str = "moving",
    normalize_by: str = "sqrt_var_eps",
    update_in_prediction: bool = False,
    seeded=None,
):
    """One batch normalization step with the mode given explicitly; works on nd and sym.

    This is the kernel behind :func:`batch_norm` and the layers: it neither validates nor
    asks autograd for the mode, so that a hybridized layer can build one graph per mode.

    Parameters
    ----------
    F : module
        ``mx.nd`` or ``mx.sym``.
    X, gamma, beta, moving_mean, moving_var : NDArray or Symbol
        As in :func:`batch_norm`.
    training : bool
        Normalise with the batch statistics and update the moving ones (True), or
        normalise with the moving statistics (False).
    num_dims : int
        Rank of `X`, 2 or 4.
    eps, momentum, momentum_on, normalize_by, update_in_prediction
        See the module docstring.
    seeded : NDArray or Symbol, optional
        Shape (1,) holding 0 or 1. Where 0, the moving statistics are replaced by the batch
        statistics instead of averaged with them (document 004 seeds them from its first batch).

    Returns
    -------
    (Y, new_moving_mean, new_moving_var)
        The new moving statistics are the old ones (the same objects) when nothing updates
        them; otherwise they are computed outside autograd's history by the caller.
    """
    axes = reduction_axes(num_dims)
    if training:
        mean, var = moments(F, X, axes)
        Y = normalize(F, X, mean, var, gamma, beta, eps, normalize_by)
    else:
        Y = normalize(F, X, moving_mean, moving_var, gamma, beta, eps, normalize_by)
        if not update_in_prediction:
            return Y, moving_mean, moving_var
        mean, var = moments(F, X, axes)
    # The statistics feed the moving averages as constants: no gradient flows through them,
    # and imperatively the update is not even recorded (autograd keeps no history of it).
    mean, var = F.stop_gradient(mean), F.stop_gradient(var)
    with autograd.pause() if F is nd else contextlib.nullcontext():
        new_mean, new_var = update_moving(
            F, moving_mean, moving_var, mean, var, momentum, momentum_on, seeded
        )
    return Y, new_mean, new_var


def update_moving(
    F, moving_mean, moving_var, mean, var, momentum: float, momentum_on: str = "moving", seeded=None
):
    """Return both moving statistics after one update with the batch's `mean` and `var`.

    Parameters
    ----------
    F : module
        ``mx.nd`` or ``mx.sym``.
    moving_mean, moving_var, mean, var : NDArray or Symbol
        All of one shape, (1, C) or (1, C, 1, 1).
    momentum, momentum_on
        See :func:`moving_average`.
    seeded : NDArray or Symbol, optional
        Shape (1,), 0 or 1; where 0 the batch statistics replace the moving ones.
    """
    new_mean = moving_average(moving_mean, mean, momentum, momentum_on)
    new_var = moving_average(moving_var, var, momentum, momentum_on)
    if seeded is not None:
        # seeded in {0, 1}: 1 * average + 0 * batch is the average exactly, and vice versa.
        new_mean = F.broadcast_add(
            F.broadcast_mul(seeded, new_mean), F.broadcast_mul(1 - seeded, mean)
        )
        new_var = F.broadcast_add(
            F.broadcast_mul(seeded, new_var), F.broadcast_mul(1 - seeded, var)
        )
    return new_mean, new_var


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
):
    """Batch-normalise `X` and return the output with the updated moving statistics.

    Training or prediction is decided by ``autograd.is_training()``, as in the documents:
    inside ``autograd.record()`` the batch statistics normalise `X` and update the moving
    ones; outside it the moving statistics normalise `X` and come back unchanged.

    Parameters
    ----------
    X : mx.nd.NDArray or mx.np.ndarray
        (N, C) or (N, C, H, W), floating point.
    gamma, beta : mx.nd.NDArray or mx.np.ndarray
        Scale and shift, shape (1, C) or (1, C, 1, 1).
    moving_mean, moving_var : mx.nd.NDArray, mx.np.ndarray or None
        The moving statistics, same shape as `gamma`. ``None`` for both means "not seeded
        yet": the batch statistics become the moving statistics (document 004's first batch).
    eps : float
        Added to the variance (or to the standard deviation, see `normalize_by`).
    momentum : float
        Weight of the moving statistic (``momentum_on="moving"``, the default, as MXNet's
        operator and document 001) or of the batch statistic (``momentum_on="batch"``, documents 000
        and 003 as written).
    momentum_on : {"moving", "batch"}
        Which side of the moving average `momentum` weighs.
    normalize_by : {"sqrt_var_eps", "std_eps"}
        ``sqrt(var + eps)`` (the default) or ``sqrt(var) + eps`` (document 004's
        `pure_batch_norm`).
    update_in_prediction : bool
        Update the moving statistics with the batch statistics in prediction mode too
        (document 004's network), after normalising with the old ones.

    Returns
    -------
    Y : same kind as `X`
        Same shape as `X`.
    moving_mean, moving_var : same kind as `X`
        The updated moving statistics, without autograd history.
    """
    check_input(X)
    check_conventions(momentum_on, normalize_by)
    numpy_api = is_numpy_array(X)
    given = (moving_mean, moving_var)
    X, gamma, beta, moving_mean, moving_var = (
        as_legacy(a) for a in (X, gamma, beta, moving_mean, moving_var)
    )
    training = autograd.is_training()
    seeded = None
    if moving_mean is None or moving_var is None:
        if not (training or update_in_prediction):
            raise ValueError(
                "moving_mean and moving_var are None (not seeded) but there is "
                "no batch to seed them: call batch_norm in training mode first"
            )
        shape = stats_shape(X.shape[1], X.ndim)
        moving_mean = nd.zeros(shape, ctx=X.context, dtype=X.dtype)
        moving_var = nd.zeros(shape, ctx=X.context, dtype=X.dtype)
        seeded = nd.zeros((1,), ctx=X.context, dtype=X.dtype)
    Y, new_mean, new_var = batch_norm_step(
        nd,
        X,
        gamma,
        beta,
        moving_mean,
        moving_var,
        training=training,
        num_dims=X.ndim,
        eps=eps,
        momentum=momentum,
        momentum_on=momentum_on,
        normalize_by=normalize_by,
        update_in_prediction=update_in_prediction,
        seeded=seeded,
    )
    if new_mean is moving_mean:  # not updated: hand back the caller's own arrays
        return (as_kind(Y, numpy_api), *given)
    return tuple(as_kind(a, numpy_api) for a in (Y, new_mean, new_var))


def pure_batch_norm(X, gamma, beta, eps: float = 1e-5):
    """Normalise `X` with its own batch statistics by ``std + eps`` (document 004's first function).

    Parameters
    ----------
    X : mx.nd.NDArray or mx.np.ndarray
        (N, C) or (N, C, H, W).
    gamma, beta : mx.nd.NDArray or mx.np.ndarray
        Anything that broadcasts against `X` (document 004 passes shape (C,)).
    eps : float
        Added to the standard deviation.

    Returns
    -------
    same kind as `X`
        Same shape as `X`.
    """
    check_input(X)
    numpy_api = is_numpy_array(X)
    X, gamma, beta = as_legacy(X), as_legacy(gamma), as_legacy(beta)
    mean, var = moments(nd, X, reduction_axes(X.ndim))
    X_hat = (X - mean) / (safe_std(nd, var) + eps)
    return as_kind(gamma * X_hat + beta, numpy_api)
