"""MXNet's process-wide execution settings: the engine, the OpenMP threads and how they wait.

MXNet reads them from the environment once, when it loads (``MXNET_ENGINE_TYPE``,
``OMP_NUM_THREADS``; libgomp reads ``OMP_WAIT_POLICY``), so they are chosen before the first
``import mxnet``. This module never imports MXNet itself.

Three facts, measured on 2-vCPU machines (``docs/performance.md``), shape the choice:

- The synchronous ``NaiveEngine`` with one OpenMP thread per core is the fastest runtime on
  an idle CPU for this small LeNet. It would serialise a GPU's streams, so it is chosen only
  for runs on the CPU.
- **The OpenMP thread count changes a seed's numbers**: Xavier-initialised weights are
  bit-identical under 1 and 2 threads, but the operators' parallel reductions round
  differently, so the first epoch's loss already differs in the fifth digit. The engine
  does not change them, nor does how idle threads wait. So the thread count is a setting
  of the run, chosen once before MXNet loads, recorded as ``omp_threads`` and reproduced
  by ``--threads N``; it never changes during a run.
- Several OpenMP threads collapse when another process takes one of their cores: each
  parallel operator waits for its slowest thread. So the count is chosen from the cores
  free when the run starts (:func:`choose_threads`, a pure function); when it is lower
  than an idle machine's, the command line says so and names ``--threads`` for the idle
  choice. Idle threads sleep at once (``OMP_WAIT_POLICY=PASSIVE``) instead of spinning.
  That costs 13-30 % of an idle epoch but bounds the damage when the load arrives after
  the start; spinning, even for 1,000-10,000 rounds, costs more than that beside one busy
  core (``docs/performance.md``, ``docs/bench/busy/``).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from dataclasses import dataclass
from typing import Dict, List, MutableMapping, Optional, Tuple

from gluon_bn.harness import RUNTIME_VARIABLES

ENGINES = {"threaded": "ThreadedEnginePerDevice", "naive": "NaiveEngine"}
REQUESTS = ("auto", "default", "tuned")
# How idle OpenMP threads of a team wait. libgomp's default lets them spin (300,000 rounds)
# before sleeping; on a core shared with another process the spinning threads then take the
# time the working one needs: beside another MXNet run an epoch took 55 s instead of 1 s
# (docs/bench/busy/). PASSIVE threads sleep at once. It does not change the arithmetic.
WAIT_POLICY = "PASSIVE"
VARIABLES = RUNTIME_VARIABLES  # what a Runtime sets (a child process of a bench drops them)
RECORDED = VARIABLES + (
    "MXNET_CPU_WORKER_NTHREADS",
    "GOMP_SPINCOUNT",
    "MXNET_OMP_MAX_THREADS",
    "DNNL_MAX_CPU_ISA",
    "GLUON_BN_RUNTIME_CHOICE",
)
BUSY_CORE = 0.5  # a core counts as taken when other processes use at least this share of it


@dataclass(frozen=True)
class Runtime:
    """An engine, an OpenMP thread count and how idle threads wait; None leaves the default.

    Attributes
    ----------
    engine : {"threaded", "naive"}, optional
        ``ThreadedEnginePerDevice`` (MXNet's default) or ``NaiveEngine`` (synchronous).
    omp_threads : int, optional
        OpenMP threads per operator (MXNet's default: :func:`mxnet_default_threads`).
    wait : {"PASSIVE", "ACTIVE"}, optional
        ``OMP_WAIT_POLICY``: whether idle OpenMP threads sleep at once or spin.
    """

    engine: Optional[str] = None
    omp_threads: Optional[int] = None
    wait: Optional[str] = None

    def __post_init__(self):
        if self.engine is not None and self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {tuple(ENGINES)}, got {self.engine!r}")
        if self.omp_threads is not None and (
            not isinstance(self.omp_threads, int)
            or isinstance(self.omp_threads, bool)
            or self.omp_threads < 1
        ):
            raise ValueError(f"omp_threads must be a positive int, got {self.omp_threads!r}")
        if self.wait not in (None, "PASSIVE", "ACTIVE"):
            raise ValueError(f"wait must be PASSIVE or ACTIVE, got {self.wait!r}")

    def variables(self) -> Dict[str, str]:
        """Return the environment variables that select this runtime."""
        values = {}
        if self.engine is not None:
            values["MXNET_ENGINE_TYPE"] = ENGINES[self.engine]
        if self.omp_threads is not None:
            values["OMP_NUM_THREADS"] = str(self.omp_threads)
        if self.wait is not None:
            values["OMP_WAIT_POLICY"] = self.wait
        return values


DEFAULT = Runtime()


def tuned(threads: Optional[int] = None, spin: bool = False) -> Runtime:
    """Return the CPU runtime for a given thread count: NaiveEngine, `threads` (default one
    per core), idle threads sleeping when there is more than one, unless `spin` (libgomp's
    own wait: a few milliseconds of spinning, then sleep)."""
    threads = threads or usable_cores()
    return Runtime("naive", threads, WAIT_POLICY if threads > 1 and not spin else None)


def usable_cores() -> int:
    """Return the cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def mxnet_default_threads(cores: Optional[int] = None, machine: Optional[str] = None) -> int:
    """Return the OpenMP threads MXNet 1.9 uses when ``OMP_NUM_THREADS`` is not set.

    MXNet's ``engine/openmp.cc`` takes the processors OpenMP may use and, on x86, halves
    them (it assumes two hyperthreads per core): one thread on a 2-vCPU machine.
    """
    cores = cores or usable_cores()
    machine = (machine or platform.machine()).lower()
    return max(1, cores // 2) if machine in ("x86_64", "amd64", "i386", "i686") else cores


def synchronous_engine(environ: Optional[MutableMapping[str, str]] = None) -> bool:
    """Return whether MXNet runs under `environ` with NaiveEngine, which runs each operator on
    the calling thread before the call returns (so no read can overtake a write)."""
    environ = os.environ if environ is None else environ
    return environ.get("MXNET_ENGINE_TYPE") == ENGINES["naive"]


def threads_in_effect(
    environ: Optional[MutableMapping[str, str]] = None, cores: Optional[int] = None
) -> int:
    """Return the OpenMP thread count MXNet runs with under `environ` (what records keep)."""
    environ = os.environ if environ is None else environ
    for key in ("MXNET_OMP_MAX_THREADS", "OMP_NUM_THREADS"):  # MXNet's order of precedence
        try:
            value = int(str(environ.get(key, "")).split(",")[0])
        except ValueError:
            continue
        if value >= 1:
            return value
    return mxnet_default_threads(cores)


@dataclass(frozen=True)
class ThreadChoice:
    """How many OpenMP threads a run uses, and why.

    Attributes
    ----------
    threads : int
        The count the run uses.
    idle : int
        The count an idle machine would get (one per core).
    reason : {"requested", "idle", "busy"}
        ``--threads`` given, nothing else running, or cores taken by other processes.
    busy : float, optional
        Cores other processes kept busy when the run started.
    """

    threads: int
    idle: int
    reason: str
    busy: Optional[float] = None

    def note(self) -> Optional[str]:
        """Return the one line to print when the count differs from the idle choice."""
        if self.reason != "busy" or self.threads == self.idle:
            return None
        return (
            f"note: other processes keep about {self.busy:.1f} of {self.idle} core(s) busy, "
            f"so this run uses {self.threads} OpenMP thread(s) instead of {self.idle}; "
            f"the numbers depend on this count (recorded as omp_threads): "
            f"--threads {self.idle} reproduces an idle machine's numbers."
        )


def choose_threads(
    cores: int, busy: Optional[float] = None, requested: Optional[int] = None
) -> ThreadChoice:
    """Return the OpenMP thread count for a run, from the cores, their load and the request.

    Parameters
    ----------
    cores : int
        Cores this process may run on (:func:`usable_cores`).
    busy : float, optional
        Cores other processes use now (:func:`busy_cores`); None when unknown (idle assumed).
    requested : int, optional
        ``--threads N`` (or ``OMP_NUM_THREADS``): used as given.

    Returns
    -------
    ThreadChoice
        One thread per free core, at least one: a core shared with another process makes
        every parallel operator wait for the thread that runs there.
    """
    if cores < 1:
        raise ValueError(f"cores must be at least 1, got {cores}")
    if requested is not None:
        if requested < 1:
            raise ValueError(f"--threads must be at least 1, got {requested}")
        return ThreadChoice(requested, cores, "requested", busy)
    taken = 0 if busy is None else int(busy + 1 - BUSY_CORE)  # 0.5 cores or more count as one
    threads = max(1, cores - taken)
    return ThreadChoice(threads, cores, "busy" if threads < cores else "idle", busy)


def cuda_build_installed() -> bool:
    """Return True when an MXNet CUDA wheel (``mxnet-cu*``) is installed (MXNet not imported)."""
    return any(
        (dist.metadata["Name"] or "").lower().startswith("mxnet-cu")
        for dist in importlib.metadata.distributions()
    )


def runs_on_cpu(device: str) -> bool:
    """Return True when a ``--device`` string will train on the CPU, without importing MXNet.

    ``auto`` trains on the CPU when the installed MXNet is the CPU build; with a CUDA build
    it may find a GPU, so it counts as GPU here.
    """
    text = device.strip().lower()
    if text == "auto":
        return not cuda_build_installed()
    return all(part.strip().startswith("cpu") for part in text.split(","))


def requested_runtime(
    request: str, *, device: str, threads: Optional[ThreadChoice] = None, spin: bool = False
) -> Runtime:
    """Return the runtime a command asked for.

    Parameters
    ----------
    request : {"auto", "default", "tuned"}
        ``"default"``: MXNet's own engine (and its own thread count unless `threads` was
        requested). ``"tuned"``: :func:`tuned`. ``"auto"``: tuned for runs on the CPU, whatever
        the pipeline (both pipelines then use the same thread count, hence the same
        numbers), MXNet's default on a GPU.
    device : str
        The ``--device`` string.
    threads : ThreadChoice, optional
        From :func:`choose_threads`; default: one per usable core.
    spin : bool
        Let idle threads spin (this machine's probe found it faster: :mod:`gluon_bn.runtime.probe`);
        never when the count was lowered for the load.
    """
    if request not in REQUESTS:
        raise ValueError(f"runtime must be one of {REQUESTS}, got {request!r}")
    threads = threads or choose_threads(usable_cores())
    if request == "tuned" or (request == "auto" and runs_on_cpu(device)):
        return tuned(threads.threads, spin and threads.reason != "busy")
    if threads.reason == "requested":
        return Runtime(omp_threads=threads.threads)
    return DEFAULT


def requested_threads(
    flag: Optional[int], environ: Optional[MutableMapping[str, str]] = None
) -> Tuple[Optional[int], List[str]]:
    """Return the thread count asked for by ``--threads`` or ``OMP_NUM_THREADS``, and notes.

    ``--threads`` wins over the environment; a malformed ``OMP_NUM_THREADS`` is ignored with
    a note (MXNet would fall back to its default anyway).
    """
    environ = os.environ if environ is None else environ
    if flag is not None:
        return flag, []
    text = environ.get("OMP_NUM_THREADS")
    if text is None:
        return None, []
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        return None, [f"note: ignoring OMP_NUM_THREADS={text!r} (not a positive integer)"]
    return value, [f"note: OMP_NUM_THREADS={value} from the environment sets the thread count"]


def apply(
    runtime: Runtime,
    environ: Optional[MutableMapping[str, str]] = None,
    modules: Optional[Dict[str, object]] = None,
) -> List[str]:
    """Set `runtime`'s variables before MXNet loads; return notes on what was (not) done.

    ``OMP_NUM_THREADS`` is set as chosen (a user's value arrives as the request, see
    :func:`requested_threads`); another variable the user already set is kept (theirs
    wins). Nothing can change once MXNet is loaded in this process; the note then says
    what it runs with.

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
            return [
                f"note: MXNet is already loaded in this process, so "
                f"{', '.join(f'{k}={v}' for k, v in unmet.items())} cannot take effect; "
                f"running with {describe(environ)}"
            ]
        return []
    notes = []
    for key, value in wanted.items():
        if key != "OMP_NUM_THREADS" and key in environ and environ[key] != value:
            notes.append(
                f"note: keeping {key}={environ[key]} from the environment "
                f"(the tuned runtime would set {value})"
            )
        else:
            environ[key] = value
    return notes


def describe(environ: Optional[MutableMapping[str, str]] = None) -> str:
    """Return the engine and OpenMP threads `environ` selects, in words."""
    environ = os.environ if environ is None else environ
    engine = environ.get("MXNET_ENGINE_TYPE") or f"{ENGINES['threaded']} (MXNet's default)"
    threads = environ.get("OMP_NUM_THREADS") or f"{threads_in_effect(environ)} (MXNet's default)"
    wait = "".join(
        f", {key} {environ[key]}"
        for key in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "DNNL_MAX_CPU_ISA")
        if environ.get(key)
    )
    return f"engine {engine}, OpenMP threads {threads}{wait}"
