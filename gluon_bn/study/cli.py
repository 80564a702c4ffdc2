"""``gluon-bn study``: list the studies, run one or all, each ending in a computed verdict.

:func:`add_parser` adds the subcommand to ``gluon-bn``'s parser and :func:`main` runs it;
``gluon_bn.cli`` calls both. ``--list`` and every refusal (an unknown study, settings that
cannot run) happen before MXNet is imported.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional, TextIO, Tuple

from gluon_bn.study.registry import STUDIES, Settings, Study, get_study

EXIT_OK, EXIT_USAGE = 0, 2


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``study`` to `subparsers` (of ``gluon-bn``'s parser) and return its parser.

    ``gluon_bn.cli`` adds ``--runtime`` and ``--threads`` to it, as to ``reproduce``.
    """
    parser = subparsers.add_parser(
        "study", help="measure a claim of the documents; the verdict is computed from the numbers",
        description="Run one study per claim about batch normalization (or all of them): "
                    "each states its measurement and criterion, trains or times every "
                    "configuration with every seed, and computes its verdict (holds, does not "
                    "hold, inconclusive). Running it again with the same --out resumes.")
    parser.add_argument("name", nargs="?", help="a study (see --list), or all")
    parser.add_argument("--list", action="store_true", help="name the studies, their claims and sources")
    parser.add_argument("--seeds", type=int, help="seeds per configuration (rounds, for compiled-speed)")
    parser.add_argument("--epochs", type=int, help="training epochs per run")
    parser.add_argument("--fraction", type=float,
                        help="share of the 60000 training images (compiled-speed: of an epoch timed)")
    parser.add_argument("--batch-size", type=int, help="training batch size")
    parser.add_argument("--grid", type=float, nargs="+",
                        help="the swept values: learning rates (learning-rate) or batch sizes "
                             "(batch-noise)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny settings (one seed, so the verdict is inconclusive): minutes at most")
    parser.add_argument("--out", type=Path, default=Path("out/studies"),
                        help="where NAME.json/.md/.png, README.md and the progress files go "
                             "(default out/studies; the published ones are in results/studies)")
    parser.add_argument("--device", default="cpu", help="as for reproduce (default cpu)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    add_scale_arguments(parser)
    parser.add_argument("--regenerate", action="store_true",
                        help="re-judge every JSON record in --out from its runs with the "
                             "current criteria and rewrite it, its report, its figures and the "
                             "summary; nothing is trained and the runs are kept as they are")
    return parser


def add_scale_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--jobs`` and ``--scheduler`` (shared by ``study`` and ``reproduce``)."""
    parser.add_argument(
        "--jobs", type=int, default=None,
        help="train the runs on a local Dask cluster of N worker processes, one run per "
             "worker at a time, each with one OpenMP thread (same numbers as a serial "
             "--threads 1 run); default 1: one after another in this process")
    parser.add_argument(
        "--scheduler", default=None,
        help="send the runs to the Dask scheduler at ADDRESS (e.g. tcp://10.0.0.5:8786; "
             "default $GLUON_BN_SCHEDULER); its workers need this gluon-bn version and the data")


def check_scale_arguments(args: argparse.Namespace) -> None:
    """Refuse ``--jobs`` below 1, or together with ``--scheduler``, in one line (no Dask yet)."""
    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
    if args.scheduler and args.jobs not in (None, 1):
        raise ValueError("give --jobs N (a local cluster) or --scheduler ADDRESS (an existing "
                         "one), not both")


def list_studies(out: TextIO) -> None:
    """Print every study: its name, claim and source."""
    for study in STUDIES.values():
        print(f"{study.name:16s} {study.claim}", file=out)
        print(f"{'':16s} source: {study.source}", file=out)


def plan(args: argparse.Namespace) -> List[Tuple[Study, Settings]]:
    """Return the studies `args` name with their checked settings.

    Raises
    ------
    KeyError
        For an unknown study (the message lists the valid ones).
    ValueError
        In one line, for a missing name or settings that cannot run.
    """
    if not args.name:
        raise ValueError("give a study name (or all); --list names them")
    studies = list(STUDIES.values()) if args.name == "all" else [get_study(args.name)]
    return [(study, study.settings(quick=args.quick, seeds=args.seeds, epochs=args.epochs,
                                   fraction=args.fraction, batch_size=args.batch_size,
                                   grid=args.grid))
            for study in studies]


def prepare(args: argparse.Namespace, out: TextIO) -> Optional[int]:
    """Do what needs no MXNet: return an exit status when that is all, None when studies must run.

    ``--list`` prints the studies; ``--regenerate`` re-judges the records from their runs and
    rewrites them and their reports;
    otherwise the name and the settings are checked, and a refusal is one line on stderr
    (exit 2) before anything is read, written or trained.
    """
    if args.list:
        list_studies(out)
        return EXIT_OK
    try:
        if args.regenerate:
            from gluon_bn.study.report import regenerate
            if not args.out.is_dir():
                raise ValueError(f"{args.out} is not a folder of study records")
            regenerate(args.out)
            print(f"re-judged the records and rewrote them, their reports and the summary in "
                  f"{args.out}", file=out)
            return EXIT_OK
        plan(args)
        check_scale_arguments(args)
    except (KeyError, ValueError) as err:
        print(f"gluon-bn: error: {err.args[0] if err.args else err}", file=sys.stderr)
        return EXIT_USAGE
    return None


def main(args: argparse.Namespace, out: TextIO) -> int:
    """Run the studies `args` name (MXNet is loaded from here on); return the exit status.

    Errors propagate (``gluon_bn.cli.main`` turns them into one line and an exit status):
    ValueError/KeyError for bad input, ``DataError``, ``WriteError``, KeyboardInterrupt (the
    finished runs are in the progress files; the same command continues from them).
    """
    from gluon_bn.device import parse_device
    from gluon_bn.scale.backend import SerialBackend, open_backend
    from gluon_bn.study.runner import run_study

    studies = plan(args)
    ctx = parse_device(args.device, file=out)
    with open_backend(args.jobs, args.scheduler, file=out) as backend:
        for study, settings in studies:
            here = backend
            if study.timed and backend.distributed:
                print(f"note: study {study.name} times its runs, so they run one after another "
                      f"in this process whatever --jobs/--scheduler say", file=out)
                here = SerialBackend()
            _, paths = run_study(study, settings, args.out, quick=args.quick, ctx=ctx, file=out,
                                 progress=not args.quiet, backend=here, device=args.device)
            for path in paths.values():
                print(f"wrote {path}", file=out, flush=True)
    return EXIT_OK
