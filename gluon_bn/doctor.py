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

OK, INFO, WARN, FAIL = "ok", "info", "warn", "FAIL"

# mxnet-cu112 1.9.1 ships machine code (cubins) for these architectures and no PTX, so
# nothing can be JIT-compiled for a newer one. A cubin runs on its own major architecture
# at the same or a higher minor version (sm_86 code runs on 8.6, 8.7, 8.9).
MXNET_CU112_ARCHS = ((5, 0), (6, 0), (7, 0), (8, 0), (8, 6))
CUDA_LIBRARIES = ("libcudart.so.11", "libcudnn.so.8", "libnccl.so.2")
SUPPORTED_PYTHON = ((3, 9), (3, 12))  # pyproject: >=3.9,<3.12
NUMPY_LIMIT = (1, 24)  # numpy 1.24 removed np.bool, which mxnet 1.9.1 uses


@dataclass
class Check:
    """One result of the doctor.

    Attributes
    ----------
    topic : str
        What was checked, e.g. "data" or "gpu".
    status : {"ok", "info", "warn", "FAIL"}
        FAIL means ``gluon-bn reproduce`` cannot run; warn means it runs, not as well as it could.
    message : str
        One line saying what was found.
    details : list of str
        Further lines (paths, values).
    fix : str
        What to do, for warn and FAIL.
    """

    topic: str
    status: str
    message: str
    details: List[str] = field(default_factory=list)
    fix: str = ""


def _version_tuple(text: str) -> Tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def _distribution_version(*names: str) -> Optional[Tuple[str, str]]:
    for name in names:
        try:
            return name, importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


# --------------------------------------------------------------------------- software

def check_python() -> List[Check]:
    """Return the Python version and whether the package supports it."""
    version = platform.python_version()
    low, high = SUPPORTED_PYTHON
    ok = low <= sys.version_info[:2] < high
    return [Check("python", OK if ok else WARN, f"Python {version} ({sys.executable})",
                  fix="" if ok else f"gluon-bn is tested on Python {low[0]}.{low[1]} to "
                                    f"{high[0]}.{high[1] - 1}; MXNet 1.9.1 has no wheels for newer ones")]


