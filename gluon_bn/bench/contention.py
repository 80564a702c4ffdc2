"""Time the runtimes beside other work: idle, one busy core, another MXNet run, two runs at once.

What ``gluon-bn bench --busy`` runs. Every measurement is a whole ``gluon-bn reproduce``
process (the command line's own load check included), and what it reports is the time of
its second epoch (the first pays for warm-up). The competing work is started and stopped
here, bounded in time, so a crashed bench leaves nothing spinning:

- ``idle``: nothing else;
- ``busy-core``: one single-threaded Python loop;
- ``beside-mxnet``: another MXNet training process (MXNet's default runtime, one core);
- ``two-runs``: two copies of the measured command, started together (both are timed).

Rounds alternate every runtime and scenario (A B C ... A B C ...), since the machine's
speed drifts; the table gives the median and range of each cell, and each cell's median
against the idle median of the package's default.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, TextIO, Tuple

from gluon_bn.harness import (
    ROUNDS,
    Turn,
    alternate,
    markdown_table,
    runtime_environment,
    span,
    spread,
)
from gluon_bn.runtime import RECORDED, usable_cores

SCENARIOS = ("idle", "busy-core", "beside-mxnet", "two-runs")
LIBGOMP_SPINCOUNT = 300000  # libgomp's own default spin count (OMP_WAIT_POLICY unset)
_EPOCH_TIME = re.compile(r"^epoch 2, .*time (\S+) sec$", re.M)
_THREADS = re.compile(r"^runtime: .*OpenMP threads (\d+)", re.M)


@dataclass(frozen=True)
class Contender:
    """One runtime to time: a label, extra ``reproduce`` arguments and environment variables."""

    label: str
    args: Tuple[str, ...] = ()
    env: Tuple[Tuple[str, str], ...] = ()


def contenders(cores: Optional[int] = None) -> List[Contender]:
    """Return the runtimes worth comparing on this machine, the package's default first.

    The default (the probe's choice at the start, or the load's, and the collapse guard)
    against every candidate the probe weighs, each fixed: all cores with libgomp's spinning
    threads, all cores with sleeping threads (the default before the probe), one thread,
    and MXNet's own runtime (what the documents ran).
    """
    n = str(cores or usable_cores())
    return [
        Contender("default (the probe's choice, or the load's; collapse guard)"),
        Contender(
            f"NaiveEngine, {n} threads, libgomp's spinning wait",
            ("--threads", n),
            (("GOMP_SPINCOUNT", str(LIBGOMP_SPINCOUNT)),),
        ),
        Contender(
            f"NaiveEngine, {n} threads, sleeping (OMP_WAIT_POLICY=PASSIVE)",
            ("--threads", n),
            (("OMP_WAIT_POLICY", "PASSIVE"),),
        ),
        Contender("NaiveEngine, 1 thread", ("--threads", "1")),
        Contender("MXNet's default runtime", ("--runtime", "default")),
    ]


@dataclass
class BusyPlan:
    """What ``bench --busy`` measures.

    Attributes
    ----------
    limit : int
        Training examples per epoch (the d2l-en LeNet, batch 256, fast pipeline).
    rounds : int
        Alternating rounds; each cell gets one time per round (two for ``two-runs``).
    scenarios : tuple of str
        From :data:`SCENARIOS`.
    timeout : float
        Seconds after which one measured process is stopped and counted as that long.
    data_root : str, optional
        Where the data is.
    """

    limit: int = 6400
    rounds: int = ROUNDS
    scenarios: Tuple[str, ...] = SCENARIOS
    timeout: float = 300.0
    data_root: Optional[str] = None
    contenders: List[Contender] = field(default_factory=contenders)

    def __post_init__(self):
        unknown = set(self.scenarios) - set(SCENARIOS)
        if unknown:
            raise ValueError(f"unknown scenario(s) {sorted(unknown)}; choose from {SCENARIOS}")
        if self.limit < 512 or self.rounds < 1:
            raise ValueError("bench --busy needs --limit >= 512 and --rounds >= 1")


def _clean_env(extra: Sequence[Tuple[str, str]] = ()) -> Dict[str, str]:
    """This process's environment without any runtime variable it records, `extra` set."""
    return runtime_environment(dict(extra), drop=RECORDED)


def _command(plan: BusyPlan, contender: Contender, out_dir: str) -> List[str]:
    command = [
        sys.executable,
        "-m",
        "gluon_bn.cli",
        "reproduce",
        "d2l-en",
        "--variant",
        "gluon",
        "--pipeline",
        "fast",
        "--device",
        "cpu",
        "--limit",
        str(plan.limit),
        "--test-limit",
        "1000",
        "--epochs",
        "2",
        "--seed",
        "5",
        "--quiet",
        "--out",
        out_dir,
        *contender.args,
    ]
    return command + (["--data-root", plan.data_root] if plan.data_root else [])


