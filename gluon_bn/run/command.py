"""``gluon-bn reproduce`` as the library runs it: checks, folders, checkpoints, where the runs
train, Ctrl-C and the load watchers, then :func:`gluon_bn.run.reproduce.reproduce` (here) or
:func:`gluon_bn.run.tasks.reproduce_on` (Dask workers). The command line only parses.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Optional, TextIO

from gluon_bn.options import RunOptions


class CtrlC:
    """Within ``with``: the first SIGINT is remembered, a second one interrupts at once.

    A KeyboardInterrupt raised by the signal itself can land inside an NDArray's
    ``__del__``, where Python drops it with a printed traceback; so the first Ctrl-C only
    sets a flag, and training raises KeyboardInterrupt at the end of the current batch.
    """

    def __init__(self):
        self.seen = False
        self._previous = None

    def requested(self) -> bool:
        """Return True once Ctrl-C was pressed."""
        return self.seen

    def _handle(self, signum, frame):
        if self.seen:
            raise KeyboardInterrupt
        self.seen = True

    def __enter__(self) -> "CtrlC":
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        signal.signal(signal.SIGINT, self._previous)


def check_request(
    recipe_name: str,
    options: RunOptions,
    *,
    resume: bool = False,
    checkpoint_dir: Optional[Path] = None,
    jobs: Optional[int] = None,
    scheduler: Optional[str] = None,
) -> None:
    """Refuse what cannot run, in one line, before MXNet loads or any data is read.

    Raises
    ------
    ValueError, KeyError
        An unknown recipe, impossible options, ``--resume`` without a checkpoint folder,
        bad ``--jobs``/``--scheduler``, or checkpoints with Dask workers.
    """
    from gluon_bn.recipes import get_recipe
    from gluon_bn.scale.backend import check_jobs, only_coordinates

    get_recipe(recipe_name)
    check_jobs(jobs, scheduler)
    if resume and not checkpoint_dir:
        raise ValueError("--resume needs --checkpoint-dir (where the checkpoints are)")
    if checkpoint_dir and only_coordinates(jobs, scheduler):
        raise ValueError("--checkpoint-dir works with serial runs only: drop --jobs/--scheduler")
    options.check()


def run_reproduce(
    recipe_name: str,
    options: RunOptions,
    *,
    out: Path,
    device: str = "auto",
    checkpoint_dir: Optional[Path] = None,
    resume: bool = False,
    jobs: Optional[int] = None,
    scheduler: Optional[str] = None,
    quiet: bool = False,
    requested_threads: Optional[int] = None,
    file: TextIO,
) -> int:
    """Reproduce a recipe as ``gluon-bn reproduce`` does; print what was written; return 0.

    Parameters
    ----------
    recipe_name : str
        ``NAME[:ALTERNATIVE]``.
    options : RunOptions
        What to run.
    out : Path
        Where the record, report and figure go (created and probed first).
    device : str
        The ``--device`` string.
    checkpoint_dir, resume
        Per-epoch checkpoints, and whether to continue from them.
    jobs, scheduler
        Where the runs train (:func:`gluon_bn.scale.backend.open_backend`).
    quiet : bool
        No progress bar.
    requested_threads : int, optional
        The thread count asked for (or restored from a checkpoint): the collapse guard then
        keeps it and only says so.
    file : text stream
        Where the lines go.
    """
    from gluon_bn.device import parse_device
    from gluon_bn.report import prepare_directory
    from gluon_bn.run.reproduce import reproduce
    from gluon_bn.run.tasks import reproduce_on
    from gluon_bn.run.training import TrainingDiverged
    from gluon_bn.runtime.watch import load_watch
    from gluon_bn.scale.backend import open_backend

    check_request(
        recipe_name,
        options,
        resume=resume,
        checkpoint_dir=checkpoint_dir,
        jobs=jobs,
        scheduler=scheduler,
    )
    prepare_directory(out, "--out")  # before any data is read or epoch runs
    if checkpoint_dir:
        prepare_directory(checkpoint_dir, "--checkpoint-dir")
    ctx = parse_device(device, file=file)
    factory = None
    if checkpoint_dir:
        from gluon_bn.run.checkpoint import Checkpointer

        factory = Checkpointer.factory(
            checkpoint_dir, recipe_name, options, resume=resume, file=file
        )
    try:
        with open_backend(jobs, scheduler, file=file) as backend:
            if backend.distributed:  # Ctrl-C raises at once here: the workers train
                _, paths = reproduce_on(
                    backend, recipe_name, options, ctx, out_dir=out, file=file, device=device
                )
            else:
                with CtrlC() as ctrl_c:
                    _, paths = reproduce(
                        recipe_name,
                        options,
                        ctx,
                        out_dir=out,
                        file=file,
                        checkpointer_factory=factory,
                        stop_requested=ctrl_c.requested,
                        progress=not quiet,
                        guard=load_watch(requested_threads),
                    )
    except TrainingDiverged as err:  # say what is kept: the epochs before it are checkpointed
        if factory is not None:
            err.args = (
                f"{err.args[0]}\nCheckpoints: {factory.describe()}. A smaller --lr is "
                f"a new configuration: give it another --checkpoint-dir.",
            )
        raise
    for path in paths.values():
        print(f"wrote {path}", file=file)
    return 0
