"""Per-epoch checkpoints of a training run, written atomically, restored exactly.

The files themselves (layout, atomic writes, manifest, optimizer state renumbering)
are :mod:`gluon_bn.run.checkpoint_files`; this module decides what is saved when,
and what may be resumed.

Random number generators: what ``rng.json`` holds is described in
:mod:`gluon_bn.run.checkpoint_files`. MXNet 1.9 has no getter for its generator's state, so
instead every epoch ``e >= 2`` of a checkpointed run starts with
``mx.random.seed(mxnet_seed(seed, e))``, in fresh and in resumed runs alike: the saver
seeds for the next epoch right after each save, and :meth:`Checkpointer.restore` seeds for
the epoch it resumes at. Epoch 1 is left alone: it draws the initial weights (Gluon
initialises layers of unknown input size on the first batch), so it must see the stream of
``seed_everything(seed)`` exactly as a run without checkpoints does. The networks here draw
nothing else from MXNet's generator, so a checkpointed run, resumed or not, prints the
numbers of an uncheckpointed one; the re-seeding keeps a network that does draw (dropout,
say) reproducible across a resume.

No checkpoint holds a pickle, and none is ever unpickled: the optimizer state is arrays
plus JSON (see :mod:`gluon_bn.run.checkpoint_files`), so resuming a checkpoint from
elsewhere cannot run code through it. A checkpoint of the earlier format, whose
``trainer.states`` is a pickle written by MXNet's ``Trainer.save_states``, is refused
(:class:`CheckpointError`, before any training) and never read; start such a run afresh
with another ``--checkpoint-dir``.

What must match on resume (:func:`run_config`): the recipe, variant and seed (the
directory), and every option that changes the numbers: learning rate and batch size (as
resolved against the recipe), input pipeline, scratch-BN implementation, hybridization,
dataset and the example limits. The number of epochs may grow (train further); the data
directory and ``--sync-every-batch`` (reporting only) may change.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Callable, List, Optional, Sequence, TextIO, Tuple

from gluon_bn.run.checkpoint_files import (  # noqa: F401  (CheckpointError, FORMAT, FILES: public here too)
    FILES,
    FORMAT,
    MANIFEST,
    CheckpointError,
    list_checkpoints,
    read_checkpoint,
    refuse_pickled,
    remove_temporaries,
    verify_checkpoint,
    write_checkpoint,
)
from gluon_bn.run.resume import mxnet_seed, run_config, run_directory, runtime_state
from gluon_bn.runtime.loader import mx


class Checkpointer:
    """Checkpoints of one run (recipe, variant, seed): save after every epoch, restore the last.

    Parameters
    ----------
    directory : Path
        This run's directory (``CHECKPOINT_DIR/<recipe>/<variant>-seed<seed>``).
    config : dict
        :func:`run_config` of the run; a checkpoint must match it to be resumed.
    resume : bool
        Continue from the last complete checkpoint. Without it, a directory that already
        holds a complete checkpoint is an error (nothing is overwritten).
    keep : int
        How many complete checkpoints to keep (the newest); older ones are deleted.
    file : text stream, optional
        Where notes go (default stdout).
    """

    def __init__(
        self,
        directory: Path,
        config: dict,
        *,
        resume: bool = False,
        keep: int = 2,
        file: Optional[TextIO] = None,
    ) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep!r}")
        self.directory = Path(directory)
        self.config = config
        self.resume = resume
        self.keep = keep
        self.file = file
        self.last_saved: Optional[Path] = None
        self.restored_from: Optional[Path] = None
        self._reported: set = set()

    # ------------------------------------------------------------------ factory
    @classmethod
    def factory(
        cls,
        root: Path,
        recipe_name: str,
        options,
        *,
        resume: bool = False,
        keep: int = 2,
        file: Optional[TextIO] = None,
    ) -> "CheckpointPlan":
        """Return a callable ``(variant, seed) -> Checkpointer`` for every run of a recipe.

        Every planned run is checked now, before any training: without `resume` none may
        have a checkpoint yet; with `resume` each existing checkpoint must match the config.

        Parameters
        ----------
        root : Path
            ``--checkpoint-dir``.
        recipe_name : str
            As given on the command line.
        options : gluon_bn.run.reproduce.RunOptions
            The runs' options (variants and seeds say which runs are planned).
        resume : bool
            ``--resume``.
        keep : int
            Complete checkpoints kept per run.
        file : text stream, optional
            Where notes go (default stdout).

        Raises
        ------
        CheckpointError
            If `root` is not a usable directory, or a planned run's checkpoint is in the way
            (fresh start) or was made with another config (resume).
        """
        plan = CheckpointPlan(Path(root), recipe_name, options, resume=resume, keep=keep, file=file)
        plan.check()
        return plan

    # ------------------------------------------------------------------ finding
    def _print(self, text: str) -> None:
        print(text, file=self.file or sys.stdout, flush=True)

    def checkpoints(self) -> List[Tuple[int, Path]]:
        """Return ``(epoch, path)`` of every checkpoint directory (complete or not), oldest first."""
        return list_checkpoints(self.directory)

    def verify(self, path: Path) -> Optional[str]:
        """Return None if the checkpoint at `path` is complete and intact, else why not."""
        return verify_checkpoint(path)

    def latest(self) -> Optional[Tuple[int, Path]]:
        """Return ``(epoch, path)`` of the newest complete, intact checkpoint, or None.

        Incomplete or damaged checkpoint directories are skipped with a note.

        Raises
        ------
        CheckpointError
            If any checkpoint directory of this run is of the old format, which stores a
            pickle (see the module docstring): such a run cannot be resumed, nor continued
            in this directory. Nothing of it is read beyond names and the manifest.
        """
        found = self.checkpoints()
        for _, path in reversed(found):
            refuse_pickled(path, self.directory)
        for epoch, path in reversed(found):
            problem = self.verify(path)
            if problem is None:
                return epoch, path
            if path not in self._reported:  # say it once, not at every look
                self._reported.add(path)
                self._print(f"checkpoint: ignoring {path}: {problem}")
        return None

    def _remove_temporaries(self) -> None:
        remove_temporaries(self.directory)

    def check_config(self, path: Path) -> int:
        """Raise CheckpointError if the checkpoint at `path` cannot continue this run; return its epoch."""
        try:
            saved = json.loads((path / "config.json").read_text(encoding="utf-8"))
            manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise CheckpointError(f"cannot read the checkpoint {path}: {err}") from err
        mine = self.config
        differences = [
            f"{key}: checkpoint {saved.get(key)!r}, now {mine[key]!r}"
            for key in ("recipe", "variant", "seed")
            if saved.get(key) != mine[key]
        ]
        theirs, ours = saved.get("options", {}), mine["options"]
        differences += [
            f"{key}: checkpoint {theirs.get(key)!r}, now {ours.get(key)!r}"
            for key in sorted(set(theirs) | set(ours))
            if theirs.get(key) != ours.get(key)
        ]
        if differences:
            raise CheckpointError(
                f"the checkpoint {path} was made with a different configuration, so it cannot "
                f"be resumed with this one:\n  " + "\n  ".join(differences) + "\n"
                f"Resume with the original options, or start afresh with another "
                f"--checkpoint-dir (or delete {self.directory})."
            )
        epoch = int(manifest["epoch"])
        if epoch > mine["epochs"]:
            raise CheckpointError(
                f"the checkpoint {path} already holds {epoch} epochs, more than the "
                f"{mine['epochs']} asked for; resume with --epochs {epoch} or more."
            )
        return epoch

    # ------------------------------------------------------------------ restore
    def restore(self, net, trainer, train_iter, ctx) -> Tuple[List[dict], int]:
        """Load the last complete checkpoint into `net`, `trainer`, `train_iter` and the generators.

        When resuming, also seeds MXNet's generator for the epoch it resumes at (see the
        module docstring); a fresh start leaves it alone.

        Parameters
        ----------
        net : gluon.Block
            Initialised; its parameters are replaced.
        trainer : gluon.Trainer
            Over ``net.collect_params()``; its optimizer state is replaced.
        train_iter : D2lBatchIterator or FastBatchIterator
            The training iterator (any object with ``state_dict`` and ``load_state_dict``);
            its shuffling is set to where it stood.
        ctx : Context or list of Context
            Where the parameters go.

        Returns
        -------
        (history, start_epoch)
            The EpochStats dicts of the epochs done and their number; ``([], 0)`` on a
            fresh start. A finished run returns its whole history and its epoch count.

        Raises
        ------
        CheckpointError
            Without ``resume`` if a checkpoint exists; with it, if the checkpoint was made
            with another configuration or cannot be loaded. Either way if a checkpoint of
            this run is of the old format, which stores a pickle (never read).
        """
        self._remove_temporaries()
        found = self.latest()
        if found is None:
            if self.resume:
                self._print(
                    f"checkpoint: nothing to resume in {self.directory}; starting at epoch 1"
                )
            return [], 0
        epoch, path = found
        if not self.resume:
            raise CheckpointError(
                f"{path} already holds a checkpoint of this run (epoch {epoch}). Add --resume "
                f"to continue it, or choose another --checkpoint-dir (or delete "
                f"{self.directory}) to start over."
            )
        self.check_config(path)
        try:
            history = read_checkpoint(path, net, trainer, train_iter, ctx)
        except CheckpointError:
            raise
        except (
            mx.base.MXNetError,
            AssertionError,
            OSError,
            ValueError,
            KeyError,
            TypeError,
            EOFError,
        ) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise CheckpointError(f"cannot load the checkpoint {path}: {first}") from err
        if len(history) != epoch:
            raise CheckpointError(
                f"the checkpoint {path} is inconsistent: epoch {epoch} but "
                f"{len(history)} epochs of history"
            )
        self.restored_from = self.last_saved = path
        total = self.config["epochs"]
        state = "finished" if epoch >= total else f"resuming at epoch {epoch + 1} of {total}"
        self._print(f"checkpoint: {path} (epoch {epoch} done): {state}")
        mx.random.seed(mxnet_seed(self.config["seed"], epoch + 1))
        return list(history), epoch

    # ------------------------------------------------------------------ save
    def save(self, epoch: int, net, trainer, train_iter, history: Sequence[dict]) -> Path:
        """Write the checkpoint of `epoch` atomically and return its directory.

        Parameters
        ----------
        epoch : int
            The epoch just finished (1-based).
        net, trainer, train_iter
            As for :meth:`restore`.
        history : sequence of dict
            EpochStats dicts of epochs 1 .. `epoch`.
        """
        config = {**self.config, "runtime": runtime_state()}  # what --resume restores
        final = write_checkpoint(self.directory, epoch, net, trainer, train_iter, history, config)
        self.last_saved = final
        self._prune()
        return final

    def _prune(self) -> None:
        complete = [(e, p) for e, p in self.checkpoints() if (p / MANIFEST).is_file()]
        for _, path in complete[: -self.keep]:
            shutil.rmtree(path, ignore_errors=True)

    def saver(self, net, trainer, train_iter, history: Sequence[dict]) -> Callable:
        """Return the ``on_epoch_end`` callback of train_ch5: save, then seed the next epoch.

        Parameters
        ----------
        net, trainer, train_iter
            As for :meth:`restore`.
        history : sequence of dict
            The restored history (what :meth:`restore` returned); each epoch is appended.

        Returns
        -------
        callable
            Takes the finished epoch's :class:`gluon_bn.run.training.EpochStats`.
        """
        done = list(history)

        def on_epoch_end(stats) -> None:
            done.append(stats.as_dict())
            self.save(stats.epoch, net, trainer, train_iter, done)
            mx.random.seed(mxnet_seed(self.config["seed"], stats.epoch + 1))

        return on_epoch_end

    def describe(self) -> str:
        """Return one sentence saying which checkpoint of this run is the last complete one."""
        try:
            found = self.latest() if self.directory.is_dir() else None
        except CheckpointError:  # the old, pickled format: none of it counts
            found = None
        if found is None:
            return f"no epoch of this run completed, so {self.directory} holds no checkpoint of it"
        epoch, path = found
        return f"the last complete checkpoint of this run is {path} (epoch {epoch})"


class CheckpointPlan:
    """``(variant, seed) -> Checkpointer`` for the runs of one recipe; made by :meth:`Checkpointer.factory`.

    Parameters
    ----------
    root : Path
        ``--checkpoint-dir``.
    recipe_name : str
        As given on the command line.
    options : gluon_bn.run.reproduce.RunOptions
        The runs' options.
    resume : bool
        ``--resume``.
    keep : int
        Complete checkpoints kept per run.
    file : text stream, optional
        Where notes go.
    """

    def __init__(
        self,
        root: Path,
        recipe_name: str,
        options,
        *,
        resume: bool,
        keep: int = 2,
        file: Optional[TextIO] = None,
    ) -> None:
        self.root, self.recipe_name, self.options = Path(root), recipe_name, options
        self.resume, self.keep, self.file = resume, keep, file
        self.current: Optional[Checkpointer] = None

    def directory(self, variant: str, seed: int) -> Path:
        """Return the checkpoint directory of one run."""
        return run_directory(self.root, self.recipe_name, variant, seed)

    def make(self, variant: str, seed: int) -> Checkpointer:
        """Return the Checkpointer of one run, without remembering it as the current one."""
        config = run_config(self.recipe_name, variant, seed, self.options)
        return Checkpointer(
            self.directory(variant, seed),
            config,
            resume=self.resume,
            keep=self.keep,
            file=self.file,
        )

    def __call__(self, variant: str, seed: int) -> Checkpointer:
        """Return the Checkpointer of one run and remember it (see :meth:`describe`)."""
        self.current = self.make(variant, seed)
        return self.current

    def check(self) -> None:
        """Raise CheckpointError if a planned run cannot start or resume as asked."""
        if self.root.exists() and not self.root.is_dir():
            raise CheckpointError(f"--checkpoint-dir {self.root} exists and is not a directory")
        for seed in self.options.seeds:
            for variant in self.options.variants:
                checkpointer = self.make(variant, seed)
                found = checkpointer.latest()
                if found is None:
                    continue
                epoch, path = found
                if not self.resume:
                    raise CheckpointError(
                        f"{path} already holds a checkpoint of {self.recipe_name} / {variant} / "
                        f"seed {seed} (epoch {epoch}). Add --resume to continue from it, or "
                        f"choose another --checkpoint-dir (or delete {self.root}) to start over."
                    )
                checkpointer.check_config(path)

    def describe(self) -> str:
        """Return one sentence about the last complete checkpoint of the current run."""
        if self.current is None:
            return f"no run started, so {self.root} holds no new checkpoint"
        return self.current.describe()
