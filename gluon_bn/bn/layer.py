"""The scratch BatchNorm layer: bookkeeping around :mod:`gluon_bn.bn.functional`.

The layer owns gamma and beta (trainable Parameters) and the moving statistics. The moving
statistics are Parameters too, with ``grad_req='null'`` as in Gluon's own ``nn.BatchNorm``:
that is what makes them follow the input's device (one copy per context the net was
initialised on, the copy used being the one on the input's device), survive
``save_parameters``/``load_parameters``, and get averaged across devices when saved.

The faithful computation runs in one of two parameter-free kernels, one per mode, so that
``hybridize()`` compiles each into a graph whose outputs include the new moving
statistics; the layer writes them back after the call. ``impl="fast"`` calls its twin
imperatively and writes back the same way.

``impl="native"`` makes a :class:`NativeBatchNorm`, a HybridBlock: its one operator
updates the moving statistics itself, so a hybridized network (``hybridize_network(net,
"graph")``) compiles it with the rest into one graph, as it compiles ``nn.BatchNorm``.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from gluon_bn.bn import fast, native
from gluon_bn.bn.dialect import LegacyHybridBlock, as_kind, as_legacy
from gluon_bn.bn.functional import (
    batch_norm_step,
    check_block_input,
    check_conventions,
    check_input,
    reduction_axes,
    stats_shape,
)
from gluon_bn.bn.modal import ModeGraphs, traced_mode
from gluon_bn.options import BN_IMPLS
from gluon_bn.runtime.loader import mx

nd = mx.nd
autograd = mx.autograd
gluon = mx.gluon
init = mx.init

MOVING_INIT = ("fixed", "first_batch")


class _BatchNormKernel(LegacyHybridBlock):
    """One mode (training or prediction) of the computation, with no parameters of its own."""

    def __init__(
        self,
        training: bool,
        num_dims: int,
        eps: float,
        momentum: float,
        momentum_on: str,
        normalize_by: str,
        update_in_prediction: bool,
        first_batch: bool,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._step = dict(
            training=training,
            num_dims=num_dims,
            eps=eps,
            momentum=momentum,
            momentum_on=momentum_on,
            normalize_by=normalize_by,
            update_in_prediction=update_in_prediction,
        )
        self.updates = training or update_in_prediction
        self._first_batch = first_batch and self.updates

    def compute(self, F, X, gamma, beta, moving_mean, moving_var, seeded=None):
        Y, new_mean, new_var = batch_norm_step(
            F,
            X,
            gamma,
            beta,
            moving_mean,
            moving_var,
            seeded=seeded if self._first_batch else None,
            **self._step,
        )
        # Without an update, only Y leaves the graph (an input cannot also be an output).
        return (Y, new_mean, new_var) if self.updates else Y


class BatchNorm(gluon.Block):
    """Batch normalization from scratch, as the documents build it, with Gluon's bookkeeping.

    Parameters
    ----------
    num_features : int
        Outputs of the preceding dense layer or channels of the preceding convolution.
    num_dims : int
        2 after a dense layer (input (N, C)), 4 after a convolution (input (N, C, H, W)).
    eps : float
        Added to the variance (default 1e-5, as Gluon and every document).
    momentum : float
        Moving-average weight, read according to `momentum_on` (default 0.9, as Gluon).
    momentum_on : {"moving", "batch"}
        ``"moving"``: momentum weighs the old moving statistic (MXNet, documents 001, 002, 004);
        ``"batch"``: it weighs the batch statistic (documents 000 and 003 as written).
    moving_var_init : float
        Starting value of the moving variance: 1 as Gluon and documents 000/002, 0 in seeds
        001 and 003.
    moving_init : {"fixed", "first_batch"}
        ``"first_batch"``: the first batch's statistics replace the starting values instead
        of being averaged in (document 004).
    normalize_by : {"sqrt_var_eps", "std_eps"}
        See :mod:`gluon_bn.bn.functional`.
    update_in_prediction : bool
        Keep updating the moving statistics in prediction mode (document 004).
    gamma_initializer, beta_initializer : mx.init.Initializer, optional
        Default ones and zeros.
    impl : {"faithful", "fast", "native"}
        ``"faithful"`` runs :mod:`gluon_bn.bn.functional` (the documents' code, hybridizable);
        ``"fast"`` runs :mod:`gluon_bn.bn.fast` (same numbers, hand-written backward,
        imperative only); ``"native"`` runs the whole layer, moving statistics included,
        in :mod:`gluon_bn.bn.native`'s compiled C++ operator (CPU, float32/float64,
        numbers equal to float32 rounding; built on first use with the machine's C++
        compiler, raising :class:`~gluon_bn.bn.native.NativeUnavailable` here when that
        cannot be done). ``BatchNorm(..., impl="native")`` returns a
        :class:`NativeBatchNorm`, which is a HybridBlock.

    Both array APIs work: the layer returns ``mx.np`` arrays for ``mx.np`` input (numpy
    mode, document 000) and ``mx.nd`` arrays for ``mx.nd`` input. In numpy mode a legacy
    input is refused with a TypeError that says how to convert it (Gluon itself would reject
    the legacy output).
    """

    def __new__(cls, *args, impl: str = "faithful", **kwargs):
        # The native layer is one operator that MXNet can compile into a graph: a HybridBlock.
        if cls is BatchNorm and impl == "native":
            cls = NativeBatchNorm
        return super().__new__(cls)

    def __init__(
        self,
        num_features: int,
        num_dims: int,
        *,
        eps: float = 1e-5,
        momentum: float = 0.9,
        momentum_on: str = "moving",
        moving_var_init: float = 1.0,
        moving_init: str = "fixed",
        normalize_by: str = "sqrt_var_eps",
        update_in_prediction: bool = False,
        gamma_initializer: Optional[init.Initializer] = None,
        beta_initializer: Optional[init.Initializer] = None,
        impl: str = "faithful",
        **kwargs,
    ):
        if "blocked_output" in kwargs:  # NativeBatchNorm takes it before this point
            raise TypeError(
                f"blocked_output is an option of impl='native' only, not of impl={impl!r}"
            )
        super().__init__(**kwargs)
        if impl not in BN_IMPLS:
            raise ValueError(f"impl must be one of {BN_IMPLS}, got {impl!r}")
        if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"num_features must be a positive int, got {num_features!r}")
        reduction_axes(num_dims)  # raises ValueError for anything but 2 or 4
        if impl == "native":
            native.load()  # fail here, with the reason, rather than at the first batch
        check_conventions(momentum_on, normalize_by)
        if moving_init not in MOVING_INIT:
            raise ValueError(f"moving_init must be one of {MOVING_INIT}, got {moving_init!r}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must lie in [0, 1], got {momentum!r}")
        self.num_features, self.num_dims, self.impl = num_features, num_dims, impl
        self._conventions = dict(
            eps=eps,
            momentum=momentum,
            momentum_on=momentum_on,
            normalize_by=normalize_by,
            update_in_prediction=update_in_prediction,
        )
        shape = stats_shape(num_features, num_dims)
        first_batch = moving_init == "first_batch"
        statistic = dict(shape=shape, grad_req="null", differentiable=False)
        with self.name_scope():
            self.gamma = self.params.get("gamma", shape=shape, init=gamma_initializer or init.One())
            self.beta = self.params.get("beta", shape=shape, init=beta_initializer or init.Zero())
            self.moving_mean = self.params.get("moving_mean", init=init.Zero(), **statistic)
            self.moving_var = self.params.get(
                "moving_var", init=init.Constant(moving_var_init), **statistic
            )
            # 0 until the first batch has seeded the moving statistics, then 1.
            self.seeded = (
                self.params.get(
                    "seeded", shape=(1,), init=init.Zero(), grad_req="null", differentiable=False
                )
                if first_batch
                else None
            )
            if impl == "faithful":
                self.train_kernel = _BatchNormKernel(
                    True, num_dims, first_batch=first_batch, **self._conventions
                )
                self.predict_kernel = _BatchNormKernel(
                    False, num_dims, first_batch=first_batch, **self._conventions
                )
        self._repr = (
            f"{num_features}, num_dims={num_dims}, eps={eps}, momentum={momentum}, "
            f"momentum_on={momentum_on!r}, moving_var_init={moving_var_init}, "
            f"moving_init={moving_init!r}, normalize_by={normalize_by!r}, "
            f"update_in_prediction={update_in_prediction}, impl={impl!r}"
        )

    def _check(self, X) -> bool:
        """Validate `X` against the layer; return whether it is an ``mx.np`` array."""
        check_input(X, self.num_features, self.num_dims)
        numpy_api = check_block_input(X, BatchNorm.__name__)
        dtype = self.gamma.dtype
        if np.dtype(X.dtype) != np.dtype(dtype):  # MXNet would only say "Incompatible attr in node"
            name, want = np.dtype(X.dtype).name, np.dtype(dtype).name
            raise TypeError(
                f"this BatchNorm holds {want} parameters but got {name} input; cast the layer "
                f"(layer.cast({name!r})) or the input (X.astype({want!r}))"
            )
        return numpy_api

    def forward(self, X):
        numpy_api = self._check(X)
        ctx = X.context
        # Legacy views of this device's copies: writes below land in the Parameters, and
        # gamma's and beta's views keep autograd's link to their gradients.
        stats = [as_legacy(self.moving_mean.data(ctx)), as_legacy(self.moving_var.data(ctx))]
        seeded = as_legacy(self.seeded.data(ctx)) if self.seeded is not None else None
        gamma, beta = as_legacy(self.gamma.data(ctx)), as_legacy(self.beta.data(ctx))
        X = as_legacy(X)
        if self.impl == "fast":
            Y, new_mean, new_var = fast.batch_norm(
                X, gamma, beta, *stats, seeded=seeded, **self._conventions
            )
            updated = new_mean is not stats[0]
        else:
            kernel = self.train_kernel if autograd.is_training() else self.predict_kernel
            extra = [seeded] if kernel._first_batch else []
            out = kernel(X, gamma, beta, *stats, *extra)
            updated = kernel.updates
            Y, new_mean, new_var = (as_legacy(a) for a in (out if updated else (out, None, None)))
        if updated:
            # Write the new statistics into this device's copies, outside autograd's history.
            with autograd.pause():
                stats[0][:] = new_mean
                stats[1][:] = new_var
                if seeded is not None:
                    seeded[:] = 1
        return as_kind(Y, numpy_api)

    def __repr__(self) -> str:
        return f"{BatchNorm.__name__}({self._repr})"


class NativeBatchNorm(BatchNorm, ModeGraphs, LegacyHybridBlock):
    """``BatchNorm(..., impl="native")``: the whole layer is :func:`gluon_bn.bn.native.layer_step`.

    A HybridBlock: called imperatively it makes one operator call; hybridized, alone or in a
    network compiled by :func:`gluon_bn.models.hybridize_network`, it is one node of each
    mode's graph (:mod:`gluon_bn.bn.modal`), and the graph updates the moving statistics
    itself, once per training step, on the input's device (they are the operator's
    auxiliary inputs, as Gluon's ``nn.BatchNorm``'s are). Build it as
    ``BatchNorm(..., impl="native")``; the arguments are :class:`BatchNorm`'s, and one more:

    Parameters
    ----------
    blocked_output : bool, optional
        Hand the output on in oneDNN's blocked layout through an exact identity
        (:func:`gluon_bn.bn.native.blocked_layout`), as MXNet's own BatchNorm keeps it for
        the activation and pooling after it. Default: where
        :func:`gluon_bn.bn.native.hands_on_blocked` says so (4-D float32 input whose
        channels fill whole blocks); True means every 4-D input (a dense layer's has no
        layout to keep, so it is left alone). The values are the same either way.
    """

    def __init__(
        self, num_features: int, num_dims: int, *, blocked_output: Optional[bool] = None, **kwargs
    ):
        super().__init__(num_features, num_dims, **kwargs)
        self.blocked_output = blocked_output

    def _hands_on_blocked(self) -> bool:
        if self.blocked_output is not None:  # a dense layer's (N, C) output has no layout
            return bool(self.blocked_output) and self.num_dims == 4
        return native.hands_on_blocked(self.num_features, self.num_dims, self.gamma.dtype)

    def forward(self, X):
        if isinstance(X, nd.NDArray):  # a call with arrays (a symbol means a graph is traced)
            numpy_api = self._check(X)
            native.check_input(X)
            return as_kind(as_legacy(LegacyHybridBlock.forward(self, X)), numpy_api)
        return LegacyHybridBlock.forward(self, X)

    def compute(self, F, X, gamma, beta, moving_mean, moving_var, seeded=None):
        training = autograd.is_training() if F is nd else traced_mode()
        if training is None:
            raise RuntimeError(
                "BatchNorm(impl='native') is compiled once per mode (training, prediction), "
                "which this container's single graph cannot hold: compile the network with "
                "gluon_bn.models.hybridize_network(net, 'graph'), put the layers in a "
                "gluon_bn.bn.modal.ModeHybridSequential, or hybridize the layer alone"
            )
        Y = native.layer_step(
            F,
            X,
            gamma,
            beta,
            moving_mean,
            moving_var,
            seeded,
            training=training,
            **self._conventions,
        )
        if not self._hands_on_blocked():
            return Y
        return native.blocked_layout(
            F, Y, self.num_features, self.gamma.dtype, ctx=X.context if F is nd else None
        )
