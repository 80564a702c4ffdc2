"""What the scale-out buys: a study grid serial against a local Dask cluster, runs per hour
against workers, and the coordinator's cost per task (``gluon-bn bench --scale-out``).

Three measurements, each round alternating its contenders (the machine's speed drifts):

- ``grid``: the wall time of one whole ``gluon-bn study`` command, serial with ``--threads
  CORES`` against ``--jobs CORES``, as a user starts them (interpreter, MXNet, the cluster's
  start and every run included);
- ``workers``: runs per hour of the same grid on a local cluster of 1, 2, ... workers, timed
  from the moment the cluster answers, and the cluster's start separately; more workers than
  cores are allowed here only, and labelled oversubscribed;
- ``overhead``: the time a task costs the coordinator on a 2-worker cluster, from tasks that
  do nothing (submit, schedule, run, return).

Every measurement also records how busy the cores were just before it started
(:func:`gluon_bn.runtime.busy_cores`), so a reader sees which figures other work touched.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, TextIO, Tuple

from gluon_bn.harness import (
    ROUNDS,
    Turn,
    alternate,
    json_child_main,
    markdown_table,
    run_child,
    run_json_child,
    span,
    spread,
)
from gluon_bn.runtime import busy_cores, usable_cores

MODULE = "gluon_bn.bench.scaleout"


@dataclass(frozen=True)
class ScaleOutPlan:
    """What ``bench --scale-out`` times.

    Attributes
    ----------
    study : str
        A study whose numbers do not depend on time (its grid is what is fanned out).
    fraction, epochs, seeds : float, int, int
        The grid's settings (as ``gluon-bn study --fraction --epochs --seeds``).
    workers : tuple of int
        Local cluster sizes for runs per hour; those above the cores are oversubscribed.
    rounds : int
        Alternating rounds of each measurement.
    tasks : int
        Empty tasks timed for the coordinator's overhead.
    """

    study: str = "covariate-shift"
    fraction: float = 0.1
    epochs: int = 3
    seeds: int = 4
    workers: tuple = (1, 2, 4)
    rounds: int = ROUNDS
    tasks: int = 200

    def study_args(self) -> List[str]:
        """Return the ``gluon-bn study`` arguments of the grid (output folder left out)."""
        return [
            self.study,
            "--fraction",
            f"{self.fraction:g}",
            "--epochs",
            str(self.epochs),
            "--seeds",
            str(self.seeds),
            "--quiet",
        ]


def _load() -> Optional[float]:
    """Cores kept busy by other processes just now (None where it cannot be read)."""
    value = busy_cores()
    return None if value is None else round(value, 2)


def time_command(args: Sequence[str], *, what: str) -> float:
    """Run ``python -m gluon_bn.cli ARGS`` to the end; return its wall-clock seconds."""
    started = time.perf_counter()
    run_child(["-m", "gluon_bn.cli", *args], what=what)
    return time.perf_counter() - started


def grid_flags(cores: int) -> Dict[str, List[str]]:
    """Return the grid's two ways, label to ``gluon-bn study`` flags: serial, then on jobs."""
    return {
        f"serial --threads {cores}": ["--threads", str(cores)],
        f"--jobs {cores}": ["--jobs", str(cores)],
    }


def time_grid(plan: ScaleOutPlan, label: str, flags: Sequence[str]) -> float:
    """Time the whole grid once as ``gluon-bn study ... FLAGS``; return its wall seconds."""
    with tempfile.TemporaryDirectory(prefix="gluon-bn-scaleout-") as out:
        return time_command(
            ["study", *plan.study_args(), *flags, "--out", out], what=f"bench --scale-out: {label}"
        )


