"""The one watcher of a run's speed: load that arrives after the run started, or came with it.

Several OpenMP threads wait for the slowest one, so a core taken by another process makes
every parallel operator slow (3x beside a busy core on the 2-vCPU AMD EPYC VM); one thread
does not wait. :class:`LoadWatch` compares the run's step times (wall-clock intervals
between batches, the real step times under the synchronous NaiveEngine) with a baseline:

- this machine's **idle** step time for the same run (same network, pipeline, batch, threads
  and wait policy), from :class:`IdleSteps`, a per-machine cache that the runtime probe seeds
  for its own step and every watched run keeps up to date (the fastest window seen); so two
  runs started together, slow from their first step, are caught;
- where nothing is cached yet, the median of the run's own first window.

A collapse is a window whose median is more than `factor` times the baseline. Dropping to one
thread changes the arithmetic (the thread count), so it happens only when the run asked for
no count; otherwise the watch says once that the run keeps its count. Under MXNet's threaded
engine step intervals are not step times, so there the watch compares whole epochs and only
says so (an epoch more than `factor` times the run's fastest).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional

from gluon_bn.runtime.machine import cache_path, machine_key, save_json
from gluon_bn.runtime.settings import synchronous_engine, threads_in_effect

_SET_TO: Optional[int] = None  # the count set mid-run in this process, if any
# What makes two runs' step times comparable (with the threads and wait policy).
SIGNATURE_FIELDS = ("recipe", "variant", "bn_impl", "pipeline", "hybridize", "batch_size")
LIKE_THE_PROBE = 1.5  # a run's idle steps within this factor of the probe's replace its estimate
# The runtime probe's own step as a run (gluon_bn.run.probe_step: d2l-en's LeNet with
# nn.BatchNorm compiled as one graph, batch 256, data in memory).
PROBE_RUN = {
    "recipe": "d2l-en",
    "variant": "gluon",
    "pipeline": "fast",
    "hybridize": "graph",
    "batch_size": 256,
}


def set_omp_threads(count: int) -> None:
    """Set the OpenMP threads of MXNet's later operators in this process (MXNet loaded)."""
    import ctypes

    from gluon_bn.runtime.loader import mx

    global _SET_TO
    mx.base.check_call(mx.base._LIB.MXSetNumOMPThreads(ctypes.c_int(count)))
    _SET_TO = count


def threads_now() -> int:
    """Return the OpenMP threads MXNet's operators use now: as loaded, or as set mid-run."""
    from gluon_bn.runtime.loader import LOADED_WITH

    return _SET_TO if _SET_TO is not None else threads_in_effect(LOADED_WITH)


def signature(run: Mapping[str, object], threads: int, wait: Optional[str]) -> str:
    """Return the key of a run's idle step time: its :data:`SIGNATURE_FIELDS`, threads, wait."""
    fields = {k: run.get(k) for k in SIGNATURE_FIELDS}
    if fields["variant"] != "scratch":
        fields["bn_impl"] = None  # only the scratch layer has implementations
    return json.dumps({**fields, "threads": threads, "wait": wait}, sort_keys=True)


