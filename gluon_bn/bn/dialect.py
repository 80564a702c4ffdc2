"""MXNet's two array APIs side by side: the legacy ``mx.nd`` arrays (documents 001, 003, 004)
and the numpy-compatible ``mx.np`` arrays of ``npx.set_np()`` (document 000). The mathematics is
written once, in legacy operators (:mod:`gluon_bn.bn.functional`); these helpers give it legacy
views of either kind and hand results back in the kind they came in.
"""

from __future__ import annotations

from gluon_bn.runtime.loader import mx


def is_numpy_array(x) -> bool:
    """Return True for MXNet numpy-API values (``mx.np.ndarray`` or a numpy-API Symbol)."""
    return isinstance(x, (mx.np.ndarray, mx.sym.np._Symbol))


def as_legacy(x):
    """Return `x` as a legacy ``mx.nd``/``mx.sym`` value over the same memory; None stays None."""
    return x.as_nd_ndarray() if is_numpy_array(x) else x


def as_kind(x, numpy_api: bool):
    """Return legacy `x` as an ``mx.np`` value when `numpy_api` is true, else unchanged."""
    if numpy_api and x is not None and not is_numpy_array(x):
        return x.as_np_ndarray()
    return x


class LegacyHybridBlock(mx.gluon.HybridBlock):
    """A HybridBlock whose `compute` is written in legacy operators, in either numpy mode.

    In numpy mode (``npx.set_np()``) Gluon hands a HybridBlock ``mx.np`` arrays or symbols
    and requires them back; this converts the inputs to legacy views, calls
    ``compute(F, *inputs)`` and returns its output (one value or a tuple) in the kind the
    mode requires. Parameters, which Gluon passes by name, are converted too.
    """

    def compute(self, F, *inputs, **params):
        raise NotImplementedError

    def hybrid_forward(self, F, *inputs, **params):
        out = self.compute(
            F, *(as_legacy(a) for a in inputs), **{name: as_legacy(a) for name, a in params.items()}
        )
        numpy_api = mx.util.is_np_array()
        if isinstance(out, tuple):
            return tuple(as_kind(a, numpy_api) for a in out)
        return as_kind(out, numpy_api)


class numpy_mode:
    """Context manager: MXNet's numpy mode (``npx.set_np()``) inside, the previous mode after."""

    def __enter__(self) -> "numpy_mode":
        self._was_on = mx.util.is_np_array()
        mx.npx.set_np()
        return self

    def __exit__(self, *exc) -> None:
        if not self._was_on:
            mx.npx.reset_np()