def workers_job(plan: ScaleOutPlan, workers: int) -> dict:
    """Train the grid on a local cluster of `workers` (in this process: the child's side)."""
    from gluon_bn.scale.backend import DaskBackend, check_workers, local_cluster
    from gluon_bn.study.registry import get_study
    from gluon_bn.study.runner import run_study

    study = get_study(plan.study)
    settings = study.settings(seeds=plan.seeds, epochs=plan.epochs, fraction=plan.fraction)
    started = time.perf_counter()
    client, cluster = local_cluster(workers)
    with DaskBackend(client, cluster, f"a local cluster of {workers}") as backend:
        check_workers(client, "the local cluster")
        ready = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="gluon-bn-scaleout-") as out:
            record, _ = run_study(
                study, settings, Path(out), file=open_null(), progress=False, backend=backend
            )
        finished = time.perf_counter()
    runs = [run for config in record.configurations for run in config.runs]
    return {
        "start_seconds": ready - started,
        "grid_seconds": finished - ready,
        "runs": len(runs),
        "run_seconds": [run["train_seconds"] for run in runs],
    }


def overhead_job(tasks: int, workers: int = 2) -> dict:
    """Time `tasks` empty tasks through a local cluster's submit / as_completed seam."""
    from gluon_bn.scale.backend import DaskBackend, local_cluster, worker_version

    client, cluster = local_cluster(workers)
    with DaskBackend(client, cluster, f"a local cluster of {workers}") as backend:
        for future in backend.as_completed([backend.submit(worker_version, key="warm-up")]):
            future.result()
        started = time.perf_counter()
        futures = [backend.submit(worker_version, key=f"empty-{i}") for i in range(tasks)]
        for future in backend.as_completed(futures):
            future.result()
        seconds = time.perf_counter() - started
    return {
        "tasks": tasks,
        "workers": workers,
        "seconds": seconds,
        "ms_per_task": 1000 * seconds / tasks,
    }


def open_null() -> TextIO:
    """A text stream that swallows the study's per-run lines."""
    import io

    return io.StringIO()


def _child(job: dict) -> dict:
    """The measurement a child process runs (:func:`main`): ``workers`` or ``overhead``."""
    plan = ScaleOutPlan(**{**job["plan"], "workers": tuple(job["plan"]["workers"])})
    if job["kind"] == "workers":
        return workers_job(plan, job["workers"])
    return overhead_job(plan.tasks)


def round_cells(plan: ScaleOutPlan, cores: int) -> List[Tuple[str, str]]:
    """Return a round's measurements in order as (kind, name): grid, cluster sizes, overhead."""
    return (
        [("grid", label) for label in grid_flags(cores)]
        + [("workers", str(count)) for count in plan.workers]
        + [("overhead", "overhead")]
    )


def measure(plan: ScaleOutPlan, cores: int, kind: str, name: str) -> dict:
    """Make one measurement of :func:`round_cells`; return it with the cores busy before it."""
    load = _load()
    job = {"plan": asdict(plan)}
    if kind == "grid":
        answer = {"seconds": time_grid(plan, name, grid_flags(cores)[name])}
    elif kind == "workers":
        answer = run_json_child(
            MODULE,
            {**job, "kind": "workers", "workers": int(name)},
            what=f"bench --scale-out: {name} worker(s)",
        )
    else:
        answer = run_json_child(
            MODULE, {**job, "kind": "overhead"}, what="bench --scale-out: overhead"
        )
    return {**answer, "load": load}


def _say(turn: Turn, file: TextIO) -> None:
    """Print one measurement of :func:`run_scale_out` as it comes."""
    (kind, name), a = turn.cell, turn.value
    if kind == "grid":
        what = f"grid, {name}: {a['seconds']:.1f} s (load {a['load']})"
    elif kind == "workers":
        what = (
            f"{name} worker(s): {3600 * a['runs'] / a['grid_seconds']:.0f} runs/hour "
            f"(start {a['start_seconds']:.1f} s, load {a['load']})"
        )
    else:
        what = f"overhead: {a['ms_per_task']:.1f} ms/task (load {a['load']})"
    print(f"[round {turn.round}/{turn.rounds}] {what}", file=file, flush=True)


