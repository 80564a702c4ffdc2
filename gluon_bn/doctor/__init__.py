"""``gluon-bn doctor``: is this installation able to run ``gluon-bn reproduce``, and how fast?

Each ``check_*`` function returns a list of :class:`Check` results and prints nothing, so
each can be tested on its own (the GPU check takes its probes as arguments);
:func:`run_doctor` prints them. The installation can run the main job (exit 0) when MXNet
imports and computes, numpy is one it works with, and Fashion-MNIST is found and verified;
GPUs, CUDA libraries and thread settings only inform (training falls back to the CPU).

MXNet is imported inside the checks, never at module level, so that a broken MXNet is
reported rather than raised.
"""

from __future__ import annotations

import glob
import importlib
import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, TextIO, Tuple

from gluon_bn.doctor.check import FAIL, INFO, OK, WARN, Check
from gluon_bn.doctor.gpu import (
    CUDA_LIBRARIES,
    MXNET_CU112_ARCHS,
    check_cuda_libraries,
    check_gpus,
    cu112_runs_on,
    find_cuda_libraries,
    query_nvidia_smi,
)
from gluon_bn.doctor.install import (
    NUMPY_LIMIT,
    SUPPORTED_PYTHON,
    check_data,
    check_features,
    check_mxnet_numpy,
    check_native,
    check_python,
    check_threads,
)


def run_checks(data_root: Optional[str] = None) -> List[Check]:
    """Run every check and return the results in the order they are printed."""
    checks = check_python() + check_mxnet_numpy()
    if any(c.status == FAIL and c.topic == "mxnet" for c in checks):
        return checks + [Check("data", INFO, "data not checked: MXNet does not work")]
    checks += check_features() + check_threads() + check_data(data_root)
    checks += check_gpus() + check_cuda_libraries() + check_native()
    return checks


def ready(checks: Sequence[Check]) -> bool:
    """Return whether ``gluon-bn reproduce`` can run: no check FAILed."""
    return not any(c.status == FAIL for c in checks)


def format_checks(checks: Sequence[Check]) -> str:
    """Return the report `run_doctor` prints."""
    lines = ["gluon-bn doctor"]
    for check in checks:
        lines.append(f"  [{check.status:>4}] {check.topic:8s} {check.message}")
        lines += [f"{'':17s}{d}" for d in check.details]
        if check.fix and check.status in (WARN, FAIL):
            lines.append(f"{'':17s}fix: {check.fix}")
    if ready(checks):
        gpu = any(c.topic == "gpu" and c.status == OK for c in checks)
        lines.append(
            f"Ready: `gluon-bn reproduce` can run ({'on a GPU' if gpu else 'on the CPU'})."
        )
    else:
        lines.append("Not ready: fix the FAIL lines above:")
        lines += [f"  - {c.fix or c.message}" for c in checks if c.status == FAIL]
    return "\n".join(lines)


def run_doctor(file: Optional[TextIO] = None, data_root: Optional[str] = None) -> int:
    """Print the doctor's report; return 0 when ``gluon-bn reproduce`` can run, else 1."""
    checks = run_checks(data_root)
    print(format_checks(checks), file=file or sys.stdout, flush=True)
    return 0 if ready(checks) else 1
