"""The ``gluon-bn`` command: it parses (:mod:`gluon_bn.cli.arguments`), refuses bad input in
one line, asks the library for the runtime, dispatches to the library, and maps errors to exit
statuses (:mod:`gluon_bn.status`). Run lists, policy and orchestration live in the library.
"""

from __future__ import annotations

import os
import sys
from typing import List, Optional

from gluon_bn.bench.bench_command import cmd_bench  # imports nothing heavy until called
from gluon_bn.cli.arguments import build_parser, run_options
from gluon_bn.status import (
    EXIT_DATA,
    EXIT_DIVERGED,
    EXIT_INTERRUPTED,
    EXIT_RUNS_FAILED,
    EXIT_USAGE,
    EXIT_WRITE,
)

__all__ = [
    "EXIT_DATA",
    "EXIT_DIVERGED",
    "EXIT_INTERRUPTED",
    "EXIT_RUNS_FAILED",
    "EXIT_USAGE",
    "EXIT_WRITE",
    "build_parser",
    "main",
    "run_options",
]


def _only_coordinates(args) -> bool:
    """True when this process trains nothing itself: every run goes to Dask workers."""
    if args.command == "study":
        from gluon_bn.study.command import only_coordinates

        return only_coordinates(args)
    from gluon_bn.scale.backend import only_coordinates

    return args.command == "reproduce" and only_coordinates(args.jobs, args.scheduler)


def _select_runtime(args, out) -> None:
    """Set MXNet's runtime for `args` before MXNet loads (:mod:`gluon_bn.runtime.select`);
    ``--resume`` restores the one its checkpoint trained with."""
    from gluon_bn.runtime.select import Request, select

    restore = None
    if getattr(args, "resume", False) and args.checkpoint_dir:
        from gluon_bn.run.resume import saved_runtime

        restore = saved_runtime(
            args.checkpoint_dir, args.recipe, run_options(args).variants, args.seed
        )
    selected = select(
        Request(
            args.runtime,
            args.threads,
            args.isa,
            args.portable,
            args.retune,
            args.device,
            not _only_coordinates(args),
            restore,
        ),
        out,
    )
    args.requested_threads = selected.requested  # a count asked for is never changed mid-run


def cmd_list(args, out) -> int:
    from gluon_bn.recipes import RECIPES

    for recipe in RECIPES.values():
        alternatives = "".join(f" [alternative: {recipe.name}:{a}]" for a in recipe.alternatives)
        print(
            f"{recipe.name:14s} document {recipe.source_file[:3]}  {recipe.title}{alternatives}",
            file=out,
        )
        c = recipe.conventions
        print(
            f"{'':14s} momentum {c.momentum} on the {c.momentum_on} statistic, moving_var "
            f"starts at {c.moving_var_init}, {recipe.pool}-pool, init {recipe.initializer}, "
            f"lr {recipe.learning_rate}, batch {recipe.batch_size}, {recipe.num_epochs} epoch(s), "
            f"{recipe.dataset}",
            file=out,
        )
    return 0


def cmd_reproduce(args, out) -> int:
    """Run ``gluon-bn reproduce`` (:func:`gluon_bn.run.command.run_reproduce`)."""
    from gluon_bn.run.command import run_reproduce

    return run_reproduce(
        args.recipe,
        run_options(args),
        out=args.out,
        device=args.device,
        checkpoint_dir=args.checkpoint_dir,
        resume=args.resume,
        jobs=args.jobs,
        scheduler=args.scheduler,
        quiet=args.quiet,
        requested_threads=args.requested_threads,
        file=out,
    )


def cmd_doctor(args, out) -> int:
    """Print the installation report; 0 when `reproduce` can run, else 1."""
    from gluon_bn.doctor import run_doctor

    return run_doctor(file=out, data_root=args.data_root)


