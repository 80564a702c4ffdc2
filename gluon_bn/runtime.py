"""MXNet's process-wide execution settings: which engine runs the operators, how many OpenMP threads.

MXNet reads both from the environment once, when it loads (``MXNET_ENGINE_TYPE``,
``OMP_NUM_THREADS``), so they are chosen before the first ``import mxnet``. This module
never imports MXNet itself.

Measured on a 2-vCPU machine (``docs/performance.md``): MXNet's default, a threaded engine
with one CPU worker and one OpenMP thread, leaves a core idle for this small LeNet, and
two OpenMP threads under it are slower still (the worker and two OpenMP threads then
share two cores). The synchronous ``NaiveEngine`` with one OpenMP thread per core runs
every operator on the calling thread with all cores, and every path trains faster. It
would serialise a GPU's streams, so it is chosen only for runs on the CPU.

It assumes the cores are free: with another process keeping one of two cores busy, the
OpenMP threads wait on each other and an epoch took 2.6x longer than under MXNet's
default (measured), so the command line warns when it sees the cores taken.
The OpenMP thread count also changes MXNet's parallel random draws, hence the initial
weights of a seed: runs repeat exactly under the same runtime, not across runtimes.
"""
from __future__ import annotations

import importlib.metadata
import os
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, MutableMapping, Optional

ENGINES = {"threaded": "ThreadedEnginePerDevice", "naive": "NaiveEngine"}
REQUESTS = ("auto", "default", "tuned")
VARIABLES = ("MXNET_ENGINE_TYPE", "OMP_NUM_THREADS")  # what a Runtime sets
RECORDED = VARIABLES + ("MXNET_CPU_WORKER_NTHREADS",)  # what reports record


@dataclass(frozen=True)
class Runtime:
    """An engine and an OpenMP thread count; None leaves MXNet's default in place.

    Attributes
    ----------
    engine : {"threaded", "naive"}, optional
        ``ThreadedEnginePerDevice`` (MXNet's default) or ``NaiveEngine`` (synchronous).
    omp_threads : int, optional
        OpenMP threads per operator.
    """

    engine: Optional[str] = None
    omp_threads: Optional[int] = None

    def __post_init__(self):
        if self.engine is not None and self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {tuple(ENGINES)}, got {self.engine!r}")
        if self.omp_threads is not None and (not isinstance(self.omp_threads, int)
                                             or self.omp_threads < 1):
            raise ValueError(f"omp_threads must be a positive int, got {self.omp_threads!r}")

    def variables(self) -> Dict[str, str]:
        """Return the environment variables that select this runtime."""
        values = {}
        if self.engine is not None:
            values["MXNET_ENGINE_TYPE"] = ENGINES[self.engine]
        if self.omp_threads is not None:
            values["OMP_NUM_THREADS"] = str(self.omp_threads)
        return values


DEFAULT = Runtime()


def tuned(cores: Optional[int] = None) -> Runtime:
    """Return the CPU runtime chosen by measurement: NaiveEngine, one OpenMP thread per core."""
    return Runtime("naive", cores or usable_cores())