def run_scale_out(plan: ScaleOutPlan, file: Optional[TextIO] = None) -> dict:
    """Run every measurement of `plan` in alternating rounds; return them as JSON-ready data."""
    from gluon_bn.report.provenance import environment

    file = file or sys.stdout
    cores = usable_cores()
    cells = round_cells(plan, cores)
    values = alternate(
        cells,
        lambda cell: measure(plan, cores, *cell),
        plan.rounds,
        report=lambda turn: _say(turn, file),
    ).values
    grid = {name: values[(kind, name)] for kind, name in cells if kind == "grid"}
    workers = {name: values[(kind, name)] for kind, name in cells if kind == "workers"}
    return {
        "plan": asdict(plan),
        "cores": cores,
        "grid": grid,
        "workers": workers,
        "overhead": values[("overhead", "overhead")],
        "environment": environment(None),
    }


def _spread(values: Sequence[float], digits: int = 1) -> str:
    """``median (min-max)`` of `values` to `digits` decimals."""
    return span(spread(values), digits)


def format_scale_out(result: dict) -> str:
    """Return the Markdown tables: grid wall times, runs per hour per workers, overhead."""
    plan, cores = result["plan"], result["cores"]
    labels = list(result["grid"])
    serial = statistics.median(a["seconds"] for a in result["grid"][labels[0]])
    lines = [
        f"Grid: `gluon-bn study {' '.join(ScaleOutPlan(**{**plan, 'workers': ()}).study_args())}`"
        f" on {cores} usable cores, median (range) of {plan['rounds']} alternating rounds.",
        "",
        *markdown_table(
            ["how", "wall seconds", "x serial", "cores busy before (max)"],
            _grid_rows(result["grid"], serial),
        ),
        "",
        *markdown_table(
            [
                "local workers",
                "runs per hour",
                "cluster start, s",
                "worker seconds per run",
                "training seconds per run",
                "cores busy before (max)",
            ],
            _worker_rows(result["workers"], cores),
        ),
    ]
    per_task = [a["ms_per_task"] for a in result["overhead"]]
    lines += [
        "",
        f"Coordinator overhead: {_spread(per_task)} ms per empty task "
        f"({plan['tasks']} tasks on 2 workers, per round).",
    ]
    return "\n".join(lines)


def _busiest(answers: Sequence[dict]) -> object:
    """The most cores found busy before any of `answers` (``n/a`` where none could be read)."""
    loads = [a["load"] for a in answers if a["load"] is not None]
    return max(loads) if loads else "n/a"


def _grid_rows(grid: Dict[str, List[dict]], serial: float) -> List[list]:
    """The grid table's rows: wall seconds, against the serial median, busy cores."""
    rows = []
    for label, answers in grid.items():
        seconds = [a["seconds"] for a in answers]
        rows.append(
            [
                label,
                _spread(seconds),
                f"{statistics.median(seconds) / serial:.2f}",
                _busiest(answers),
            ]
        )
    return rows


def _worker_rows(workers: Dict[str, List[dict]], cores: int) -> List[list]:
    """The cluster table's rows: runs per hour, start, seconds per run, busy cores."""
    rows = []
    for count, answers in workers.items():
        rates = [3600 * a["runs"] / a["grid_seconds"] for a in answers]
        starts = [a["start_seconds"] for a in answers]
        runs = [s for a in answers for s in a["run_seconds"]]
        # A worker's seconds per run (its share of the grid's wall time) against the
        # training seconds the run itself recorded: the rest is the run's fixed cost
        # (building the net, reading the data) and the task's round trip.
        per_run = [int(count) * a["grid_seconds"] / a["runs"] for a in answers]
        label = count + (" (oversubscribed)" if int(count) > cores else "")
        rows.append(
            [
                label,
                _spread(rates, 0),
                _spread(starts),
                _spread(per_run),
                f"{statistics.median(runs):.1f}",
                _busiest(answers),
            ]
        )
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Be the child process of :func:`run_scale_out`: one measurement, one JSON line."""
    return json_child_main(
        argv,
        prog=f"python -m {MODULE}",
        description="one measurement of gluon-bn bench --scale-out",
        answer=_child,
    )


if __name__ == "__main__":
    sys.exit(main())
