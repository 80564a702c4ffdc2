"""The CPU runtime chosen by measurement on the machine itself, cached per machine.

MXNet reads its engine, OpenMP thread count and (through libgomp) the wait policy once, when
it loads, so each candidate runtime is timed in a fresh process (``python -m gluon_bn.run.probe_step
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

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Mapping, Optional, Sequence

from gluon_bn.harness import FAILURES, alternate, run_json_child, runtime_environment
from gluon_bn.runtime.machine import cache_path, machine_key, save_json
from gluon_bn.runtime.settings import DEFAULT, Runtime, usable_cores
from gluon_bn.runtime.watch import PROBE_RUN, IdleSteps, signature

ROUNDS = 2  # alternating rounds of the probe: each candidate's median of two
PROBE_SECONDS = 0.25  # timed steps per probe process, after warm-up
WARMUP_STEPS = 5
PROBE_BATCH = 256  # the recipes' batch (d2l-en, d2l-0.17, d2l-zh)
# The choice prefers load tolerance when the speed is the same: a candidate within this
# factor of the fastest median counts as tied, and the safer one (earlier in SAFETY) wins.
TIE = 1.05
# Safest first: one thread never waits for another; MXNet's default uses one OpenMP thread
# on 2 vCPUs; sleeping threads bound the damage of load arriving later; spinning ones do not.
SAFETY = ("one", "mxnet", "sleep", "spin")
CONTEND = 1.25  # a second round times only the candidates within this factor of the fastest

# The probe step runs in a child process started by module name (a process, not an import:
# the step trains the LeNet that gluon_bn.run builds).
STEP_MODULE = "gluon_bn.run.probe_step"


@dataclass(frozen=True)
class Candidate:
    """A runtime the probe times, by name: ``one``, ``spin``, ``sleep`` or ``mxnet``."""

    name: str
    runtime: Runtime

    @property
    def words(self) -> str:
        """The candidate in words, as the runtime line prints it."""
        return {
            "one": "one thread",
            "spin": "spinning",
            "sleep": "sleeping",
            "mxnet": "MXNet's default",
        }[self.name]


def candidates(cores: int) -> List[Candidate]:
    """Return the runtimes worth timing on `cores` usable cores (one thread only, on one core).

    ``one``: NaiveEngine, 1 thread. ``spin``: NaiveEngine, a thread per core, idle threads
    spinning for libgomp's default of about 3 ms before they sleep (no ``OMP_WAIT_POLICY``):
    as fast idle as ``ACTIVE`` (27.2 against 27.6 ms/step on the AMD EPYC VM), and, unlike
    ``ACTIVE`` (5 minutes of spinning), its idle threads do sleep once a
    :class:`gluon_bn.runtime.watch.LoadWatch` has dropped the run to one thread. ``sleep``: the same threads
    sleeping at once (``PASSIVE``). ``mxnet``: MXNet's own threaded engine and thread count.
    """
    found = [Candidate("one", Runtime("naive", 1))]
    if cores > 1:
        found += [
            Candidate("spin", Runtime("naive", cores)),
            Candidate("sleep", Runtime("naive", cores, "PASSIVE")),
        ]
    return found + [Candidate("mxnet", DEFAULT)]


def by_name(name: str, cores: int) -> Candidate:
    """Return the candidate called `name` on `cores` cores (ValueError for another name)."""
    for candidate in candidates(cores):
        if candidate.name == name:
            return candidate
    raise ValueError(
        f"no runtime candidate {name!r} on {cores} core(s); "
        f"known: {', '.join(c.name for c in candidates(cores))}"
    )


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
            for v in timings.values()
        ):
            raise ValueError("timings are not lists of numbers")
    except (OSError, ValueError, KeyError) as err:
        return None, f"note: ignoring the runtime cache {path} ({err}); measuring again"
    if entry.get("key") != dict(key):
        return (
            None,
            "note: the runtime cache was measured on another machine or MXNet; measuring again",
        )
    return timings, None


def write_cache(
    path: Path, key: Mapping[str, object], timings: Mapping[str, Sequence[float]]
) -> None:
    """Save `timings` for `key` atomically; a cache that cannot be written is skipped silently."""
    save_json(
        path,
        {
            "key": dict(key),
            "timings": dict(timings),
            "measured": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )


def spinning_preferred(path: Optional[Path] = None) -> bool:
    """Return True when this machine's cached probe found spinning threads faster than
    sleeping ones (what ``--threads N`` then uses; False when nothing is cached)."""
    timings, _ = read_cache(path or cache_path(), machine_key())
    if not timings or not timings.get("spin") or not timings.get("sleep"):
        return False
    return statistics.median(timings["spin"]) < statistics.median(timings["sleep"])


def probe(candidate: Candidate) -> float:
    """Time the probe step under `candidate` in a fresh process; return milliseconds per step."""
    answer = run_json_child(
        STEP_MODULE,
        {"seconds": PROBE_SECONDS},
        what=f"the runtime probe under {candidate.words}",
        env=runtime_environment(candidate.runtime.variables()),
    )
    return float(answer["ms_per_step"])


def measure(
    found: Sequence[Candidate],
    rounds: int = ROUNDS,
    run: Callable[[Candidate], float] = probe,
    contend: float = CONTEND,
) -> tuple:
    """Time the candidates in alternating rounds; return ``(timings, failures)``.

    Every candidate runs in the first round; later rounds time again only those within
    `contend` of the fastest so far (a clear loser needs no second look). A candidate whose
    probe raises is dropped and named in `failures` (name to the error's last line).
    """
    rounds_ = alternate(
        found,
        lambda c: round(run(c), 3),
        rounds,
        key=lambda c: c.name,
        contend=contend,
        catch=FAILURES,
    )
    return rounds_.values, rounds_.failures


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
            return {
                "load": "chosen for the load at the start (no probe on a busy machine)",
                "fallback": "the probe failed on every candidate, so one thread",
            }[self.reason]
        medians = {n: statistics.median(v) for n, v in self.timings.items() if v}
        order = sorted(medians, key=lambda n: SAFETY.index(n) if n in SAFETY else 9)
        parts = ", ".join(
            f"{by_name(n, max(2, self.candidate.runtime.omp_threads or 2)).words} {medians[n]:.1f}"
            for n in order
        )
        how = (
            f"by a {self.seconds:.1f} s probe"
            if self.reason == "probe"
            else "by this machine's cached probe (--retune measures again)"
        )
        return f"{self.candidate.words} chosen {how}: {parts} ms/step"


def choose(
    *,
    cores: Optional[int] = None,
    busy: bool = False,
    retune: bool = False,
    path: Optional[Path] = None,
    run: Callable[[Candidate], float] = probe,
    notes: Optional[List[str]] = None,
) -> Choice:
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
                seed_idle_steps(timings, cores)
                return Choice(by_name(decide(timings), cores), "cache", timings)
    start = time.perf_counter()
    timings, failures = measure(found, run=run)
    seconds = time.perf_counter() - start
    for name, error in failures.items():
        notes.append(f"note: the runtime probe failed under {by_name(name, cores).words}: {error}")
    if not any(timings.values()):
        return Choice(by_name("one", cores), "fallback", {})
    write_cache(path, key, timings)
    seed_idle_steps(timings, cores)
    return Choice(by_name(decide(timings), cores), "probe", timings, seconds)


def seed_idle_steps(
    timings: Mapping[str, Sequence[float]], cores: int, idle: Optional[IdleSteps] = None
) -> None:
    """Give the watcher this machine's idle step time of the probe's run, per candidate that
    runs NaiveEngine (:class:`gluon_bn.runtime.watch.IdleSteps`)."""
    idle = idle or IdleSteps()
    for name, values in timings.items():
        runtime = by_name(name, cores).runtime
        if values and runtime.engine == "naive":
            idle.seed(
                signature(PROBE_RUN, runtime.omp_threads, runtime.wait),
                statistics.median(values) / 1000,
            )
