"""What a worker runs for a reproduction: one variant with one seed, as data.

A light module (no MXNet at import): :func:`gluon_bn.scale.backend.one_thread` sets the
worker's OpenMP threads before the task's own imports load MXNet. Tasks write no files.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Dict, Optional, TextIO, Tuple

from gluon_bn.scale.backend import one_thread


def reproduce_run(
    recipe_name: str, options, variant: str, seed: int, device: str
) -> Tuple[object, str, Dict[str, object]]:
    """Train one variant of a recipe with one seed; return (VariantRun, its printed lines, environment).

    Parameters
    ----------
    recipe_name : str
        As ``gluon-bn reproduce RECIPE``.
    options : gluon_bn.options.RunOptions
        The run's options (resolved on the worker, as a serial run resolves them).
    variant : str
        ``scratch``, ``gluon`` or ``plain``.
    seed : int
        The run's seed.
    device : str
        As ``--device``.
    """
    one_thread()
    from gluon_bn.device import parse_device
    from gluon_bn.report.provenance import environment
    from gluon_bn.run.reproduce import resolve, run_variant

    lines = io.StringIO()
    ctx = parse_device(device, file=io.StringIO())
    run = resolve(recipe_name, options, file=io.StringIO())
    record = run_variant(run, variant, seed, ctx, file=lines, progress=False)
    return record, lines.getvalue(), environment(ctx)


def reproduce_on(
    backend,
    recipe_name: str,
    options,
    ctx,
    *,
    out_dir: Optional[Path] = None,
    file: Optional[TextIO] = None,
    device: str = "cpu",
) -> Tuple[object, dict]:
    """:func:`gluon_bn.run.reproduce.reproduce` with one task per variant and seed on `backend`.

    Each finished run's lines are printed as it arrives (completion order); the record keeps
    the runs in the serial order (seed by seed, variant by variant), with the workers'
    environment, and is rewritten after every run.

    Parameters
    ----------
    backend
        A distributed backend (:func:`gluon_bn.scale.backend.open_backend`); its workers train
        with one OpenMP thread each.
    recipe_name, options, ctx, out_dir, file
        As for :func:`gluon_bn.run.reproduce.reproduce`.
    device : str
        The ``--device`` string the workers parse.

    Raises
    ------
    RunsFailed
        When some runs raised; the others are written.
    """
    from gluon_bn.report import write_outputs
    from gluon_bn.run.reproduce import build_native, make_result, output_stem, resolve
    from gluon_bn.scale.fanout import RunsFailed, fan_out

    file = file or sys.stdout
    run = resolve(recipe_name, options, file=file)
    build_native(run, ctx)
    order = [(seed, variant) for seed in run.seeds for variant in run.variants]
    print(
        f"{len(order)} run(s) on {backend.describe()}, one OpenMP thread each",
        file=file,
        flush=True,
    )
    result, finished, paths = make_result(run, ctx), {}, {}

    def done(unit, answer) -> None:
        nonlocal paths
        record, lines, env = answer
        print(lines, end="", file=file, flush=True)
        finished[unit] = record
        result.environment = env
        result.runs = [finished[u] for u in order if u in finished]
        if out_dir is not None:
            paths = write_outputs(result, Path(out_dir), output_stem(run))

    def lost(unit, line) -> None:
        seed, variant = unit
        print(f"{recipe_name} / {variant} / seed {seed}: FAILED: {line}", file=file, flush=True)

    units = {
        (seed, variant): (reproduce_run, (recipe_name, options, variant, seed, device))
        for seed, variant in order
    }
    failed = fan_out(backend, recipe_name, units, done, lost)
    if failed:
        raise RunsFailed(
            f"{len(failed)} of {len(order)} run(s) failed (the others are written"
            f"{f' to {out_dir}' if out_dir is not None else ''}):\n"
            + "\n".join(f"{variant}, seed {seed}: {line}" for (seed, variant), line in failed)
        )
    return result, paths
