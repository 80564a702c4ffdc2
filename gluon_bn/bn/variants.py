"""Variants of batch normalization that the claims need: partial normalization, injected noise,
and statistics recomputed over a whole data set.

Shapes follow :mod:`gluon_bn.bn.functional`: a 2-D input is (N, C), a 4-D input (N, C, H, W),
and per-channel numbers are handled here as (1, C) rows. Every transformation below is a
per-channel affine map ``Y = a * X + b`` (:func:`channel_affine`), which MXNet computes fast on
the CPU on a (N*C, H*W) view with an (N*C, 1) column, as :mod:`gluon_bn.bn.fast` does.

- :func:`partial_coefficients`: the ``a`` and ``b`` of batch normalization that only centres
  (subtracts the mean), only scales (divides by the standard deviation), or does both.
- :func:`draw_affine_noise`: a random per-channel shift and scale, drawn anew at every
  training step (Santurkar et al., 2018, "How does batch normalization help optimization?",
  injected such noise after each BN layer to re-create internal covariate shift).
- :func:`combine_moments`: the mean and variance of a whole data set from per-batch ones.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np

from gluon_bn.bn import fast
from gluon_bn.bn.functional import check_input, stats_shape
from gluon_bn.runtime.loader import mx

nd, autograd, gluon, init = mx.nd, mx.autograd, mx.gluon, mx.init

PARTS = ("both", "mean", "variance")  # what a partial BN layer normalizes


def channel_affine(X, a, b):
    """Return ``a * X + b`` with per-channel `a` and `b` of shape (1, C) broadcast over `X`.

    Parameters
    ----------
    X : NDArray
        (N, C) or (N, C, H, W).
    a, b : NDArray
        (1, C), or anything that reshapes to it.
    """
    N, C = X.shape[0], X.shape[1]
    a, b = a.reshape((1, C)), b.reshape((1, C))
    if X.ndim == 2:
        return nd.broadcast_add(nd.broadcast_mul(X, a), b)
    # (N, C, H, W) -> rows (N*C, H*W); a, b tiled to one value per row, (N*C, 1).
    rows = X.reshape((N * C, -1))
    column = (N * C, 1)
    Y = nd.broadcast_add(
        nd.broadcast_mul(rows, nd.tile(a, reps=(N, 1)).reshape(column)),
        nd.tile(b, reps=(N, 1)).reshape(column),
    )
    return Y.reshape(X.shape)


def partial_coefficients(mean, var, gamma, beta, *, part: str = "both", eps: float = 1e-5):
    """Return (a, b), each (1, C), with which batch normalization of `part` is ``a * X + b``.

    ``"both"``: ``gamma * (X - mean) / sqrt(var + eps) + beta`` (ordinary BN);
    ``"mean"``: ``gamma * (X - mean) + beta`` (centres only);
    ``"variance"``: ``gamma * X / sqrt(var + eps) + beta`` (scales only, the mean is kept).

    Parameters
    ----------
    mean, var : NDArray
        Per-channel statistics, (1, C): the batch's (training) or the moving ones.
    gamma, beta : NDArray
        Per-channel scale and shift, reshaped to (1, C).
    part : {"both", "mean", "variance"}
    eps : float
        Added to the variance.
    """
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    C = mean.size
    gamma, beta, mean = gamma.reshape((1, C)), beta.reshape((1, C)), mean.reshape((1, C))
    a = gamma if part == "mean" else gamma * nd.rsqrt(var.reshape((1, C)) + eps)
    b = beta if part == "variance" else beta - a * mean
    return a, b


def draw_affine_noise(num_features: int, shift: float, spread: float, ctx) -> Tuple:
    """Draw one step's noise: per-channel shift ~ U(-shift, shift), scale log-uniform in [1/spread, spread].

    Parameters
    ----------
    num_features : int
        Channels C.
    shift : float
        Largest absolute shift (0: none).
    spread : float
        At least 1; the scale lies between ``1 / spread`` and ``spread`` (1: none).
    ctx : Context
        Where to draw (MXNet's generator, seeded by ``mx.random.seed``).

    Returns
    -------
    (scale, shift) : NDArray, NDArray
        Each (1, C).
    """
    if shift < 0 or spread < 1:
        raise ValueError(f"need shift >= 0 and spread >= 1, got {shift!r} and {spread!r}")
    bound = math.log(spread)
    log_scale = nd.random.uniform(-bound, bound, shape=(1, num_features), ctx=ctx)
    offset = nd.random.uniform(-shift, shift, shape=(1, num_features), ctx=ctx)
    return nd.exp(log_scale), offset


def combine_moments(
    counts: Sequence[int], means: Sequence[np.ndarray], variances: Sequence[np.ndarray]
) -> Tuple[np.ndarray, np.ndarray]:
    """Return the mean and (biased) variance of the union of batches from their own ones.

    Parameters
    ----------
    counts : sequence of int
        Values per channel in each batch (N*H*W).
    means, variances : sequence of numpy arrays
        Each batch's per-channel mean and biased variance, shape (C,).

    Returns
    -------
    (mean, variance) : numpy arrays (C,), float64
        ``E[x]`` and ``E[x^2] - E[x]^2`` over every value of every batch.
    """
    n = np.asarray(counts, dtype="float64")[:, None]  # (batches, 1)
    m = np.asarray(means, dtype="float64")  # (batches, C)
    v = np.asarray(variances, dtype="float64")  # (batches, C)
    mean = (n * m).sum(axis=0) / n.sum()
    second = (n * (v + m**2)).sum(axis=0) / n.sum()
    return mean, np.maximum(second - mean**2, 0.0)


class PartialBatchNorm(gluon.Block):
    """Batch normalization that centres only, scales only, or both (``part``).

    Moving statistics, their update (MXNet's form: ``momentum`` weighs the moving value)
    and prediction with them work as in :class:`gluon_bn.BatchNorm`; the computation is
    :func:`partial_coefficients` then :func:`channel_affine`. Gradients flow through the
    batch statistics (autograd).

    Parameters
    ----------
    num_features : int
        Channels (4-D) or features (2-D).
    num_dims : int
        2 or 4.
    part : {"both", "mean", "variance"}
        What to normalize.
    eps, momentum : float
        As :class:`gluon_bn.BatchNorm` with ``momentum_on="moving"``.
    """

    def __init__(
        self,
        num_features: int,
        num_dims: int,
        *,
        part: str = "both",
        eps: float = 1e-5,
        momentum: float = 0.9,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if part not in PARTS:
            raise ValueError(f"part must be one of {PARTS}, got {part!r}")
        self.num_features, self.num_dims = num_features, num_dims
        self.part, self.eps, self.momentum = part, eps, momentum
        shape = stats_shape(num_features, num_dims)
        statistic = dict(shape=shape, grad_req="null", differentiable=False)
        with self.name_scope():
            self.gamma = self.params.get("gamma", shape=shape, init=init.One())
            self.beta = self.params.get("beta", shape=shape, init=init.Zero())
            self.moving_mean = self.params.get("moving_mean", init=init.Zero(), **statistic)
            self.moving_var = self.params.get("moving_var", init=init.One(), **statistic)

    def forward(self, X):
        """Normalize `X` with the batch statistics (training) or the moving ones (prediction)."""
        check_input(X, self.num_features, self.num_dims)
        ctx = X.context
        moving = [self.moving_mean.data(ctx), self.moving_var.data(ctx)]
        if autograd.is_training():
            mean, var = fast.moments(X)  # (1, C) each, differentiable
            with autograd.pause():
                for stat, batch in zip(moving, (mean, var)):
                    stat[:] = (
                        self.momentum * stat.reshape((1, -1)) + (1 - self.momentum) * batch
                    ).reshape(stat.shape)
        else:
            mean, var = moving
        a, b = partial_coefficients(
            mean, var, self.gamma.data(ctx), self.beta.data(ctx), part=self.part, eps=self.eps
        )
        return channel_affine(X, a, b)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.num_features}, num_dims={self.num_dims}, part={self.part!r})"


class AffineNoise(gluon.Block):
    """In training, a random per-channel scale and shift drawn anew at every call; identity in prediction.

    Placed after a BN layer, it moves the distribution of every channel the next layer sees
    at every step: internal covariate shift that BN does not remove.

    Parameters
    ----------
    num_features : int
        Channels C.
    shift, spread : float
        See :func:`draw_affine_noise`.
    """

    def __init__(self, num_features: int, *, shift: float = 1.0, spread: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        if shift < 0 or spread < 1:
            raise ValueError(f"need shift >= 0 and spread >= 1, got {shift!r} and {spread!r}")
        self.num_features, self.shift, self.spread = num_features, shift, spread

    def forward(self, X):
        """Return `X` with this step's random scale and shift (training), or `X` itself."""
        if not autograd.is_training():
            return X
        scale, offset = draw_affine_noise(self.num_features, self.shift, self.spread, X.context)
        return channel_affine(X, scale, offset)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.num_features}, shift={self.shift}, spread={self.spread})"
        )


