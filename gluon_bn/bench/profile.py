"""``gluon-bn bench --profile``: MXNet's profiler over training steps, per operator, for each path.

Each path trains its warm-up batches, then ``batches`` more under the profiler (imperative
operators and compiled graphs both recorded, statistics aggregated). The profiler's
``operator`` domain gives every operator's calls and total time; divided by the number of
batches, that is one training step. The wall time of the same batches, less the operators'
total, is what ran outside MXNet's operators: Python, autograd's bookkeeping, the calls into
the library. The split is exact only with the synchronous NaiveEngine (operators then run
on the calling thread), which the tuned runtime selects, and for imperative paths: in a
static graph the profiler reports each compiled segment as one entry named by its operators,
and these times overlap, so their sum can exceed the wall time and the time outside then
reads 0 (a lower bound). The train_ch5 pass also evaluates
one test batch at its end, a forward pass the step's rows include (about one step in
``3 * batches``).
"""

from __future__ import annotations

from typing import List, Optional, Sequence

from gluon_bn.harness import markdown_table
from gluon_bn.run.timing import operator_times

TOP = 8  # operators named per path in the Markdown table; the rest are summed


def profile_step(
    config,
    recipe_name: str = "d2l-en",
    *,
    batches: int = 20,
    warmup_batches: int = 5,
    seed: int = 0,
    ctx=None,
    data_root: Optional[str] = None,
) -> dict:
    """Profile `batches` training steps of one bench path after its warm-up; return per-step ms.

    Parameters
    ----------
    config : BenchConfig
        The path.
    recipe_name : str
        Whose network, batch size and learning rate.
    batches : int
        Steps profiled.
    warmup_batches, seed, ctx, data_root
        As for :func:`gluon_bn.run.timing.time_config`.

    Returns
    -------
    dict
        ``label``, ``wall_ms`` and ``operator_ms`` per step, ``outside_ms`` (their
        difference, at least 0) and ``operators``: ``[name, calls per step, ms per step]``,
        slowest first.
    """
    from gluon_bn.run.timing import prepare_bench, slice_data, train_slice

    net, trainer, batch = prepare_bench(config, recipe_name, seed=seed, ctx=ctx)
    warmup, profiled = (
        slice_data(config, recipe_name, limit=n * batch, seed=seed, data_root=data_root)
        for n in (warmup_batches, batches)
    )
    train_slice(net, trainer, warmup, batch, ctx)
    # the profiled slice's data is loaded above: file reading is not part of a step
    wall, ops = operator_times(lambda: train_slice(net, trainer, profiled, batch, ctx))
    rows = sorted(
        ([name, calls / batches, ms / batches] for name, (calls, ms) in ops.items()),
        key=lambda row: -row[2],
    )
    operator_ms = sum(row[2] for row in rows)
    return {
        "label": config.label,
        "batches": batches,
        "wall_ms": wall / batches,
        "operator_ms": operator_ms,
        "outside_ms": max(0.0, wall / batches - operator_ms),
        "operators": rows,
    }


def operator_name(name: str, shown: int = 3) -> str:
    """Return an operator's name for a table; a compiled segment's list of operators (which
    MXNet's profiler cuts at 128 characters) is shortened to its first `shown`."""
    ops = name.split(",")
    if len(ops) <= shown:
        return f"`{name}`"
    return f"segment `{','.join(ops[:shown])},...`"


def format_profile(profiles: Sequence[dict], top: int = TOP) -> str:
    """Return one Markdown table per path: its `top` operators, the rest, and the time outside."""
    return "\n\n".join(profile_table(p, top) for p in profiles)


def profile_table(p: dict, top: int = TOP) -> str:
    """Return one path's table of :func:`format_profile`, under a line naming the path.

    Parameters
    ----------
    p : dict
        From :func:`profile_step`.
    top : int
        Operators named; the rest are summed in one row.
    """

    def row(name: str, calls: Optional[float], ms: float) -> List[str]:
        count = "" if calls is None else f"{calls:g}"
        return [name, count, f"{ms:.2f}", f"{ms / p['wall_ms']:.0%}"]

    rows = [row(operator_name(name), calls, ms) for name, calls, ms in p["operators"][:top]]
    rest = p["operators"][top:]
    if rest:
        rows.append(
            row(f"{len(rest)} other operators", sum(r[1] for r in rest), sum(r[2] for r in rest))
        )
    rows.append(row("outside operators (Python, autograd, calls)", None, p["outside_ms"]))
    title = f"**{p['label']}**: {p['wall_ms']:.2f} ms per step ({p['batches']} steps profiled)"
    return "\n".join(
        [
            title,
            "",
            *markdown_table(["operator", "calls/step", "ms/step", "share"], rows, align="lrrr"),
        ]
    )