def usable_cores() -> int:
    """Return the cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cuda_build_installed() -> bool:
    """Return True when an MXNet CUDA wheel (``mxnet-cu*``) is installed (MXNet not imported)."""
    return any((dist.metadata["Name"] or "").lower().startswith("mxnet-cu")
               for dist in importlib.metadata.distributions())


def runs_on_cpu(device: str) -> bool:
    """Return True when a ``--device`` string will train on the CPU, without importing MXNet.

    ``auto`` trains on the CPU when the installed MXNet is the CPU build; with a CUDA build
    it may find a GPU, so it counts as GPU here.
    """
    text = device.strip().lower()
    if text == "auto":
        return not cuda_build_installed()
    return all(part.strip().startswith("cpu") for part in text.split(","))


def choose(request: str, *, pipeline: str, device: str) -> Runtime:
    """Return the runtime a command asked for.

    Parameters
    ----------
    request : {"auto", "default", "tuned"}
        ``"default"``: MXNet's own settings. ``"tuned"``: :func:`tuned`. ``"auto"``: tuned
        for the fast pipeline on the CPU, MXNet's default otherwise (the documents' path).
    pipeline : str
        ``"d2l"``, ``"fast"`` (or ``"both"`` for ``bench``).
    device : str
        The ``--device`` string.
    """
    if request not in REQUESTS:
        raise ValueError(f"runtime must be one of {REQUESTS}, got {request!r}")
    if request == "tuned" or (request == "auto" and pipeline == "fast" and runs_on_cpu(device)):
        return tuned()
    return DEFAULT


def apply(runtime: Runtime, environ: Optional[MutableMapping[str, str]] = None,
          modules: Optional[Dict[str, object]] = None) -> List[str]:
    """Set `runtime`'s variables before MXNet loads; return notes on what was (not) done.

    A variable the user already set is kept (theirs wins). Nothing can change once MXNet
    is loaded in this process; the note then says what it runs with.

    Parameters
    ----------
    runtime : Runtime
        What to select.
    environ : mutable mapping, optional
        Default ``os.environ``.
    modules : dict, optional
        Default ``sys.modules`` (to tell whether MXNet is loaded).
    """
    environ = os.environ if environ is None else environ
    modules = sys.modules if modules is None else modules
    wanted = runtime.variables()
    if not wanted:
        return []
    if "mxnet" in modules:
        unmet = {k: v for k, v in wanted.items() if environ.get(k) != v}
        if unmet:
            return [f"note: MXNet is already loaded in this process, so "
                    f"{', '.join(f'{k}={v}' for k, v in unmet.items())} cannot take effect; "
                    f"running with {describe(environ)}"]
        return []
    notes = []
    for key, value in wanted.items():
        if key in environ and environ[key] != value:
            notes.append(f"note: keeping {key}={environ[key]} from the environment "
                         f"(the tuned runtime would set {value})")
        else:
            environ[key] = value
    return notes


def busy_cores(interval: float = 0.3) -> Optional[float]:
    """Return how many cores other processes keep busy now, from two reads of /proc/stat.

    Called before MXNet loads, while this process is idle. None where /proc/stat is missing.
    (The load average would do, but it trails by a minute: it still counts a run that
    just ended.)
    """
    def totals():
        with open("/proc/stat") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values) - idle, sum(values)

    try:
        busy0, total0 = totals()
        time.sleep(interval)
        busy1, total1 = totals()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return (busy1 - busy0) / (total1 - total0) * (os.cpu_count() or 1)


def busy_warning(runtime: Runtime, busy: Optional[float] = None) -> Optional[str]:
    """Return a warning when `runtime` spreads OpenMP over cores that other processes use.

    Parameters
    ----------
    runtime : Runtime
        What is about to be applied.
    busy : float, optional
        Cores in use by others (default: :func:`busy_cores`).
    """
    if runtime.engine != "naive" or not runtime.omp_threads or runtime.omp_threads < 2:
        return None
    busy = busy_cores() if busy is None else busy
    if busy is None or busy < 0.5:
        return None
    return (f"warning: other processes keep about {busy:.1f} of {usable_cores()} core(s) "
            f"busy; {runtime.omp_threads} OpenMP threads then wait on each other and "
            f"training can be several times slower. If that work keeps running, use "
            f"--runtime default (or OMP_NUM_THREADS=1).")


def describe(environ: Optional[MutableMapping[str, str]] = None) -> str:
    """Return the engine and OpenMP threads `environ` selects, in words."""
    environ = os.environ if environ is None else environ
    engine = environ.get("MXNET_ENGINE_TYPE") or f"{ENGINES['threaded']} (MXNet's default)"
    threads = environ.get("OMP_NUM_THREADS") or "MXNet's default"
    return f"engine {engine}, OpenMP threads {threads}"