def statistics_of(layer) -> Optional[Tuple]:
    """Return the (mean, variance) Parameters a BN layer predicts with, or None for other blocks."""
    for names in (("running_mean", "running_var"), ("moving_mean", "moving_var")):
        if all(isinstance(getattr(layer, n, None), gluon.Parameter) for n in names):
            return tuple(getattr(layer, n) for n in names)
    return None


def recompute_statistics(net: "gluon.nn.Sequential", images: Sequence, ctx) -> int:
    """Set every BN layer's prediction statistics of `net` to those of the whole of `images`.

    Layer by layer from the input: the statistics of layer k are the mean and variance of
    its input over every example of `images`, computed in prediction mode with layers
    before k already using their recomputed statistics (what "use the entire data set" means
    for a stack of BN layers).

    Parameters
    ----------
    net : gluon.nn.Sequential
        A flat Sequential (e.g. :func:`gluon_bn.models.lenet`), its layers directly inside.
    images : sequence of NDArray
        Batches of inputs, each (B, 1, 28, 28); iterated once per BN layer.
    ctx : Context
        Where `net` lives.

    Returns
    -------
    int
        How many layers were updated.
    """
    blocks = list(net._children.values())
    updated = 0
    for index, block in enumerate(blocks):
        stats = statistics_of(block)
        if stats is None:
            continue
        prefix = net[:index]
        counts, means, variances = [], [], []
        for X in images:
            H = prefix(X.as_in_context(ctx)) if index else X.as_in_context(ctx)
            mean, var = fast.moments(H)  # (1, C) each
            counts.append(H.size // H.shape[1])
            means.append(mean.asnumpy().ravel())
            variances.append(var.asnumpy().ravel())
        mean, var = combine_moments(counts, means, variances)
        for param, value in zip(stats, (mean, var)):
            param.set_data(nd.array(value.reshape(param.shape), dtype=param.dtype))
        updated += 1
    return updated