def check_mxnet_numpy() -> List[Check]:
    """Return the MXNet and numpy versions, whether they work together, and a tiny op's result."""
    checks = []
    try:
        import numpy
    except ImportError as err:
        return [Check("numpy", FAIL, f"numpy cannot be imported: {err}",
                      fix="pip install 'numpy<1.24'")]
    numpy_ok = _version_tuple(numpy.__version__)[:2] < NUMPY_LIMIT
    checks.append(Check("numpy", OK if numpy_ok else FAIL, f"numpy {numpy.__version__}",
                        fix="" if numpy_ok else "mxnet 1.9.1 needs numpy<1.24 (1.24 removed "
                                                "np.bool): pip install 'numpy<1.24'"))
    dist = _distribution_version("mxnet", "mxnet-cu112")
    try:
        mx = importlib.import_module("mxnet")
    except (ImportError, AttributeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        fix = ("pip install 'numpy<1.24'" if not numpy_ok else
               "pip install 'gluon-bn[cpu]' (or 'gluon-bn[cu112]' for NVIDIA GPUs)")
        checks.append(Check("mxnet", FAIL, f"mxnet cannot be imported: {first}", fix=fix))
        return checks
    version = getattr(mx, "__version__", "?")
    where = f"pip package {dist[0]} {dist[1]}" if dist else "not installed by pip"
    try:
        x = mx.nd.array([[1.0, 2.0], [3.0, 4.0]])
        value = float(mx.nd.dot(x, x).sum().asscalar())  # [[7, 10], [15, 22]]
        works = value == 54.0
        detail = f"nd.dot on a 2x2 array gave {value}" + ("" if works else ", expected 54.0")
    except Exception as err:  # pylint: disable=broad-except  # any failure is the finding
        works, detail = False, f"a small NDArray computation failed: {err}"
    status = OK if works and numpy_ok else FAIL
    note = "they work together" if status == OK else "they do NOT work together"
    message = f"mxnet {version} ({where}) with numpy {numpy.__version__}: {note}"
    fix = "" if works else "reinstall MXNet: pip install --force-reinstall 'gluon-bn[cpu]'"
    if works and version != "1.9.1":
        status, fix = WARN, "gluon-bn is written for mxnet 1.9.1: pip install 'gluon-bn[cpu]'"
    checks.append(Check("mxnet", status, message, [detail], fix=fix))
    return checks


def check_features() -> List[Check]:
    """Return the compiled-in MXNet features that matter for speed (MKLDNN, OpenMP, CUDA)."""
    try:
        mx = importlib.import_module("mxnet")
        features = mx.runtime.Features()
    except Exception as err:  # pylint: disable=broad-except
        return [Check("features", INFO, f"MXNet features unknown ({err})")]
    names = ("MKLDNN", "OPENMP", "BLAS_OPEN", "BLAS_MKL", "CUDA", "CUDNN", "NCCL")
    state = {n: features.is_enabled(n) for n in names if n in features}
    shown = ", ".join(f"{n} {'on' if on else 'off'}" for n, on in state.items())
    if not state.get("MKLDNN", False):
        return [Check("features", WARN, f"MXNet build: {shown}",
                      fix="without MKLDNN (oneDNN) convolutions on the CPU are several times "
                          "slower; the pip wheels mxnet==1.9.1 have it")]
    return [Check("features", OK, f"MXNet build: {shown}")]


def check_threads(env: Optional[Dict[str, str]] = None) -> List[Check]:
    """Return the thread settings (engine, OMP_NUM_THREADS, MXNET_CPU_WORKER_NTHREADS) and the cores."""
    env = os.environ if env is None else env
    cores = os.cpu_count() or 1
    from gluon_bn import runtime
    usable = runtime.usable_cores()
    omp = env.get("OMP_NUM_THREADS")
    workers = env.get("MXNET_CPU_WORKER_NTHREADS")
    engine = env.get("MXNET_ENGINE_TYPE")
    now = runtime.choose_threads(usable, runtime.busy_cores(), None)
    details = [f"os.cpu_count() = {cores}, usable by this process = {usable}",
               f"MXNET_ENGINE_TYPE = {engine or 'unset (ThreadedEnginePerDevice)'}; "
               f"`reproduce` and `bench` on the CPU select NaiveEngine and one OpenMP "
               f"thread per free core by themselves (--runtime, --threads): a run started "
               f"now would use {now.threads}"
               + (f" (other processes keep about {now.busy:.1f} core(s) busy)"
                  if now.reason == "busy" else ""),
               f"OMP_NUM_THREADS = "
               f"{omp if omp else f'unset (MXNet alone uses {runtime.mxnet_default_threads(usable)})'}",
               f"MXNET_CPU_WORKER_NTHREADS = {workers if workers else 'unset (1)'}"]
    message = f"{usable} core(s); OMP_NUM_THREADS {omp or 'unset'}, " \
              f"MXNET_CPU_WORKER_NTHREADS {workers or 'unset'}"
    try:
        omp_n = int(omp) if omp else usable
        # NaiveEngine runs every operator on the calling thread: no worker threads.
        worker_n = int(workers) if workers and engine != "NaiveEngine" else 1
    except ValueError:
        return [Check("threads", WARN, message, details,
                      fix="OMP_NUM_THREADS and MXNET_CPU_WORKER_NTHREADS must be integers")]
    if omp_n * worker_n > usable:
        return [Check("threads", WARN, message, details,
                      fix=f"{omp_n} OpenMP thread(s) x {worker_n} worker(s) oversubscribe "
                          f"{usable} core(s), which slows training; lower OMP_NUM_THREADS")]
    return [Check("threads", OK, message, details)]


# --------------------------------------------------------------------------- data

def check_data(data_root: Optional[str] = None, env: Optional[Dict[str, str]] = None) -> List[Check]:
    """Return where the data is looked for, where Fashion-MNIST was found, and its verification.

    Nothing is downloaded. Fashion-MNIST is required (every recipe can run on it); MNIST,
    which one recipe was written for, is reported when present.
    """
    try:
        data = importlib.import_module("gluon_bn.data")
    except Exception as err:  # pylint: disable=broad-except
        return [Check("data", FAIL, f"cannot check the data: gluon_bn.data does not import ({err})",
                      fix="fix MXNet first (see above)")]
    environ = os.environ if env is None else env
    spec = data.FASHION_MNIST
    mxnet_dir = data._mxnet_home(env) / "datasets" / spec.namespace  # pylint: disable=protected-access
    search = []
    if data_root:
        search.append(f"--data-root: {data_root}")
    search.append(f"${data.ENV_VAR}: {environ.get(data.ENV_VAR) or 'unset'}")
    search.append(f"MXNet's data directory: {mxnet_dir}")
    search += [f"system directory: {d}" for d in spec.system_dirs]
    checks = [Check("data", INFO, "data search path (first complete directory wins)", search)]
    try:
        directory = data.find_data_root(spec, data_root, env=env, download=False)
        arrays = data.load_arrays(spec, directory, verify=True, env=env, download=False)
    except data.DataError as err:
        lines = str(err).splitlines()
        checks.append(Check("data", FAIL, f"{spec.name}: {lines[0]}", lines[1:],
                            fix="get the data as listed above, or pass --data-root"))
        return checks
    train_x, _, test_x, _ = arrays
    checks.append(Check("data", OK, f"{spec.name} found in {directory}, verified",
                        [f"SHA-256 of all four files match; {len(train_x)} training and "
                         f"{len(test_x)} test images of {train_x.shape[1]}x{train_x.shape[2]}"]))
    try:  # MNIST has the same file names: a directory holding Fashion-MNIST is not MNIST
        mnist_dir = data.find_data_root(data.MNIST, env=env, download=False)
        if mnist_dir.resolve() == Path(directory).resolve():
            raise data.DataError("the Fashion-MNIST directory")
        data.load_arrays(data.MNIST, mnist_dir, verify=True, env=env, download=False)
        checks.append(Check("data", OK, f"MNIST found in {mnist_dir}, verified"))
    except data.DataError:
        checks.append(Check("data", INFO, "MNIST not found: a recipe written for MNIST runs on "
                                          "Fashion-MNIST instead, or downloads it when online"))
    return checks


# --------------------------------------------------------------------------- GPUs

def query_nvidia_smi(timeout: float = 15.0) -> Optional[List[Tuple[str, str]]]:
    """Return ``(name, compute capability)`` per GPU from nvidia-smi, or None without it.

    The capability is "unknown" when the driver's nvidia-smi cannot report it.
    """
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    for fields in ("name,compute_cap", "name"):
        try:
            done = subprocess.run([exe, f"--query-gpu={fields}", "--format=csv,noheader"],
                                  capture_output=True, text=True, timeout=timeout, check=False)
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


def check_gpus(*, count: Optional[Callable[[], int]] = None,
               probe: Optional[Callable[[int], Tuple[bool, str]]] = None,
               query: Optional[Callable[[], Optional[List[Tuple[str, str]]]]] = None,
               cuda_build: Optional[bool] = None) -> List[Check]:
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
            fix = ("install the CUDA wheel instead of the CPU one: pip uninstall mxnet && "
                   "pip install 'gluon-bn[cu112]'" if not cuda_build else
                   "MXNet sees none of them: check CUDA_VISIBLE_DEVICES and the driver "
                   "(nvidia-smi works, so the driver is loaded)")
            return [Check("gpu", WARN, f"no GPU usable by MXNet, though nvidia-smi lists "
                                       f"{len(smi)}: {names} ({build})", fix=fix)]
        return [Check("gpu", INFO, f"no GPU ({build}, no NVIDIA GPU found): training runs on "
                                   f"the CPU")]
    caps = smi if smi is not None and len(smi) == n and not os.environ.get("CUDA_VISIBLE_DEVICES") \
        else [("?", "unknown")] * n
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
            why = (f"mxnet-cu112 1.9.1 carries machine code for sm_50/60/70/80/86 and no PTX, "
                   f"so a compute capability {cap} GPU (e.g. Hopper, sm_90) cannot run its "
                   f"kernels")
            checks.append(Check("gpu", WARN, f"{label}: MXNet cannot run kernels here",
                                [reason, why], fix=fix + ", or a GPU of compute capability 5.0-8.9"))
        else:
            checks.append(Check("gpu", WARN, f"{label}: MXNet cannot run kernels here",
                                [reason], fix=fix + "; check the CUDA libraries below"))
    return checks


def find_cuda_libraries(site_dirs: Optional[Sequence[str]] = None,
                        ldconfig_text: Optional[str] = None) -> Dict[str, List[str]]:
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
        exe = shutil.which("ldconfig") or ("/sbin/ldconfig" if os.path.exists("/sbin/ldconfig") else None)
        if exe:
            try:
                ldconfig_text = subprocess.run([exe, "-p"], capture_output=True, text=True,
                                               timeout=15, check=False).stdout
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


def check_cuda_libraries(found: Optional[Dict[str, List[str]]] = None,
                         cuda_build: Optional[bool] = None) -> List[Check]:
    """Return which CUDA 11 libraries (cudart 11, cuDNN 8, NCCL 2) are found and where."""
    found = find_cuda_libraries() if found is None else found
    cuda_build = _cuda_build() if cuda_build is None else cuda_build
    details = [f"{lib}: {', '.join(paths) if paths else 'not found'}" for lib, paths in found.items()]
    missing = [lib for lib, paths in found.items() if not paths]
    if not cuda_build:
        return [Check("cuda", INFO, "CUDA libraries: not needed by MXNet's CPU build", details)]
    if missing:
        return [Check("cuda", WARN, f"CUDA libraries missing: {', '.join(missing)}", details,
                      fix="pip install 'gluon-bn[cu112]' (brings the nvidia-*-cu11 libraries)")]
    return [Check("cuda", OK, "CUDA libraries found", details)]


# --------------------------------------------------------------------------- --bn-impl native

def check_native(reason: Optional[Callable[[], Optional[str]]] = None) -> List[Check]:
    """Can the scratch layer's compiled operator (``--bn-impl native``) be built and loaded?

    Optional: without it every other implementation runs, so a failure is only information.
    `reason` replaces :func:`gluon_bn.bn.native.unavailable_reason` (tests); that builds
    the library once (about 13 s) when it is not cached yet.
    """
    if reason is None:
        from gluon_bn.bn.native import unavailable_reason as reason
    why = reason()
    if why:
        return [Check("native", INFO, "--bn-impl native unavailable (optional; faithful and "
                      "fast need no compiler)", why.splitlines()[:3])]
    return [Check("native", OK, "--bn-impl native: the C++ operator builds and loads")]


# --------------------------------------------------------------------------- all of it

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
        lines.append(f"Ready: `gluon-bn reproduce` can run ({'on a GPU' if gpu else 'on the CPU'}).")
    else:
        lines.append("Not ready: fix the FAIL lines above:")
        lines += [f"  - {c.fix or c.message}" for c in checks if c.status == FAIL]
    return "\n".join(lines)


def run_doctor(file: Optional[TextIO] = None, data_root: Optional[str] = None) -> int:
    """Print the doctor's report; return 0 when ``gluon-bn reproduce`` can run, else 1."""
    checks = run_checks(data_root)
    print(format_checks(checks), file=file or sys.stdout, flush=True)
    return 0 if ready(checks) else 1
