"""``gluon-bn study``: list the studies, run one or all, each ending in a computed verdict.

``gluon_bn.cli`` defines the arguments, then calls :func:`answer_without_training`,
:func:`check` and :func:`main`. ``--list`` and every refusal (an unknown study, settings that
cannot run) happen before MXNet is imported.
"""

from __future__ import annotations

import argparse
from typing import List, TextIO, Tuple

from gluon_bn.scale.backend import check_jobs
from gluon_bn.study.registry import STUDIES, Settings, Study, get_study

EXIT_OK = 0  # the studies ran and were written


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
    return [
        (
            study,
            study.settings(
                quick=args.quick,
                seeds=args.seeds,
                first_seed=args.first_seed,
                epochs=args.epochs,
                fraction=args.fraction,
                batch_size=args.batch_size,
                grid=args.grid,
            ),
        )
        for study in studies
    ]


def only_coordinates(args: argparse.Namespace) -> bool:
    """Return True when every run of this ``study`` command goes to Dask workers.

    A timed study (compiled-speed) always runs here, serially, so its process trains.
    """
    from gluon_bn.scale.backend import only_coordinates as remote

    if not remote(getattr(args, "jobs", None), getattr(args, "scheduler", None)):
        return False
    return not any(study.timed for study, _ in plan(args))


def answer_without_training(args: argparse.Namespace, out: TextIO) -> bool:
    """Answer ``--list`` and ``--regenerate`` (no MXNet, nothing trained); return True if done.

    ``--regenerate`` re-judges the records in ``--out`` from their runs and rewrites them,
    their reports and the summary (ValueError when ``--out`` is not a folder).
    """
    if args.list:
        list_studies(out)
        return True
    if not args.regenerate:
        return False
    from gluon_bn.study.summary import regenerate

    if not args.out.is_dir():
        raise ValueError(f"{args.out} is not a folder of study records")
    regenerate(args.out)
    print(
        f"re-judged the records and rewrote them, their reports and the summary in {args.out}",
        file=out,
    )
    return True


def check(args: argparse.Namespace) -> None:
    """Refuse an unknown study, settings that cannot run, or settings smaller than the record
    (or progress) already in ``--out`` unless ``--allow-smaller``, in one line
    (ValueError/KeyError), before anything is written or trained."""
    studies = plan(args)
    check_jobs(args.jobs, args.scheduler)
    from gluon_bn.study.study_record import refuse_smaller  # a smaller record: refused here

    refuse_smaller(studies, args.out, allowed=getattr(args, "allow_smaller", False))


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
                print(
                    f"note: study {study.name} times its runs, so they run one after another "
                    f"in this process whatever --jobs/--scheduler say",
                    file=out,
                )
                here = SerialBackend()
            _, paths = run_study(
                study,
                settings,
                args.out,
                quick=args.quick,
                ctx=ctx,
                file=out,
                progress=not args.quiet,
                backend=here,
                device=args.device,
            )
            for path in paths.values():
                print(f"wrote {path}", file=out, flush=True)
    return EXIT_OK
