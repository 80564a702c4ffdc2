"""Where a run ran: versions, device, engine and thread settings, recorded with every result."""
from __future__ import annotations

import os
import platform
from typing import Dict

import numpy as np

from gluon_bn._mxnet import LOADED_WITH, mx
from gluon_bn.runtime import describe as describe_runtime, threads_in_effect


def cpu_description() -> Dict[str, object]:
    """Return the CPU's model name and its vector extensions, from /proc/cpuinfo (Linux).

    MXNet's CPU kernels pick their instructions at run time, so the same seed can round
    differently on another CPU model: records keep what they ran on.
    """
    model, flags = None, set()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model is None:
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    vector = sorted(f for f in flags if f.startswith(("avx", "fma", "sse4")))
    return {"cpu_model": model, "cpu_vector_extensions": vector}


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
        **cpu_description(),
    }
