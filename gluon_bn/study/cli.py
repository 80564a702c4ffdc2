"""``gluon-bn study``: list the studies, run one or all, each ending in a computed verdict.

:func:`add_parser` adds the subcommand to ``gluon-bn``'s parser and :func:`main` runs it;
``gluon_bn.cli`` calls both. ``--list`` and every refusal (an unknown study, settings that
cannot run) happen before MXNet is imported.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, List, Optional, TextIO

from gluon_bn.study.registry import STUDIES, Study, get_study

EXIT_OK, EXIT_USAGE, EXIT_DATA, EXIT_WRITE, EXIT_INTERRUPTED = 0, 2, 3, 5, 130


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
    return parser


def list_studies(out: TextIO) -> None:
    """Print every study: its name, claim and source."""
    for study in STUDIES.values():
        print(f"{study.name:16s} {study.claim}", file=out)
        print(f"{'':16s} source: {study.source}", file=out)


def selected(name: str) -> List[Study]:
    """Return the studies `name` asks for ("all": every one, in order); KeyError lists the valid names."""
    return list(STUDIES.values()) if name == "all" else [get_study(name)]


def main(args: argparse.Namespace, out: TextIO,
         select_runtime: Optional[Callable[[], object]] = None) -> int:
    """Run ``gluon-bn study`` with parsed `args`; return the exit status (errors are one line).

    Parameters
    ----------
    args : argparse.Namespace
        From the parser :func:`add_parser` built.
    out : text stream
        Where the statements, per-run lines and written paths go.
    select_runtime : callable, optional
        Sets MXNet's engine and threads before it loads (``gluon_bn.cli`` passes its own,
        from ``--runtime`` and ``--threads``); called once the arguments are known to be good.
    """
    if args.list:
        list_studies(out)
        return EXIT_OK
    try:
        if not args.name:
            raise ValueError("give a study name (or all); --list names them")
        plan = [(study, study.settings(quick=args.quick, seeds=args.seeds, epochs=args.epochs,
                                       fraction=args.fraction, batch_size=args.batch_size,
                                       grid=args.grid))
                for study in selected(args.name)]
    except (KeyError, ValueError) as err:
        print(f"gluon-bn: error: {err.args[0] if err.args else err}", file=sys.stderr)
        return EXIT_USAGE
    if select_runtime is not None:
        select_runtime()
    try:
        from gluon_bn.data import DataError
        from gluon_bn.device import parse_device
        from gluon_bn.report import WriteError
        from gluon_bn.study.runner import run_study
    except ImportError as err:  # MXNet missing: the message says how to install it
        print(f"gluon-bn: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    try:
        ctx = parse_device(args.device, file=out)
        for study, settings in plan:
            _, paths = run_study(study, settings, args.out, quick=args.quick, ctx=ctx, file=out,
                                 progress=not args.quiet)
            for path in paths.values():
                print(f"wrote {path}", file=out, flush=True)
    except DataError as err:
        print(f"gluon-bn: data error: {err}", file=sys.stderr)
        return EXIT_DATA
    except WriteError as err:
        print(f"gluon-bn: write error: {err}", file=sys.stderr)
        return EXIT_WRITE
    except (KeyError, ValueError) as err:
        print(f"gluon-bn: error: {err.args[0] if err.args else err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"\ngluon-bn: interrupted. Finished runs are kept in {args.out}/NAME.progress.json; "
              f"the same command continues from them.", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK
