"""The CPU runtime chosen by measurement on the machine itself, cached per machine.

MXNet reads its engine, OpenMP thread count and (through libgomp) the wait policy once, when
it loads, so each candidate runtime is timed in a fresh process (``python -m gluon_bn.tuning
JOB``) on the same small training step: the d2l-en LeNet with ``nn.BatchNorm`` as one static
graph, on a synthetic batch of 256 images. The candidates run in alternating rounds and the
median of each decides (:func:`decide`, a pure function). What was measured is cached under
the user's cache directory, keyed by the CPU model, the usable cores, the instruction set
MXNet's oneDNN may use and the MXNet version, so the probe runs once per machine
(``--retune`` runs it again).

Why measure instead of a fixed choice: waking sleeping OpenMP threads costs 13-30 % of an
idle epoch on the AMD EPYC VMs this package was developed on, and 2.4x on an Intel Xeon
(Sapphire Rapids) VM, where spinning threads are far faster (``docs/performance.md``). This
module never imports MXNet in the process that chooses.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, TextIO

from gluon_bn.runtime import DEFAULT, Runtime, usable_cores

CACHE_VERSION = 1
ROUNDS = 2             # alternating rounds of the probe: each candidate's median of two
PROBE_SECONDS = 0.25   # timed steps per probe process, after warm-up
WARMUP_STEPS = 5
PROBE_BATCH = 256      # the recipes' batch (d2l-en, d2l-0.17, d2l-zh)
# The choice prefers load tolerance when the speed is the same: a candidate within this
# factor of the fastest median counts as tied, and the safer one (earlier in SAFETY) wins.
TIE = 1.05
# Safest first: one thread never waits for another; MXNet's default uses one OpenMP thread
# on 2 vCPUs; sleeping threads bound the damage of load arriving later; spinning ones do not.
SAFETY = ("one", "mxnet", "sleep", "spin")
CONTEND = 1.25  # a second round times only the candidates within this factor of the fastest


@dataclass(frozen=True)
class Candidate:
    """A runtime the probe times, by name: ``one``, ``spin``, ``sleep`` or ``mxnet``."""

    name: str
    runtime: Runtime

    @property
    def words(self) -> str:
        """The candidate in words, as the runtime line prints it."""
        return {"one": "one thread", "spin": "spinning", "sleep": "sleeping",
                "mxnet": "MXNet's default"}[self.name]


def candidates(cores: int) -> List[Candidate]:
    """Return the runtimes worth timing on `cores` usable cores (one thread only, on one core).

    ``one``: NaiveEngine, 1 thread. ``spin``: NaiveEngine, a thread per core, idle threads
    spinning for libgomp's default of about 3 ms before they sleep (no ``OMP_WAIT_POLICY``):
    as fast idle as ``ACTIVE`` (27.2 against 27.6 ms/step on the AMD EPYC VM), and, unlike
    ``ACTIVE`` (5 minutes of spinning), its idle threads do sleep once a
    :class:`CollapseGuard` has dropped the run to one thread. ``sleep``: the same threads
    sleeping at once (``PASSIVE``). ``mxnet``: MXNet's own threaded engine and thread count.
    """
    found = [Candidate("one", Runtime("naive", 1))]
    if cores > 1:
        found += [Candidate("spin", Runtime("naive", cores)),
                  Candidate("sleep", Runtime("naive", cores, "PASSIVE"))]
    return found + [Candidate("mxnet", DEFAULT)]


def by_name(name: str, cores: int) -> Candidate:
    """Return the candidate called `name` on `cores` cores (ValueError for another name)."""
    for candidate in candidates(cores):
        if candidate.name == name:
            return candidate
    raise ValueError(f"no runtime candidate {name!r} on {cores} core(s); "
                     f"known: {', '.join(c.name for c in candidates(cores))}")


def decide(timings: Mapping[str, Sequence[float]], tie: float = TIE) -> str:
    """Return the candidate to use from its probe timings (ms per step, one per round).

    Parameters
    ----------
    timings : mapping of str to sequence of float
        Candidate name to its measured milliseconds per step; a candidate whose probe failed
        is left out (or given no values).
    tie : float
        Candidates within this factor of the fastest median are tied; among them the safest
        under load (:data:`SAFETY`) wins.

    Raises
    ------
    ValueError
        When nothing was measured.
    """
    medians = {name: statistics.median(values) for name, values in timings.items() if values}
    if not medians:
        raise ValueError("no runtime candidate was measured")
    fastest = min(medians.values())
    tied = [name for name, ms in medians.items() if ms <= tie * fastest]
    return min(tied, key=lambda name: SAFETY.index(name) if name in SAFETY else len(SAFETY))


def machine_key(environ: Optional[Mapping[str, str]] = None) -> Dict[str, object]:
    """Return what identifies a machine for the cache: CPU model, cores, ISA cap, MXNet version."""
    from gluon_bn.runtime import cpu_description
    environ = os.environ if environ is None else environ
    try:
        mxnet_version = importlib.metadata.version("mxnet")
    except importlib.metadata.PackageNotFoundError:
        mxnet_version = next((d.version for d in importlib.metadata.distributions()
                              if (d.metadata["Name"] or "").lower().startswith("mxnet")), None)
    return {"cpu_model": cpu_description()["cpu_model"], "usable_cores": usable_cores(),
            "mxnet": mxnet_version, "isa_cap": environ.get("DNNL_MAX_CPU_ISA") or None,
            "cache_version": CACHE_VERSION}


def cache_path() -> Path:
    """Return the probe's cache file, under :func:`gluon_bn.cache.cache_root` (``runtime/``)."""
    from gluon_bn.cache import cache_root
    return cache_root() / "runtime" / "runtime.json"