def _interrupted_message(args, argv: List[str]) -> str:
    """Say what Ctrl-C left behind and, with checkpoints, the exact command that continues."""
    import shlex

    lines = ["", "gluon-bn: interrupted."]
    if getattr(args, "out", None) is not None:
        lines.append(f"Runs that finished are saved under {args.out}.")
    if getattr(args, "checkpoint_dir", None):
        command = ["gluon-bn", *argv] + ([] if "--resume" in argv else ["--resume"])
        lines.append(
            f"Every completed epoch is checkpointed in {args.checkpoint_dir}; "
            f"to continue from the last one, run:"
        )
        lines.append(f"  {shlex.join(command)}")
    elif args.command == "study":
        lines.append(
            "The seeds that finished are in its progress files; the same command "
            "continues from them:"
        )
        lines.append(f"  {shlex.join(['gluon-bn', *argv])}")
    elif args.command == "reproduce":
        lines.append(
            "The run in progress is lost; add --checkpoint-dir DIR to checkpoint "
            "every epoch (and --resume to continue)."
        )
    return "\n".join(lines)


def cmd_study(args, out) -> int:
    """Run ``gluon-bn study`` (:mod:`gluon_bn.study.command`) once its input is checked."""
    from gluon_bn.study.command import main as run_studies

    return run_studies(args, out)


COMMANDS = {
    "list": cmd_list,
    "reproduce": cmd_reproduce,
    "bench": cmd_bench,
    "doctor": cmd_doctor,
    "study": cmd_study,
}


def _check(args) -> None:
    """Refuse bad input in one line before MXNet loads or the runtime probe runs."""
    if args.command == "study":
        from gluon_bn.study.command import check

        check(args)
    elif args.command == "bench":
        from gluon_bn.bench.bench_command import bench_mode

        bench_mode(args)  # two modes given together are refused before anything runs
    elif args.command == "reproduce":
        from gluon_bn.run.command import check_request

        check_request(
            args.recipe,
            run_options(args),
            resume=args.resume,
            checkpoint_dir=args.checkpoint_dir,
            jobs=args.jobs,
            scheduler=args.scheduler,
        )


def _selects_runtime(args) -> bool:
    """True for the commands that train in this process (the bench modes that start their
    own processes choose each one's runtime themselves)."""
    if args.command in ("reproduce", "study"):
        return True
    return args.command == "bench" and not (
        args.sweep_runtimes or args.busy or args.scaling or args.scale_out
    )


def main(argv: Optional[List[str]] = None) -> int:
    """Run ``gluon-bn``; return the exit status. Errors are one clear message, no traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    out = sys.stdout
    # Without MXNet: the doctor reports a broken one, and recipes are pure data.
    if args.command in ("doctor", "list"):
        try:
            return COMMANDS[args.command](args, out)
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
        except BrokenPipeError:  # `gluon-bn list | head`: the reader left, nothing is wrong
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
    try:
        if args.command == "study":  # --list and --regenerate need no MXNet
            from gluon_bn.study.command import answer_without_training

            if answer_without_training(args, out):
                return 0
        _check(args)
        if _selects_runtime(args):
            _select_runtime(args, out)  # before anything imports MXNet
    except (ValueError, KeyError) as err:
        print(f"gluon-bn: error: {err.args[0] if err.args else err}", file=sys.stderr)
        return EXIT_USAGE
    try:
        from gluon_bn.bn.native import NativeUnavailable
        from gluon_bn.data import DataError
        from gluon_bn.report import WriteError
        from gluon_bn.run.training import TrainingDiverged
        from gluon_bn.scale.fanout import RunsFailed
    except ImportError as err:  # MXNet missing: the message says how to install it
        print(f"gluon-bn: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return COMMANDS[args.command](args, out)
    except DataError as err:
        print(f"gluon-bn: data error: {err}", file=sys.stderr)
        return EXIT_DATA
    except TrainingDiverged as err:
        print(f"gluon-bn: training stopped: {err}", file=sys.stderr)
        return EXIT_DIVERGED
    except WriteError as err:
        print(f"gluon-bn: write error: {err}", file=sys.stderr)
        return EXIT_WRITE
    except NativeUnavailable as err:
        print(f"gluon-bn: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except RunsFailed as err:
        print(f"gluon-bn: {err}", file=sys.stderr)
        return EXIT_RUNS_FAILED
    except (ValueError, KeyError, TypeError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"gluon-bn: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(_interrupted_message(args, argv), file=sys.stderr)
        return EXIT_INTERRUPTED