def _competitor(scenario: str, plan: BusyPlan, out_dir: str) -> Optional[subprocess.Popen]:
    """Start the bounded competing work of `scenario` (None for idle and two-runs)."""
    deadline = plan.timeout * 2
    if scenario == "busy-core":
        code = f"import time\nend = time.time() + {deadline}\nwhile time.time() < end: pass"
        return subprocess.Popen([sys.executable, "-c", code])
    if scenario == "beside-mxnet":
        busy = Contender("competitor", ("--runtime", "default", "--epochs", "1000"))
        proc = subprocess.Popen(
            _command(plan, busy, out_dir),
            env=_clean_env(),  # last --epochs wins
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(8)  # past its imports and data loading: training when the timing starts
        return proc
    return None


def _epoch_seconds(proc: subprocess.Popen, timeout: float) -> Tuple[float, Optional[int]]:
    """Wait for a measured process; return its second epoch's seconds (timeout if stopped)
    and the OpenMP threads it said it runs with."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return timeout, None
    match = _EPOCH_TIME.search(out or "")
    if proc.returncode != 0 or not match:
        raise RuntimeError(
            f"a measured run failed (exit {proc.returncode}):\n{(err or '')[-1500:]}"
        )
    threads = _THREADS.search(out)
    return float(match[1]), int(threads[1]) if threads else None


def measure(
    plan: BusyPlan, scenario: str, contender: Contender, out_dir: str
) -> List[Tuple[float, Optional[int]]]:
    """Run `contender` once under `scenario`; return (epoch-2 seconds, OpenMP threads) of
    each measured run (two for two-runs)."""
    competitor = _competitor(scenario, plan, out_dir + "-competitor")
    try:
        copies = 2 if scenario == "two-runs" else 1
        procs = [
            subprocess.Popen(
                _command(plan, contender, f"{out_dir}-{i}"),
                env=_clean_env(contender.env),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(copies)
        ]
        return [_epoch_seconds(proc, plan.timeout) for proc in procs]
    finally:
        if competitor is not None:
            competitor.kill()
            competitor.wait()


def run_busy(plan: BusyPlan, *, file: Optional[TextIO] = None) -> dict:
    """Time every contender under every scenario, rounds alternating; return the result.

    The measured runs' own records go to a temporary directory, removed at the end: only
    their printed epoch times count.
    """
    file = file or sys.stdout
    with tempfile.TemporaryDirectory(prefix="gluon-bn-busy-") as scratch:
        return _run_busy(plan, os.path.join(scratch, "busy-runs"), file)


def _run_busy(plan: BusyPlan, out_dir: str, file: TextIO) -> dict:
    """Time every (scenario, contender) cell once per round, the same order each round."""
    cells = [(scenario, contender) for scenario in plan.scenarios for contender in plan.contenders]

    def say(turn: Turn) -> None:
        scenario, contender = turn.cell
        print(
            f"[{turn.done}/{turn.total}] round {turn.round}, {scenario}, {contender.label}: "
            + ", ".join(f"{s:.2f} s ({n} thread(s))" for s, n in turn.value),
            file=file,
            flush=True,
        )

    measured = alternate(
        cells, lambda cell: measure(plan, *cell, out_dir), plan.rounds, report=say
    ).values
    times: Dict[str, Dict[str, List[float]]] = {
        c.label: {s: [] for s in plan.scenarios} for c in plan.contenders
    }
    threads: Dict[str, Dict[str, List[Optional[int]]]] = {
        c.label: {s: [] for s in plan.scenarios} for c in plan.contenders
    }
    for (scenario, contender), rounds in measured.items():
        runs = [run for runs in rounds for run in runs]  # two a round for two-runs
        times[contender.label][scenario] += [seconds for seconds, _ in runs]
        threads[contender.label][scenario] += [count for _, count in runs]
    return {
        "plan": {
            "limit": plan.limit,
            "rounds": plan.rounds,
            "scenarios": list(plan.scenarios),
            "timeout": plan.timeout,
            "cores": usable_cores(),
        },
        "contenders": [
            {"label": c.label, "args": list(c.args), "env": dict(c.env)} for c in plan.contenders
        ],
        "seconds": times,
        "omp_threads": threads,
    }


def format_busy(result: dict) -> str:
    """Return the Markdown table: median (range) of epoch-2 seconds, and x the default's idle."""
    seconds = result["seconds"]
    scenarios = result["plan"]["scenarios"]
    labels = [c["label"] for c in result["contenders"]]
    base = statistics.median(seconds[labels[0]]["idle"]) if "idle" in scenarios else None
    lines = markdown_table(
        ["runtime", *scenarios],
        (
            [label, *(_busy_cell(seconds[label][scenario], base) for scenario in scenarios)]
            for label in labels
        ),
    )
    timeout = result["plan"]["timeout"]
    return "\n".join(lines) + (
        f"\n\nEpoch-2 seconds of `reproduce d2l-en --variant gluon --pipeline fast --limit "
        f"{result['plan']['limit']}`, median (range) over {result['plan']['rounds']} "
        f"alternating round(s), and the median against the default's idle median. A run "
        f"stopped at the {timeout:.0f} s timeout counts as {timeout:.0f} s."
    )


def _busy_cell(values: Sequence[float], base: Optional[float]) -> str:
    """One cell of :func:`format_busy`: median (range, and x the default's idle median)."""
    s = spread(values)
    return span(s, 2, f", {s['median'] / base:.1f}x" if base else "")