def read_cache(path: Path, key: Mapping[str, object]) -> tuple:
    """Return ``(timings, note)``: the cached timings for `key`, or None and why not.

    A missing file is no note; an unreadable or corrupt one, or one for another machine,
    gives one line and None (the caller measures again).
    """
    if not path.exists():
        return None, None
    try:
        entry = json.loads(path.read_text())
        if not isinstance(entry, dict):
            raise ValueError("not a JSON object")
        timings = entry["timings"]
        if not isinstance(timings, dict) or not all(
                isinstance(v, list) and all(isinstance(x, (int, float)) for x in v)
                for v in timings.values()):
            raise ValueError("timings are not lists of numbers")
    except (OSError, ValueError, KeyError) as err:
        return None, f"note: ignoring the runtime cache {path} ({err}); measuring again"
    if entry.get("key") != dict(key):
        return None, "note: the runtime cache was measured on another machine or MXNet; measuring again"
    return timings, None


def write_cache(path: Path, key: Mapping[str, object], timings: Mapping[str, Sequence[float]]) -> None:
    """Save `timings` for `key` atomically; a cache that cannot be written is skipped silently."""
    _save_json(path, {"key": dict(key), "timings": dict(timings),
                      "measured": time.strftime("%Y-%m-%dT%H:%M:%S")})


def _save_json(path: Path, data: Mapping[str, object]) -> None:
    """Write `data` to `path` through a temporary file of this process (two runs may write at
    once); skipped silently when the cache directory is not writable. (Not
    :func:`gluon_bn.report.write_atomically`: that module loads matplotlib, and this runs
    before every CPU run starts.)"""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        temporary.write_text(json.dumps(dict(data), indent=1))
        os.replace(temporary, path)
    except OSError:
        pass


def spinning_preferred(path: Optional[Path] = None) -> bool:
    """Return True when this machine's cached probe found spinning threads faster than
    sleeping ones (what ``--threads N`` then uses; False when nothing is cached)."""
    timings, _ = read_cache(path or cache_path(), machine_key())
    if not timings or not timings.get("spin") or not timings.get("sleep"):
        return False
    return statistics.median(timings["spin"]) < statistics.median(timings["sleep"])


def probe(candidate: Candidate) -> float:
    """Time the probe step under `candidate` in a fresh process; return milliseconds per step."""
    from gluon_bn.bench.child import run_json_child, runtime_environment
    answer = run_json_child("gluon_bn.tuning", {"seconds": PROBE_SECONDS},
                            what=f"the runtime probe under {candidate.words}",
                            env=runtime_environment(candidate.runtime.variables()))
    return float(answer["ms_per_step"])


