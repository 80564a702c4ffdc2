"""``gluon-bn bench``: which timing its flags ask for, run through :mod:`gluon_bn.run`, written
as STEM.json, STEM.md and (where a chart helps) STEM.png under ``--out``.

The command line (:mod:`gluon_bn.cli`) parses the arguments and sets the runtime before
MXNet loads; everything here imports its timing module only when asked.
"""

from __future__ import annotations

import sys
from typing import Optional

from gluon_bn.harness import write_outputs


def _bench_impls(choice: str) -> tuple:
    """The scratch implementations `--bn-impl` asks the bench to time ("all" only where they run)."""
    if choice == "both":
        return ("faithful", "fast")
    if choice != "all":
        return (choice,)
    from gluon_bn.bn.native import unavailable_reason
    from gluon_bn.options import BN_IMPLS

    reason = unavailable_reason()
    if reason:
        print(f"bench: leaving out --bn-impl native: {reason}", file=sys.stderr)
        return ("faithful", "fast")
    return BN_IMPLS


def _bench_plan(args):
    """The :class:`gluon_bn.bench.bench.BenchPlan` that `args` describe."""
    from gluon_bn.bench.bench import BenchPlan

    return BenchPlan(
        recipe=args.recipe,
        fraction=args.fraction,
        pipelines=("d2l", "fast") if args.pipeline == "both" else (args.pipeline,),
        impls=_bench_impls(args.bn_impl),
        device=args.device,
        repeat=args.repeat,
        data_root=args.data_root,
    )


def bench_mode(args) -> Optional[str]:
    """Return the one bench mode `args` ask for, as its attribute (None: time every path).

    Raises
    ------
    ValueError
        When two or more modes are given: one line naming them.
    """
    given = [mode for mode in RUNNERS if getattr(args, mode)]
    if len(given) > 1:
        flags = [_flag(args, mode) for mode in given]
        raise ValueError(
            f"{', '.join(flags[:-1])} and {flags[-1]} are separate benches; give one of them"
        )
    return given[0] if given else None


def _flag(args, mode: str) -> str:
    """A mode as it was given, e.g. ``--scale-out`` or ``--peer torch``."""
    value = getattr(args, mode)
    return f"--{mode.replace('_', '-')}" + ("" if value is True else f" {value}")


def cmd_bench(args, out) -> int:
    """Run ``gluon-bn bench`` with parsed `args`, printing to `out`; return the exit status."""
    from gluon_bn.bench.bench import format_table, plot_bars, run_plan

    mode = bench_mode(args)
    if args.fraction is None:
        args.fraction = 0.1 if args.scaling else 1.0
    if args.fraction > 1:
        raise ValueError(f"--fraction must be at most 1, got {args.fraction}")
    if mode is not None:
        return RUNNERS[mode](args, out)
    result = run_plan(_bench_plan(args), file=out)
    return _write_bench(args, out, "bench", result, format_table(result), plot_bars)


def _write_bench(args, out, stem: str, result, table: str, plot=None) -> int:
    """Print `table`; write STEM.json, STEM.md and, given `plot`, STEM.png under --out."""
    write_outputs(args.out, stem, result, table, file=out, plot=plot)
    return 0


def _profile(args, out) -> int:
    from gluon_bn.bench.profile import format_profile, profile_step
    from gluon_bn.device import parse_device
    from gluon_bn.report.provenance import environment

    plan = _bench_plan(args)
    ctx = parse_device(plan.device, file=out)
    configs, profiles = plan.configs(), []
    for i, config in enumerate(configs, 1):
        print(f"[{i}/{len(configs)}] profiling {config.label} ...", file=out, flush=True)
        profiles.append(
            profile_step(config, plan.recipe, batches=args.steps, ctx=ctx, data_root=plan.data_root)
        )
    result = {
        "recipe": plan.recipe,
        "steps": args.steps,
        "profiles": profiles,
        "environment": environment(ctx),
    }
    return _write_bench(args, out, "profile", result, format_profile(profiles))


def _layout(args, out) -> int:
    from gluon_bn.bench.layout import LayoutPlan, format_layout, run_layout
    from gluon_bn.recipes import get_recipe

    plan = LayoutPlan(
        batch_size=get_recipe("d2l-en").batch_size, steps=args.steps, rounds=args.rounds
    )
    result = run_layout(plan, file=out)
    return _write_bench(args, out, "layout", result, format_layout(result))


def _busy(args, out) -> int:
    from gluon_bn.bench.contention import BusyPlan, format_busy, run_busy

    plan = BusyPlan(limit=args.limit, rounds=args.rounds, data_root=args.data_root)
    result = run_busy(plan, file=out)
    return _write_bench(args, out, "busy", result, format_busy(result))


def _peer(args, out) -> int:
    from gluon_bn.bench.peer import PeerPlan, require_torch, run_peer
    from gluon_bn.bench.peer_report import format_peer, plot_peer
    from gluon_bn.runtime import threads_in_effect

    require_torch()
    plan = PeerPlan(
        threads=args.threads or threads_in_effect(),
        recipe=args.recipe,
        fraction=args.fraction,
        rounds=args.rounds,
        data_root=args.data_root,
        loops=args.loops,
        native="native" in _bench_impls(args.bn_impl),
    )
    result = run_peer(plan, file=out)
    return _write_bench(args, out, "peer", result, format_peer(result), plot_peer)


def _scaling(args, out) -> int:
    from gluon_bn.bench.scaling import (
        BATCH_SIZES,
        ScalingPlan,
        format_scaling,
        plot_scaling,
        run_scaling,
    )
    from gluon_bn.runtime import usable_cores

    threads = (args.threads,) if args.threads else tuple(range(1, usable_cores() + 1))
    plan = ScalingPlan(
        threads=threads,
        batch_sizes=tuple(args.batch_sizes or BATCH_SIZES),
        recipe=args.recipe,
        fraction=args.fraction,
        rounds=args.rounds,
        data_root=args.data_root,
        native="native" in _bench_impls(args.bn_impl),
    )
    result = run_scaling(plan, file=out)
    return _write_bench(args, out, "scaling", result, format_scaling(result), plot_scaling)


def _scale_out(args, out) -> int:
    from gluon_bn.bench.scaleout import ScaleOutPlan, format_scale_out, run_scale_out
    from gluon_bn.scale.backend import import_distributed

    import_distributed()  # one line naming the extra, before anything is timed
    plan = ScaleOutPlan(
        rounds=args.rounds, **({"workers": tuple(args.workers)} if args.workers else {})
    )
    result = run_scale_out(plan, file=out)
    return _write_bench(args, out, "scale-out", result, format_scale_out(result))


def _sweep(args, out) -> int:
    from gluon_bn.bench.sweep import format_sweep, sweep_runtimes

    sweep = sweep_runtimes(_bench_plan(args), file=out)
    return _write_bench(args, out, "runtimes", sweep, format_sweep(sweep))


# Every bench mode: its flag (the attribute with "-" for "_") and what runs it. Without one,
# the bench times every path; two at once are refused (bench_mode).
RUNNERS = {
    "scaling": _scaling,
    "profile": _profile,
    "layout": _layout,
    "scale_out": _scale_out,
    "sweep_runtimes": _sweep,
    "busy": _busy,
    "peer": _peer,
}
