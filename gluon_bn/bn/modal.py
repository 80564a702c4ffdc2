"""HybridBlocks compiled once per mode: one graph for training, one for prediction.

MXNet's own BatchNorm reads the mode inside a compiled graph (``OpContext::is_train``), so
one graph serves both modes. An operator loaded through MXNet 1.9's extension API cannot:
``CustomFComputeDispatcher`` in ``src/c_api/c_api.cc`` hands the library the attributes,
tensors and memory of a call, never ``ctx.is_train``, and ``lib_api.h``'s compute function
type has no place for it. So the native layer (:class:`gluon_bn.bn.layer.NativeBatchNorm`)
writes the mode into its graph as an attribute, and a block that compiles it keeps one
cached graph per mode, chosen by ``autograd.is_training()`` at each call. Each graph is the
whole block, compiled as Gluon compiles any HybridBlock; switching costs nothing once both
exist.

The switch swaps Gluon 1.9's cache attributes of a HybridBlock (``_CACHE``), which are
private; ``tests/test_modal.py`` checks that they still are what this module expects.
"""

from __future__ import annotations

import threading
from typing import Optional

from gluon_bn.runtime.loader import mx

autograd = mx.autograd
nn = mx.gluon.nn

# What HybridBlock._build_cache and _get_graph fill in (MXNet 1.9's gluon/block.py).
_CACHE = ("_cached_graph", "_cached_op", "_cached_op_args", "_in_format", "_out_format")
_tracing = threading.local()


def traced_mode() -> Optional[bool]:
    """Return the mode a :class:`ModeGraphs` block is compiling a graph for, or None outside one."""
    return getattr(_tracing, "training", None)


class ModeGraphs(mx.gluon.HybridBlock):
    """Mixin for a HybridBlock: once hybridized, one compiled graph per mode.

    Blocks inside it that need the mode while their graph is built read
    :func:`traced_mode`.
    """

    def _call_cached_op(self, *args):
        training = autograd.is_training()
        current = getattr(self, "_graph_mode", None)
        if current is not training:
            graphs = getattr(self, "_mode_graphs", {})
            if current is not None:
                graphs[current] = tuple(getattr(self, name) for name in _CACHE)
            saved = graphs.pop(training, None)
            super()._clear_cached_op()
            if saved is not None:
                for name, value in zip(_CACHE, saved):
                    setattr(self, name, value)
            self._mode_graphs, self._graph_mode = graphs, training
        outer, _tracing.training = traced_mode(), training
        try:
            return super()._call_cached_op(*args)
        finally:
            _tracing.training = outer

    def _clear_cached_op(self):
        super()._clear_cached_op()
        self._mode_graphs, self._graph_mode = {}, None


class ModeHybridSequential(ModeGraphs, nn.HybridSequential):
    """``nn.HybridSequential`` with one compiled graph per mode (see the module)."""


def needs_mode_graphs(block: mx.gluon.Block) -> bool:
    """Return whether `block` is, or holds, a block that compiles one graph per mode."""
    return isinstance(block, ModeGraphs) or any(
        needs_mode_graphs(child) for child in block._children.values()
    )