def measure(found: Sequence[Candidate], rounds: int = ROUNDS,
            run: Callable[[Candidate], float] = probe, contend: float = CONTEND) -> tuple:
    """Time the candidates in alternating rounds; return ``(timings, failures)``.

    Every candidate runs in the first round; later rounds time again only those within
    `contend` of the fastest so far (a clear loser needs no second look). A candidate whose
    probe raises is dropped and named in `failures` (name to the error's last line).
    """
    timings: Dict[str, List[float]] = {c.name: [] for c in found}
    failures: Dict[str, str] = {}
    for i in range(rounds):
        best = min((statistics.median(v) for v in timings.values() if v), default=None)
        for candidate in found:
            if candidate.name in failures:
                continue
            if i and best is not None and statistics.median(timings[candidate.name]) > contend * best:
                continue
            try:
                timings[candidate.name].append(round(run(candidate), 3))
            except (RuntimeError, OSError, ValueError, KeyError) as err:
                failures[candidate.name] = (str(err).strip().splitlines() or ["failed"])[-1]
                timings.pop(candidate.name, None)
    return timings, failures


@dataclass(frozen=True)
class Choice:
    """The runtime a CPU run starts with, and the sentence that says why.

    Attributes
    ----------
    candidate : Candidate
        What was chosen.
    reason : {"probe", "cache", "load", "fallback"}
        Measured now, measured earlier on this machine, chosen for the load at the start
        (no probe), or one thread because no probe worked.
    timings : dict
        Candidate name to ms per step (empty without a probe).
    """

    candidate: Candidate
    reason: str
    timings: Mapping[str, Sequence[float]]
    seconds: float = 0.0

    def line(self) -> str:
        """One line: what was chosen, and the measurement that chose it."""
        if self.reason in ("load", "fallback"):
            return {"load": "chosen for the load at the start (no probe on a busy machine)",
                    "fallback": "the probe failed on every candidate, so one thread"}[self.reason]
        medians = {n: statistics.median(v) for n, v in self.timings.items() if v}
        order = sorted(medians, key=lambda n: SAFETY.index(n) if n in SAFETY else 9)
        parts = ", ".join(f"{by_name(n, max(2, self.candidate.runtime.omp_threads or 2)).words} "
                          f"{medians[n]:.1f}" for n in order)
        how = (f"by a {self.seconds:.1f} s probe" if self.reason == "probe"
               else "by this machine's cached probe (--retune measures again)")
        return f"{self.candidate.words} chosen {how}: {parts} ms/step"


def choose(*, cores: Optional[int] = None, busy: bool = False, retune: bool = False,
           path: Optional[Path] = None, run: Callable[[Candidate], float] = probe,
           notes: Optional[List[str]] = None) -> Choice:
    """Return the CPU runtime for a run that asked for none: cached, measured, or for the load.

    Parameters
    ----------
    cores : int, optional
        Usable cores (default :func:`gluon_bn.runtime.usable_cores`).
    busy : bool
        Other processes keep cores busy now: no probe (its timings would be the load's); the
        caller picks the thread count for the load. The cache is neither read nor written.
    retune : bool
        Measure even when the cache matches.
    path : Path, optional
        The cache file (default :func:`cache_path`).
    run : callable
        Times one candidate (default :func:`probe`; tests pass a stub).
    notes : list of str, optional
        Receives one line per problem (a corrupt cache, a failed probe).
    """
    cores = cores or usable_cores()
    notes = [] if notes is None else notes
    found = candidates(cores)
    if busy:
        return Choice(by_name("sleep" if cores > 1 else "one", cores), "load", {})
    path = path or cache_path()
    key = machine_key()
    timings = None
    if not retune:
        timings, note = read_cache(path, key)
        if note:
            notes.append(note)
        if timings is not None:
            known = {c.name for c in found}
            timings = {n: v for n, v in timings.items() if n in known}
            if timings:
                return Choice(by_name(decide(timings), cores), "cache", timings)
    start = time.perf_counter()
    timings, failures = measure(found, run=run)
    seconds = time.perf_counter() - start
    for name, error in failures.items():
        notes.append(f"note: the runtime probe failed under {by_name(name, cores).words}: {error}")
    if not any(timings.values()):
        return Choice(by_name("one", cores), "fallback", {})
    write_cache(path, key, timings)
    return Choice(by_name(decide(timings), cores), "probe", timings, seconds)


