"""The doctor's installation checks: Python, MXNet with numpy, MXNet's features, the thread
settings, the data and the C++ compiler of the native operator."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import re
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from gluon_bn.doctor.check import FAIL, INFO, OK, WARN, Check

SUPPORTED_PYTHON = ((3, 9), (3, 12))  # pyproject: >=3.9,<3.12
NUMPY_LIMIT = (1, 24)  # numpy 1.24 removed np.bool, which mxnet 1.9.1 uses


def _version_tuple(text: str) -> Tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def _distribution_version(*names: str) -> Optional[Tuple[str, str]]:
    for name in names:
        try:
            return name, importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def check_python() -> List[Check]:
    """Return the Python version and whether the package supports it."""
    version = platform.python_version()
    low, high = SUPPORTED_PYTHON
    ok = low <= sys.version_info[:2] < high
    return [
        Check(
            "python",
            OK if ok else WARN,
            f"Python {version} ({sys.executable})",
            fix=""
            if ok
            else f"gluon-bn is tested on Python {low[0]}.{low[1]} to "
            f"{high[0]}.{high[1] - 1}; MXNet 1.9.1 has no wheels for newer ones",
        )
    ]


def check_mxnet_numpy() -> List[Check]:
    """Return the MXNet and numpy versions, whether they work together, and a tiny op's result."""
    checks = []
    try:
        import numpy
    except ImportError as err:
        return [
            Check("numpy", FAIL, f"numpy cannot be imported: {err}", fix="pip install 'numpy<1.24'")
        ]
    numpy_ok = _version_tuple(numpy.__version__)[:2] < NUMPY_LIMIT
    checks.append(
        Check(
            "numpy",
            OK if numpy_ok else FAIL,
            f"numpy {numpy.__version__}",
            fix=""
            if numpy_ok
            else "mxnet 1.9.1 needs numpy<1.24 (1.24 removed np.bool): pip install 'numpy<1.24'",
        )
    )
    dist = _distribution_version("mxnet", "mxnet-cu112")
    try:
        mx = importlib.import_module("mxnet")
    except (ImportError, AttributeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        fix = (
            "pip install 'numpy<1.24'"
            if not numpy_ok
            else "pip install 'gluon-bn[cpu]' (or 'gluon-bn[cu112]' for NVIDIA GPUs)"
        )
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
        return [
            Check(
                "features",
                WARN,
                f"MXNet build: {shown}",
                fix="without MKLDNN (oneDNN) convolutions on the CPU are several times "
                "slower; the pip wheels mxnet==1.9.1 have it",
            )
        ]
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
    details = [
        f"os.cpu_count() = {cores}, usable by this process = {usable}",
        f"MXNET_ENGINE_TYPE = {engine or 'unset (ThreadedEnginePerDevice)'}; "
        f"`reproduce` and `bench` on the CPU select NaiveEngine and one OpenMP "
        f"thread per free core by themselves (--runtime, --threads): a run started "
        f"now would use {now.threads}"
        + (
            f" (other processes keep about {now.busy:.1f} core(s) busy)"
            if now.reason == "busy"
            else ""
        ),
        f"OMP_NUM_THREADS = "
        f"{omp if omp else f'unset (MXNet alone uses {runtime.mxnet_default_threads(usable)})'}",
        f"MXNET_CPU_WORKER_NTHREADS = {workers if workers else 'unset (1)'}",
    ]
    message = (
        f"{usable} core(s); OMP_NUM_THREADS {omp or 'unset'}, "
        f"MXNET_CPU_WORKER_NTHREADS {workers or 'unset'}"
    )
    try:
        omp_n = int(omp) if omp else usable
        # NaiveEngine runs every operator on the calling thread: no worker threads.
        worker_n = int(workers) if workers and engine != "NaiveEngine" else 1
    except ValueError:
        return [
            Check(
                "threads",
                WARN,
                message,
                details,
                fix="OMP_NUM_THREADS and MXNET_CPU_WORKER_NTHREADS must be integers",
            )
        ]
    if omp_n * worker_n > usable:
        return [
            Check(
                "threads",
                WARN,
                message,
                details,
                fix=f"{omp_n} OpenMP thread(s) x {worker_n} worker(s) oversubscribe "
                f"{usable} core(s), which slows training; lower OMP_NUM_THREADS",
            )
        ]
    return [Check("threads", OK, message, details)]


def check_data(
    data_root: Optional[str] = None, env: Optional[Dict[str, str]] = None
) -> List[Check]:
    """Return where the data is looked for, where Fashion-MNIST was found, and its verification.

    Nothing is downloaded. Fashion-MNIST is required (every recipe can run on it); MNIST,
    which one recipe was written for, is reported when present.
    """
    try:
        data = importlib.import_module("gluon_bn.data")
    except Exception as err:  # pylint: disable=broad-except
        return [
            Check(
                "data",
                FAIL,
                f"cannot check the data: gluon_bn.data does not import ({err})",
                fix="fix MXNet first (see above)",
            )
        ]
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
        checks.append(
            Check(
                "data",
                FAIL,
                f"{spec.name}: {lines[0]}",
                lines[1:],
                fix="get the data as listed above, or pass --data-root",
            )
        )
        return checks
    train_x, _, test_x, _ = arrays
    checks.append(
        Check(
            "data",
            OK,
            f"{spec.name} found in {directory}, verified",
            [
                f"SHA-256 of all four files match; {len(train_x)} training and "
                f"{len(test_x)} test images of {train_x.shape[1]}x{train_x.shape[2]}"
            ],
        )
    )
    try:  # MNIST has the same file names: a directory holding Fashion-MNIST is not MNIST
        mnist_dir = data.find_data_root(data.MNIST, env=env, download=False)
        if mnist_dir.resolve() == Path(directory).resolve():
            raise data.DataError("the Fashion-MNIST directory")
        data.load_arrays(data.MNIST, mnist_dir, verify=True, env=env, download=False)
        checks.append(Check("data", OK, f"MNIST found in {mnist_dir}, verified"))
    except data.DataError:
        checks.append(
            Check(
                "data",
                INFO,
                "MNIST not found: a recipe written for MNIST runs on "
                "Fashion-MNIST instead, or downloads it when online",
            )
        )
    return checks


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
        return [
            Check(
                "native",
                INFO,
                "--bn-impl native unavailable (optional; faithful and fast need no compiler)",
                why.splitlines()[:3],
            )
        ]
    return [Check("native", OK, "--bn-impl native: the C++ operator builds and loads")]
