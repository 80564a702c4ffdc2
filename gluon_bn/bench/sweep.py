"""``gluon-bn bench --sweep-runtimes``: the bench once per runtime, each in a fresh process.

MXNet reads its engine and threads once, when it loads, so each runtime times the plan in its
own ``python -m gluon_bn.bench.bench PLAN_JSON`` with only that runtime's variables (any
inherited MXNET_ENGINE_TYPE / OMP_NUM_THREADS removed); the table gives seconds per epoch,
a column per runtime.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, TextIO, Tuple

from gluon_bn.harness import markdown_table, run_json_child, runtime_environment
from gluon_bn.runtime import DEFAULT, Runtime, describe

if TYPE_CHECKING:
    from gluon_bn.bench.bench import BenchPlan

CHILD = "gluon_bn.bench.bench"  # its main times one BenchPlan in its own process
# What `bench --sweep-runtimes` compares: MXNet's default, engine x OpenMP threads, and with
# two NaiveEngine threads each wait policy (sleeping, libgomp's own spin, ACTIVE); the
# probe's start-up choice is added as a last column (:func:`sweep_plan`).
SWEEP = (
    DEFAULT,
    Runtime("threaded", 1),
    Runtime("threaded", 2),
    Runtime("naive", 1),
    Runtime("naive", 2),
    Runtime("naive", 2, "PASSIVE"),
    Runtime("naive", 2, "ACTIVE"),
)


def sweep_plan(cores: Optional[int] = None) -> List[Tuple[str, Runtime]]:
    """Return the sweep's (heading, runtime) columns, ending with this machine's start-up choice."""
    from gluon_bn.runtime import probe

    columns = [(_short(rt.variables()), rt) for rt in SWEEP]
    choice = probe.choose(cores=cores)
    columns.append((f"start-up choice: {choice.candidate.words}", choice.candidate.runtime))
    return columns


def sweep_runtimes(
    plan: "BenchPlan",
    runtimes: Optional[Sequence[Runtime]] = None,
    *,
    file: Optional[TextIO] = None,
) -> dict:
    """Time `plan` once per runtime, each in a fresh process; return every table.

    Parameters
    ----------
    plan : BenchPlan
        What each runtime times.
    runtimes : sequence of Runtime, optional
        Default :func:`sweep_plan`: :data:`SWEEP` and this machine's start-up choice.
    file : text stream, optional
        Where progress and tables go (default stdout).

    Returns
    -------
    dict
        ``{"runs": [{"runtime": words, "variables": {...}, "result": bench result}, ...]}``.
    """
    from gluon_bn.bench.bench import format_table

    file = file or sys.stdout
    runs = []
    columns = sweep_plan() if runtimes is None else [(_short(r.variables()), r) for r in runtimes]
    for i, (heading, rt) in enumerate(columns, 1):
        words = describe(rt.variables())
        print(f"== runtime {i}/{len(columns)}: {heading}: {words}", file=file, flush=True)
        result = run_json_child(
            CHILD,
            asdict(plan),
            what=f"bench under {words}",
            env=runtime_environment(rt.variables()),
        )
        print(format_table(result), file=file, flush=True)
        runs.append(
            {"runtime": words, "heading": heading, "variables": rt.variables(), "result": result}
        )
    return {"runs": runs}


def _short(variables: Dict[str, str]) -> str:
    """A runtime's table heading, e.g. ``NaiveEngine, OMP 2``."""
    if not variables:
        return "MXNet's default"
    engine = variables.get("MXNET_ENGINE_TYPE", "default engine")
    wait = f", {variables['OMP_WAIT_POLICY']}" if variables.get("OMP_WAIT_POLICY") else ""
    return f"{engine}, OMP {variables.get('OMP_NUM_THREADS', 'default')}{wait}"


def format_sweep(sweep: dict) -> str:
    """Return the Markdown table of a runtime sweep: seconds per epoch, a column per runtime."""
    runs = sweep["runs"]
    labels = [row["label"] for row in runs[0]["result"]["rows"]]
    names = [run.get("heading") or _short(run["variables"]) for run in runs]
    rows = [
        [label, *(f"{_row(run, label)['seconds_per_epoch']:.2f}" for run in runs)]
        for label in labels
    ]
    return "\n".join(markdown_table(["path", *names], rows))


def _row(run: dict, label: str) -> dict:
    """The row of `label` in one runtime's bench result."""
    return next(r for r in run["result"]["rows"] if r["label"] == label)