class CollapseGuard:
    """Notice a run collapsing mid-run (load arrived after its start) and drop it to one thread.

    Several OpenMP threads wait for the slowest one, so a core taken by another process
    makes every parallel operator slow (3x here beside a busy core); one thread does not
    wait. Step times are wall-clock intervals between batches, which are the real step times
    under NaiveEngine (synchronous); the first interval of each epoch (after the test pass)
    is not counted. The baseline is the median of the first `window` intervals after
    `warmup`; a collapse is a later window whose median is more than `factor` times it.

    A drop changes the arithmetic (the thread count), so it happens only when `allowed` (the
    run asked for no thread count); otherwise the guard says once that the run keeps its
    count. Every drop is kept in :attr:`events` (epoch, batch, threads before and after).

    Parameters
    ----------
    threads : int
        The run's OpenMP threads (one thread cannot collapse this way: the guard is idle).
    allowed : bool
        The run may change its thread count (no ``--threads``).
    factor, window, warmup : see above.
    drop : callable, optional
        Sets MXNet's OpenMP threads (default: ``MXSetNumOMPThreads`` through ctypes).
    clock : callable
        Seconds (tests pass a fake clock).
    """

    def __init__(self, threads: int, *, allowed: bool, factor: float = 2.0, window: int = 20,
                 warmup: int = 5, drop: Optional[Callable[[int], None]] = None,
                 clock: Callable[[], float] = time.perf_counter):
        self.threads, self.allowed = threads, allowed
        self.factor, self.window, self.warmup = factor, window, warmup
        self._drop, self._clock = drop or set_omp_threads, clock
        self.events: List[Dict[str, object]] = []
        self.done = threads < 2
        self.begin({})

    def begin(self, label: Mapping[str, object]) -> None:
        """Start watching a new run (its own baseline: the variants differ in speed)."""
        self.label = dict(label)
        self.epoch, self.batch = 1, 0
        self._last: Optional[float] = None
        self._seen = 0
        self._baseline: List[float] = []
        self._recent: List[float] = []

    def epoch_ended(self, *_) -> None:
        """Mark an epoch's end: the next interval spans the test pass and is not counted."""
        self.epoch, self.batch, self._last = self.epoch + 1, 0, None

    def after_batch(self) -> Optional[str]:
        """Feed the end of one batch; return the one line to print when the guard acts."""
        now = self._clock()
        last, self._last = self._last, now
        self.batch += 1
        if self.done or last is None:
            return None
        interval = now - last
        self._seen += 1
        if self._seen <= self.warmup:
            return None
        if len(self._baseline) < self.window:
            self._baseline.append(interval)
            return None
        self._recent = (self._recent + [interval])[-self.window:]
        base = statistics.median(self._baseline)
        slow = statistics.median(self._recent)
        if len(self._recent) < self.window or slow <= self.factor * base:
            return None
        self.done = True
        where = f"epoch {self.epoch}, batch {self.batch}"
        if not self.allowed:
            return (f"note: {where}: steps take {slow / base:.1f}x this run's first ones "
                    f"(other processes now share the cores); --threads fixes the count at "
                    f"{self.threads}, so the run keeps it (its numbers depend on it)")
        self._drop(1)
        self.events.append({**self.label, "epoch": self.epoch, "batch": self.batch,
                            "from": self.threads, "to": 1, "slowdown": round(slow / base, 2)})
        return (f"note: {where}: steps take {slow / base:.1f}x this run's first ones (other "
                f"processes now share the cores), so this process drops from {self.threads} "
                f"OpenMP threads to 1 from here on; its numbers from here differ from an "
                f"undisturbed run's (recorded as thread_changes); --threads {self.threads} "
                f"keeps the count whatever the load")


def set_omp_threads(count: int) -> None:
    """Set the OpenMP threads of MXNet's later operators in this process (MXNet loaded)."""
    import ctypes
    from gluon_bn._mxnet import mx
    mx.base.check_call(mx.base._LIB.MXSetNumOMPThreads(ctypes.c_int(count)))


# --isa NAME: oneDNN's cap (DNNL_MAX_CPU_ISA) and the words its verbose mode uses for it.
ISAS = {"sse41": ("SSE41", "Intel SSE4.1"), "avx": ("AVX", "Intel AVX"),
        "avx2": ("AVX2", "Intel AVX2"), "avx512": ("AVX512_CORE", "Intel AVX-512")}
ISA_LINE = "dnnl_verbose,info,cpu,isa:"


