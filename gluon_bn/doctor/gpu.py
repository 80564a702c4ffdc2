"""The doctor's GPU checks: the GPUs nvidia-smi sees, whether mxnet-cu112's kernels run on them,
and the CUDA libraries the CUDA build loads. They inform; training falls back to the CPU."""

from __future__ import annotations

import glob
import importlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from gluon_bn.doctor.check import INFO, OK, WARN, Check

# mxnet-cu112 1.9.1 ships machine code (cubins) for these architectures and no PTX, so
# nothing can be JIT-compiled for a newer one. A cubin runs on its own major architecture
# at the same or a higher minor version (sm_86 code runs on 8.6, 8.7, 8.9).
MXNET_CU112_ARCHS = ((5, 0), (6, 0), (7, 0), (8, 0), (8, 6))
CUDA_LIBRARIES = ("libcudart.so.11", "libcudnn.so.8", "libnccl.so.2")


def query_nvidia_smi(timeout: float = 15.0) -> Optional[List[Tuple[str, str]]]:
    """Return ``(name, compute capability)`` per GPU from nvidia-smi, or None without it.

    The capability is "unknown" when the driver's nvidia-smi cannot report it.
    """
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    for fields in ("name,compute_cap", "name"):
        try:
            done = subprocess.run(
                [exe, f"--query-gpu={fields}", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        if done.returncode == 0:
            rows = []
            for line in done.stdout.splitlines():
                if line.strip():
                    parts = [p.strip() for p in line.split(",")]
                    rows.append((parts[0], parts[1] if len(parts) > 1 else "unknown"))
            return rows
    return None


def cu112_runs_on(capability: str) -> Optional[bool]:
    """Return whether mxnet-cu112 1.9.1's kernels can run at `capability` (e.g. "9.0"), None if unknown."""
    match = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", capability or "")
    if not match:
        return None
    major, minor = int(match.group(1)), int(match.group(2))
    return any(major == a and minor >= b for a, b in MXNET_CU112_ARCHS)


def _cuda_build() -> bool:
    try:
        return bool(importlib.import_module("mxnet").runtime.Features().is_enabled("CUDA"))
    except Exception:  # pylint: disable=broad-except
        return False


def check_gpus(
    *,
    count: Optional[Callable[[], int]] = None,
    probe: Optional[Callable[[int], Tuple[bool, str]]] = None,
    query: Optional[Callable[[], Optional[List[Tuple[str, str]]]]] = None,
    cuda_build: Optional[bool] = None,
) -> List[Check]:
    """Return the GPUs MXNet sees, their compute capability and whether MXNet runs there.

    Never FAIL: without a usable GPU ``--device auto`` trains on the CPU.

    Parameters
    ----------
    count : callable, optional
        Number of GPUs MXNet sees (default :func:`gluon_bn.device.num_gpus`).
    probe : callable, optional
        ``index -> (ok, reason)`` (default :func:`gluon_bn.device.probe_gpu`).
    query : callable, optional
        ``() -> [(name, compute capability)]`` or None (default :func:`query_nvidia_smi`).
    cuda_build : bool, optional
        Whether MXNet was built with CUDA (default: asked from ``mx.runtime.Features``).
    """
    if count is None or probe is None:
        device = importlib.import_module("gluon_bn.device")
        count = count or device.num_gpus
        probe = probe or device.probe_gpu
    query = query or query_nvidia_smi
    cuda_build = _cuda_build() if cuda_build is None else cuda_build
    n = count()
    smi = query()
    build = "MXNet's CUDA build" if cuda_build else "MXNet's CPU build"
    if n == 0:
        if smi:
            names = ", ".join(f"{name} (compute capability {cap})" for name, cap in smi)
            fix = (
                "install the CUDA wheel instead of the CPU one: pip uninstall mxnet && "
                "pip install 'gluon-bn[cu112]'"
                if not cuda_build
                else "MXNet sees none of them: check CUDA_VISIBLE_DEVICES and the driver "
                "(nvidia-smi works, so the driver is loaded)"
            )
            return [
                Check(
                    "gpu",
                    WARN,
                    f"no GPU usable by MXNet, though nvidia-smi lists "
                    f"{len(smi)}: {names} ({build})",
                    fix=fix,
                )
            ]
        return [
            Check("gpu", INFO, f"no GPU ({build}, no NVIDIA GPU found): training runs on the CPU")
        ]
    caps = (
        smi
        if smi is not None and len(smi) == n and not os.environ.get("CUDA_VISIBLE_DEVICES")
        else [("?", "unknown")] * n
    )
    checks = []
    for i in range(n):
        name, cap = caps[i]
        expected = cu112_runs_on(cap)
        ok, reason = probe(i)
        label = f"gpu({i}) {name}, compute capability {cap}"
        if ok:
            checks.append(Check("gpu", OK, f"{label}: MXNet kernels run there"))
            continue
        fix = "use --device cpu (or --device auto, which falls back to the CPU by itself)"
        if expected is False:
            why = (
                f"mxnet-cu112 1.9.1 carries machine code for sm_50/60/70/80/86 and no PTX, "
                f"so a compute capability {cap} GPU (e.g. Hopper, sm_90) cannot run its "
                f"kernels"
            )
            checks.append(
                Check(
                    "gpu",
                    WARN,
                    f"{label}: MXNet cannot run kernels here",
                    [reason, why],
                    fix=fix + ", or a GPU of compute capability 5.0-8.9",
                )
            )
        else:
            checks.append(
                Check(
                    "gpu",
                    WARN,
                    f"{label}: MXNet cannot run kernels here",
                    [reason],
                    fix=fix + "; check the CUDA libraries below",
                )
            )
    return checks


def find_cuda_libraries(
    site_dirs: Optional[Sequence[str]] = None, ldconfig_text: Optional[str] = None
) -> Dict[str, List[str]]:
    """Return, for each of :data:`CUDA_LIBRARIES`, the paths where it was found.

    Parameters
    ----------
    site_dirs : sequence of str, optional
        Directories holding ``nvidia/*/lib`` (pip's nvidia-*-cu11 wheels); default sys.path.
    ldconfig_text : str, optional
        Output of ``ldconfig -p``; default: run it (empty if unavailable).
    """
    site_dirs = [p for p in sys.path if p] if site_dirs is None else site_dirs
    if ldconfig_text is None:
        ldconfig_text = ""
        exe = shutil.which("ldconfig") or (
            "/sbin/ldconfig" if os.path.exists("/sbin/ldconfig") else None
        )
        if exe:
            try:
                ldconfig_text = subprocess.run(
                    [exe, "-p"], capture_output=True, text=True, timeout=15, check=False
                ).stdout
            except (OSError, subprocess.SubprocessError):
                ldconfig_text = ""
    found: Dict[str, List[str]] = {lib: [] for lib in CUDA_LIBRARIES}
    for lib in CUDA_LIBRARIES:
        for site in site_dirs:
            for path in sorted(glob.glob(os.path.join(site, "nvidia", "*", "lib", lib + "*"))):
                if path not in found[lib]:
                    found[lib].append(path)
        for line in ldconfig_text.splitlines():
            name, _, path = line.strip().partition(" => ")
            if name.startswith(lib) and path and path.strip() not in found[lib]:
                found[lib].append(path.strip())
    return found


def check_cuda_libraries(
    found: Optional[Dict[str, List[str]]] = None, cuda_build: Optional[bool] = None
) -> List[Check]:
    """Return which CUDA 11 libraries (cudart 11, cuDNN 8, NCCL 2) are found and where."""
    found = find_cuda_libraries() if found is None else found
    cuda_build = _cuda_build() if cuda_build is None else cuda_build
    details = [
        f"{lib}: {', '.join(paths) if paths else 'not found'}" for lib, paths in found.items()
    ]
    missing = [lib for lib, paths in found.items() if not paths]
    if not cuda_build:
        return [Check("cuda", INFO, "CUDA libraries: not needed by MXNet's CPU build", details)]
    if missing:
        return [
            Check(
                "cuda",
                WARN,
                f"CUDA libraries missing: {', '.join(missing)}",
                details,
                fix="pip install 'gluon-bn[cu112]' (brings the nvidia-*-cu11 libraries)",
            )
        ]
    return [Check("cuda", OK, "CUDA libraries found", details)]