class IdleSteps:
    """This machine's idle seconds per training step, per run signature (a JSON cache).

    The runtime probe seeds its own step's signature (:meth:`seed`); a run then keeps the
    fastest window median it saw (:meth:`offer`): it replaces the probe's estimate when within
    :data:`LIKE_THE_PROBE` of it (the run's own steps include its data and metrics), and
    otherwise only ever lowers the value, so a run slowed by load never raises it. The file is
    keyed by the machine (CPU model, cores, oneDNN cap, MXNet version).

    Parameters
    ----------
    path : Path, optional
        Default ``idle_steps.json`` beside the runtime probe's cache.
    """

    def __init__(self, path: Optional[Path] = None):
        self.path = path or cache_path().with_name("idle_steps.json")
        self.key = machine_key()
        try:
            data = json.loads(self.path.read_text())
            steps = data["steps"] if data.get("key") == self.key else {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            steps = {}
        self.steps: Dict[str, dict] = {
            k: v
            for k, v in steps.items()
            if isinstance(v, dict)
            and isinstance(v.get("seconds"), (int, float))
            and v["seconds"] > 0
        }

    def get(self, key: Optional[str]) -> Optional[float]:
        """Return the idle seconds per step of signature `key`, or None."""
        entry = self.steps.get(key) if key else None
        return float(entry["seconds"]) if entry else None

    def seed(self, key: str, seconds: float) -> None:
        """Record the probe's measurement for `key` (it replaces an earlier probe's); save."""
        entry = self.steps.get(key, {})
        if entry.get("source") == "run" or entry.get("seconds") == seconds:
            return
        self.steps[key] = {"seconds": seconds, "source": "probe"}
        self._save()

    def offer(self, key: Optional[str], seconds: float) -> None:
        """Keep a run's fastest window `seconds` for `key` where it is the better estimate."""
        if not key or not seconds > 0:
            return
        entry = self.steps.get(key)
        if entry is not None and (
            seconds >= entry["seconds"]
            if entry["source"] == "run"
            else seconds > LIKE_THE_PROBE * entry["seconds"]
        ):
            return
        self.steps[key] = {"seconds": seconds, "source": "run"}
        self._save()

    def _save(self) -> None:
        save_json(self.path, {"key": self.key, "steps": self.steps})


class LoadWatch:
    """Watch one process's runs for load and drop them to one thread when they collapse.

    Parameters
    ----------
    threads : int
        The runs' OpenMP threads (one thread cannot collapse this way: nothing is watched).
    allowed : bool
        The runs may change their thread count (no ``--threads``, no restored checkpoint).
    factor : float
        How much slower than the baseline counts as a collapse.
    window, warmup : int
        Steps per median, and steps left out at the start of each run.
    drop : callable, optional
        Sets MXNet's OpenMP threads (default :func:`set_omp_threads`).
    clock : callable
        Seconds (tests pass a fake clock).
    idle : IdleSteps, optional
        This machine's idle step times (None: each run's own first window is its baseline).
    synchronous : bool
        The engine is NaiveEngine: step intervals are step times. Else epochs are compared.
    wait : str, optional
        ``OMP_WAIT_POLICY`` of the runs (part of the idle signature).
    """

    def __init__(
        self,
        threads: int,
        *,
        allowed: bool,
        factor: float = 2.0,
        window: int = 20,
        warmup: int = 5,
        drop: Optional[Callable[[int], None]] = None,
        clock: Callable[[], float] = time.perf_counter,
        idle: Optional[IdleSteps] = None,
        synchronous: bool = True,
        wait: Optional[str] = None,
    ):
        self.threads, self.allowed = threads, allowed
        self.factor, self.window, self.warmup = factor, window, warmup
        self._drop, self._clock = drop or set_omp_threads, clock
        self.idle, self.synchronous, self.wait = idle, synchronous, wait
        self.events: List[Dict[str, object]] = []
        self.done = threads < 2
        self.warned = False
        self.begin({})

    def begin(
        self, label: Mapping[str, object], run: Optional[Mapping[str, object]] = None
    ) -> None:
        """Start watching a new run: `label` names it in the events, `run` its signature fields."""
        self.label = dict(label)
        self.epoch, self.batch = 1, 0
        self._last: Optional[float] = None
        self._seen = 0
        self._window: List[float] = []
        self._best: Optional[float] = None  # fastest window median of this run
        self._fastest_epoch: Optional[float] = None
        self.key = signature(run, self.threads, self.wait) if run else None
        known = self.idle.get(self.key) if self.idle else None
        self.baseline: Optional[float] = known
        self.from_cache = known is not None

    def epoch_ended(self, stats=None) -> Optional[str]:
        """Mark an epoch's end (the next interval spans the test pass and is not counted);
        off NaiveEngine, compare the epoch's time (`stats.seconds`) with the run's fastest."""
        self.epoch, self.batch, self._last = self.epoch + 1, 0, None
        if self._best is not None and self.idle is not None:
            self.idle.offer(self.key, self._best)
        if self.synchronous or stats is None or self.threads < 2:
            return None
        return self._epoch_note(stats.epoch, stats.seconds)

    def _epoch_note(self, epoch: int, seconds: float) -> Optional[str]:
        if epoch <= 1 or self._fastest_epoch is None:
            self._fastest_epoch = (
                seconds if epoch <= 1 or self._fastest_epoch is None else self._fastest_epoch
            )
            return None
        self._fastest_epoch = min(self._fastest_epoch, seconds)
        if self.warned or seconds <= self.factor * self._fastest_epoch:
            return None
        self.warned = True
        return (
            f"note: epoch {epoch} took {seconds:.1f} s, "
            f"{seconds / self._fastest_epoch:.1f}x this run's fastest: other processes now "
            f"share the cores, and {self.threads} OpenMP threads wait on each other. The run "
            f"keeps its thread count (its numbers depend on it); next time, --threads 1 "
            f"avoids the wait on a busy machine (with other numbers)."
        )

    def after_batch(self) -> Optional[str]:
        """Feed the end of one batch; return the one line to print when the watch acts."""
        now = self._clock()
        last, self._last = self._last, now
        self.batch += 1
        if self.done or last is None or not self.synchronous:
            return None
        self._seen += 1
        if self._seen <= self.warmup:
            return None
        self._window = (self._window + [now - last])[-self.window :]
        if len(self._window) < self.window:
            return None
        slow = statistics.median(self._window)
        self._best = slow if self._best is None else min(self._best, slow)
        if self.baseline is None:  # nothing cached: the run's own first window
            self.baseline, self._window = slow, []
            return None
        if slow <= self.factor * self.baseline:
            return None
        return self._collapsed(slow / self.baseline)

    def _collapsed(self, ratio: float) -> str:
        self.done = True
        where = f"epoch {self.epoch}, batch {self.batch}"
        base = "this machine's idle steps" if self.from_cache else "this run's first ones"
        if not self.allowed:
            return (
                f"note: {where}: steps take {ratio:.1f}x {base} (other processes share "
                f"the cores); --threads fixes the count at {self.threads}, so the run "
                f"keeps it (its numbers depend on it)"
            )
        self._drop(1)
        self.events.append(
            {
                **self.label,
                "epoch": self.epoch,
                "batch": self.batch,
                "from": self.threads,
                "to": 1,
                "slowdown": round(ratio, 2),
            }
        )
        return (
            f"note: {where}: steps take {ratio:.1f}x {base} (other processes share the "
            f"cores), so this process drops from {self.threads} OpenMP threads to 1 from "
            f"here on; its numbers from here differ from an undisturbed run's (recorded as "
            f"thread_changes); --threads {self.threads} keeps the count whatever the load"
        )


def load_watch(requested: Optional[int]) -> Optional[LoadWatch]:
    """Return the watch for this process's runs, or None with one thread.

    A run given a count (`requested`: ``--threads``, ``OMP_NUM_THREADS`` or a restored
    checkpoint) keeps it and only gets a note.
    """
    import os

    threads = threads_in_effect()
    if threads < 2:
        return None
    return LoadWatch(
        threads,
        allowed=requested is None,
        idle=IdleSteps(),
        synchronous=synchronous_engine(),
        wait=os.environ.get("OMP_WAIT_POLICY"),
    )