def onednn_isa(environ: Optional[Mapping[str, str]] = None, *, path: Optional[Path] = None) -> Optional[str]:
    """Return the instruction set MXNet's oneDNN dispatches to under `environ`, in its words.

    Read from oneDNN itself: a fresh process runs one convolution with ``DNNL_VERBOSE=1`` and
    oneDNN's ``isa:`` line is kept (about a second, then cached per machine and cap). None
    when oneDNN says nothing (MXNet built without it) or the process fails.
    """
    import subprocess
    from gluon_bn.bench.child import runtime_environment
    environ = dict(os.environ if environ is None else environ)
    path = path or cache_path().with_name("onednn_isa.json")
    key = machine_key(environ)
    try:
        entry = json.loads(path.read_text())
        if entry.get("key") == key and isinstance(entry.get("isa"), str):
            return entry["isa"]
    except (OSError, ValueError, AttributeError):
        pass
    env = runtime_environment({"OMP_NUM_THREADS": "1"})
    env = {k: v for k, v in env.items() if k != "DNNL_MAX_CPU_ISA"}
    if environ.get("DNNL_MAX_CPU_ISA"):
        env["DNNL_MAX_CPU_ISA"] = environ["DNNL_MAX_CPU_ISA"]
    env["DNNL_VERBOSE"] = "1"
    code = ("from gluon_bn._mxnet import mx; x = mx.nd.ones((1, 1, 8, 8)); "
            "w = mx.nd.ones((2, 1, 3, 3)); "
            "mx.nd.Convolution(x, w, kernel=(3, 3), num_filter=2, no_bias=True).wait_to_read()")
    try:
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return None
    isa = next((line[len(ISA_LINE):].strip() for line in proc.stdout.splitlines()
                if line.startswith(ISA_LINE)), None)
    if isa is not None:
        _save_json(path, {"key": key, "isa": isa})
    return isa


def pin_isa(name: str, environ: Optional[dict] = None) -> str:
    """Cap oneDNN at ISA `name` (``--isa``) before MXNet loads; return the one line to print.

    Raises
    ------
    ValueError
        For an unknown name, or when this CPU lacks that instruction set (oneDNN then runs a
        lower one, whose numbers would not be the pinned ISA's).
    """
    environ = os.environ if environ is None else environ
    if name not in ISAS:
        raise ValueError(f"--isa must be one of {', '.join(ISAS)}, got {name!r}")
    cap, words = ISAS[name]
    trial = dict(environ, DNNL_MAX_CPU_ISA=cap)
    found = onednn_isa(trial)
    if found is not None and found != words:
        raise ValueError(f"--isa {name}: this CPU runs oneDNN at {found!r}, not {words!r} "
                         f"(the CPU lacks {name}); choose a lower --isa")
    environ["DNNL_MAX_CPU_ISA"] = cap
    return f"isa: oneDNN capped at {words} (DNNL_MAX_CPU_ISA={cap}; recorded as onednn_isa)"


def probe_step(seconds: float = PROBE_SECONDS, batch: int = PROBE_BATCH) -> float:
    """Time training steps of the d2l-en LeNet with ``nn.BatchNorm``; return ms per step.

    Runs in the probe's own process (MXNet loads here, under the candidate's variables). The
    batch is synthetic, (`batch`, 1, 28, 28) images and labels 0-9; the network is compiled
    as one static graph, as ``--pipeline fast`` trains it.
    """
    from gluon_bn._mxnet import mx
    from gluon_bn.models import hybridize_network, lenet
    from gluon_bn.run.training import seed_everything
    seed_everything(0)
    net = lenet("gluon", pool="max")
    net.initialize(mx.init.Xavier())
    net = hybridize_network(net, "graph")
    trainer = mx.gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1})
    loss = mx.gluon.loss.SoftmaxCrossEntropyLoss()
    X = mx.nd.random.uniform(shape=(batch, 1, 28, 28))
    y = mx.nd.array([i % 10 for i in range(batch)])

    def step():
        with mx.autograd.record():
            value = loss(net(X), y)
        value.backward()
        trainer.step(batch)

    for _ in range(WARMUP_STEPS):
        step()
    mx.nd.waitall()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or steps < 3:
        step()
        steps += 1
        if steps % 5 == 0:
            mx.nd.waitall()
    mx.nd.waitall()
    return (time.perf_counter() - start) / steps * 1000


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m gluon_bn.tuning JOB``: one probe in this process, answered as JSON."""
    from gluon_bn.bench.child import json_child_main
    return json_child_main(
        argv, prog="python -m gluon_bn.tuning",
        description="Time the runtime probe's training step in this process (JSON job "
                    "{\"seconds\": S}); gluon-bn starts these when it chooses a runtime.",
        answer=lambda job: {"ms_per_step": probe_step(float(job.get("seconds", PROBE_SECONDS)))})


if __name__ == "__main__":
    raise SystemExit(main())
