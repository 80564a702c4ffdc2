"""Where a run ran: versions, device, engine and thread settings, recorded with every result."""
from __future__ import annotations

import os
import platform
from typing import Dict

import numpy as np

from gluon_bn._mxnet import LOADED_WITH, mx
from gluon_bn.runtime import describe as describe_runtime


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
        "runtime": describe_runtime(LOADED_WITH),
    }
