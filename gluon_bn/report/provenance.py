"""Where a run ran: versions, device, engine and thread settings, recorded with every result."""

from __future__ import annotations

import os
import platform
from typing import Dict

import numpy as np

from gluon_bn.runtime import cpu_description, threads_in_effect
from gluon_bn.runtime import describe as describe_runtime
from gluon_bn.runtime.loader import LOADED_WITH, mx
from gluon_bn.runtime.machine import onednn_isa


def environment(ctx=None) -> Dict[str, object]:
    """Return versions, device and thread settings: what a reader needs to weigh the times."""
    features = mx.runtime.Features()
    return {
        "python": platform.python_version(),
        "mxnet": mx.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "device": str(ctx) if ctx is not None else None,
        "mkldnn": features.is_enabled("MKLDNN"),
        "cuda": features.is_enabled("CUDA"),
        "threads": dict(LOADED_WITH),
        # what a seed's numbers depend on (--threads N repeats them); see gluon_bn.runtime
        "omp_threads": threads_in_effect(LOADED_WITH),
        "runtime": describe_runtime(LOADED_WITH),
        # what else a seed's numbers depend on: the instruction set oneDNN dispatches to
        # (asked of oneDNN itself, see gluon_bn.runtime.machine.onednn_isa; --isa caps it)
        "onednn_isa": onednn_isa(LOADED_WITH) if features.is_enabled("MKLDNN") else None,
        **cpu_description(),
    }
