"""Per-epoch checkpoints of a training run, written atomically, restored exactly.

Layout, one directory per (recipe, variant, seed)::

    CHECKPOINT_DIR/<recipe>/<variant>-seed<seed>/epoch-0003/
        net.params        parameters, moving statistics included (net.save_parameters)
        trainer.states    optimizer state (trainer.save_states)
        trainer.json      which parameter each optimizer state belongs to (see below)
        rng.json          Python's and NumPy's global generator states, the training
                          iterator's state_dict() (where its shuffling stands)
        history.json      the EpochStats of every epoch done so far
        config.json       what the run was started with (checked on resume)
        manifest.json     size and SHA-256 of the files above; written last

Atomicity: everything is written into a hidden temporary directory next to the final one
(``.epoch-0003.XXXX.tmp``), the manifest last, and the directory is then renamed into
place. A process killed at any moment leaves either the complete checkpoint or a temporary
directory that :meth:`Checkpointer.restore` ignores (and removes). A checkpoint counts only
when its manifest parses and every file matches its size and SHA-256.

Random number generators: Python's and NumPy's global states and the training iterator's
``state_dict()`` (see :mod:`gluon_bn.data`) are saved and restored, the latter with its
``load_state_dict``, which refuses a state of another data set size or seed. Checkpoints
written before the iterators had these methods hold only the shuffle generator's
``bit_generator.state`` (a list under ``shuffle``) and resume as well.
MXNet 1.9 has no getter for its generator's state, so instead every epoch ``e >= 2`` of a
checkpointed run starts with ``mx.random.seed(mxnet_seed(seed, e))``, in fresh and in
resumed runs alike: the saver seeds for the next epoch right after each save, and
:meth:`Checkpointer.restore` seeds for the epoch it resumes at. Epoch 1 is left alone: it
draws the initial weights (Gluon initialises layers of unknown input size on the first
batch), so it must see the stream of ``seed_everything(seed)`` exactly as a run without
checkpoints does. The networks here draw nothing else from MXNet's generator, so a
checkpointed run, resumed or not, prints the numbers of an uncheckpointed one; the
re-seeding keeps a network that does draw (dropout, say) reproducible across a resume.

Optimizer state: ``gluon.Trainer`` numbers its parameters in the order of their global
names (``dense3_weight`` ...), which depend on how many blocks the process built before,
so the same network gets another numbering in another process (``dense10_`` sorts before
``dense9_``). ``trainer.json`` records each index's structural name (``0.weight``, as in
``net.params``), and :meth:`Checkpointer.restore` renumbers the saved states (momentum,
update counts) to the resuming trainer's order before loading them.

``trainer.states`` is a pickle, as MXNet writes it: resume only checkpoints you trust.

What must match on resume (:func:`run_config`): the recipe, variant and seed (the
directory), and every option that changes the numbers: learning rate and batch size (as
resolved against the recipe), input pipeline, scratch-BN implementation, hybridization,
dataset and the example limits. The number of epochs may grow (train further); the data
directory and ``--sync-every-batch`` (reporting only) may change.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable, List, Optional, Sequence, TextIO, Tuple

import numpy as np

from gluon_bn._mxnet import mx

FORMAT = 1
FILES = ("net.params", "trainer.states", "trainer.json", "rng.json", "history.json",
         "config.json")
MANIFEST = "manifest.json"
_EPOCH_DIR = re.compile(r"^epoch-(\d{4,})$")
_TEMP_SUFFIX = ".tmp"

# Options that may differ between the run that wrote a checkpoint and the one resuming it.
_FREE_OPTIONS = ("variants", "seeds", "epochs", "data_root", "sync_every_batch")


class CheckpointError(ValueError):
    """A checkpoint cannot be used as asked; the message says why and what to do."""


def mxnet_seed(seed: int, epoch: int) -> int:
    """Return the MXNet seed of `epoch` (1-based) of the run seeded with `seed`.

    Parameters
    ----------
    seed : int
        The run's seed.
    epoch : int
        The epoch about to start.

    Returns
    -------
    int
        A seed in ``[0, 2**31)`` that depends only on (`seed`, `epoch`).
    """
    digest = hashlib.sha256(f"gluon-bn/mxnet/{seed}/{epoch}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def run_config(recipe_name: str, variant: str, seed: int, options) -> dict:
    """Return what identifies a run for checkpointing: recipe, variant, seed and options.

    Parameters
    ----------
    recipe_name : str
        As given to ``gluon-bn reproduce`` (``NAME[:ALTERNATIVE]``).
    variant : str
        "scratch", "gluon" or "plain".
    seed : int
        The run's seed.
    options : gluon_bn.options.RunOptions or ResolvedRun
        The run's options, resolved against the recipe (:meth:`RunOptions.resolve`).

    Returns
    -------
    dict
        JSON-serialisable; ``options`` holds only what must match on resume.
    """
    from gluon_bn.options import RunOptions
    from gluon_bn.recipes import get_recipe

    recipe = get_recipe(recipe_name)
    run = options.resolve(recipe) if isinstance(options, RunOptions) else options
    fixed = {k: v for k, v in run.config().items() if k not in _FREE_OPTIONS}
    return {"recipe": recipe.name, "variant": variant, "seed": seed, "epochs": run.epochs,
            "options": fixed}


def _rng_state(data_iter) -> dict:
    """Python's and NumPy's global generator states and `data_iter`'s state, as JSON-able data."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "train_iter": data_iter.state_dict(),
    }


def _set_rng_state(state: dict, data_iter) -> None:
    """Inverse of :func:`_rng_state`; raises ValueError for an iterator state that does not fit."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "train_iter" not in state:  # written before state_dict: [bit_generator.state] or []
        saved = state["shuffle"]
        state = {"train_iter": dict(data_iter.state_dict(), shuffle=bool(saved),
                                    bit_generator=saved[0] if saved else None)}
    data_iter.load_state_dict(state["train_iter"])


def _param_keys(net, trainer) -> List[str]:
    """The structural name (``0.weight``, as in ``net.params``) of each of the trainer's parameters, by index."""
    by_id = {id(p): key for key, p in net._collect_params_with_prefix().items()}  # pylint: disable=protected-access
    keys = [by_id.get(id(p)) for p in trainer._params]  # pylint: disable=protected-access
    if None in keys:
        raise CheckpointError("the trainer updates parameters that are not the network's; "
                              "checkpoints need Trainer(net.collect_params(), ...)")
    return keys


def _trainer_layout(net, trainer) -> dict:
    return {"params": _param_keys(net, trainer),
            "names": [p.name for p in trainer._params]}  # pylint: disable=protected-access


def _load_trainer_states(path: Path, layout: dict, net, trainer) -> None:
    """Load ``trainer.states`` written under `layout` into `trainer`, renumbered to its order."""
    old_keys, old_names = layout["params"], layout["names"]
    new_keys = _param_keys(net, trainer)
    if sorted(old_keys) != sorted(new_keys):
        raise CheckpointError(f"the checkpoint's optimizer state is for other parameters "
                              f"({len(old_keys)} saved, {len(new_keys)} in this network)")
    position = {key: i for i, key in enumerate(new_keys)}
    index = {old: position[key] for old, key in enumerate(old_keys)}
    new_names = [p.name for p in trainer._params]  # pylint: disable=protected-access
    name = {old_names[old]: new_names[new] for old, new in index.items()}

    def renumber(mapping: dict) -> dict:
        return {index.get(k, k) if isinstance(k, int) else name.get(k, k): v
                for k, v in mapping.items()}

    loaded = pickle.loads(path.read_bytes())
    states, optimizer = loaded if isinstance(loaded, tuple) and len(loaded) == 2 else (loaded, None)
    states = renumber(states)
    if optimizer is not None:
        for attribute in ("_index_update_count", "idx2name", "lr_mult", "wd_mult"):
            value = getattr(optimizer, attribute, None)
            if isinstance(value, dict):
                setattr(optimizer, attribute, renumber(value))
        counts = getattr(optimizer, "_all_index_update_counts", None)
        if isinstance(counts, dict):
            optimizer._all_index_update_counts = {  # pylint: disable=protected-access
                ctx: renumber(c) for ctx, c in counts.items()}
        if isinstance(getattr(optimizer, "idx2name", None), dict) and optimizer.idx2name:
            optimizer.idx2name = {i: new_names[i] for i in optimizer.idx2name}
    handle, temp = tempfile.mkstemp(suffix=".states")
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(pickle.dumps((states, optimizer) if optimizer is not None else states))
        trainer.load_states(temp)
    finally:
        os.unlink(temp)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_json(path: Path, data) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text)


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

    def __init__(self, directory: Path, config: dict, *, resume: bool = False, keep: int = 2,
                 file: Optional[TextIO] = None) -> None:
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
    def factory(cls, root: Path, recipe_name: str, options, *, resume: bool = False,
                keep: int = 2, file: Optional[TextIO] = None) -> "CheckpointPlan":
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
        plan = CheckpointPlan(Path(root), recipe_name, options, resume=resume, keep=keep,
                              file=file)
        plan.check()
        return plan

    # ------------------------------------------------------------------ finding
    def _print(self, text: str) -> None:
        print(text, file=self.file or sys.stdout, flush=True)

    def checkpoints(self) -> List[Tuple[int, Path]]:
        """Return ``(epoch, path)`` of every checkpoint directory (complete or not), oldest first."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.iterdir():
            match = _EPOCH_DIR.match(path.name)
            if match and path.is_dir():
                found.append((int(match.group(1)), path))
        return sorted(found)

    def verify(self, path: Path) -> Optional[str]:
        """Return None if the checkpoint at `path` is complete and intact, else why not."""
        try:
            manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return "no manifest (the write did not finish)"
        except (OSError, ValueError) as err:
            return f"unreadable manifest ({err})"
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            return f"unknown checkpoint format {manifest.get('format') if isinstance(manifest, dict) else manifest!r}"
        files = manifest.get("files", {})
        for name in FILES:
            entry = files.get(name)
            target = path / name
            if entry is None:
                return f"the manifest does not list {name}"
            if not target.is_file():
                return f"{name} is missing"
            if target.stat().st_size != entry.get("bytes") or _sha256(target) != entry.get("sha256"):
                return f"{name} does not match its SHA-256 in the manifest (damaged)"
        return None

    def latest(self) -> Optional[Tuple[int, Path]]:
        """Return ``(epoch, path)`` of the newest complete, intact checkpoint, or None.

        Incomplete or damaged checkpoint directories are skipped with a note.
        """
        for epoch, path in reversed(self.checkpoints()):
            problem = self.verify(path)
            if problem is None:
                return epoch, path
            if path not in self._reported:  # say it once, not at every look
                self._reported.add(path)
                self._print(f"checkpoint: ignoring {path}: {problem}")
        return None

    def _remove_temporaries(self) -> None:
        if not self.directory.is_dir():
            return
        for path in self.directory.iterdir():
            if path.name.startswith(".epoch-") and path.name.endswith(_TEMP_SUFFIX):
                shutil.rmtree(path, ignore_errors=True)

    def check_config(self, path: Path) -> int:
        """Raise CheckpointError if the checkpoint at `path` cannot continue this run; return its epoch."""
        try:
            saved = json.loads((path / "config.json").read_text(encoding="utf-8"))
            manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise CheckpointError(f"cannot read the checkpoint {path}: {err}") from err
        mine = self.config
        differences = [f"{key}: checkpoint {saved.get(key)!r}, now {mine[key]!r}"
                       for key in ("recipe", "variant", "seed") if saved.get(key) != mine[key]]
        theirs, ours = saved.get("options", {}), mine["options"]
        differences += [f"{key}: checkpoint {theirs.get(key)!r}, now {ours.get(key)!r}"
                        for key in sorted(set(theirs) | set(ours)) if theirs.get(key) != ours.get(key)]
        if differences:
            raise CheckpointError(
                f"the checkpoint {path} was made with a different configuration, so it cannot "
                f"be resumed with this one:\n  " + "\n  ".join(differences) + "\n"
                f"Resume with the original options, or start afresh with another "
                f"--checkpoint-dir (or delete {self.directory}).")
        epoch = int(manifest["epoch"])
        if epoch > mine["epochs"]:
            raise CheckpointError(
                f"the checkpoint {path} already holds {epoch} epochs, more than the "
                f"{mine['epochs']} asked for; resume with --epochs {epoch} or more.")
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
            with another configuration or cannot be loaded.
        """
        self._remove_temporaries()
        found = self.latest()
        if found is None:
            if self.resume:
                self._print(f"checkpoint: nothing to resume in {self.directory}; "
                            f"starting at epoch 1")
            return [], 0
        epoch, path = found
        if not self.resume:
            raise CheckpointError(
                f"{path} already holds a checkpoint of this run (epoch {epoch}). Add --resume "
                f"to continue it, or choose another --checkpoint-dir (or delete "
                f"{self.directory}) to start over.")
        self.check_config(path)
        try:
            net.load_parameters(str(path / "net.params"), ctx=ctx)
            layout = json.loads((path / "trainer.json").read_text(encoding="utf-8"))
            _load_trainer_states(path / "trainer.states", layout, net, trainer)
            history = json.loads((path / "history.json").read_text(encoding="utf-8"))
            _set_rng_state(json.loads((path / "rng.json").read_text(encoding="utf-8")),
                           train_iter)
        except CheckpointError:
            raise
        except (mx.base.MXNetError, AssertionError, OSError, ValueError, KeyError,
                pickle.UnpicklingError, EOFError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise CheckpointError(f"cannot load the checkpoint {path}: {first}") from err
        if len(history) != epoch:
            raise CheckpointError(f"the checkpoint {path} is inconsistent: epoch {epoch} but "
                                  f"{len(history)} epochs of history")
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
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"epoch-{epoch:04d}"
        temp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=_TEMP_SUFFIX,
                                     dir=self.directory))
        try:
            net.save_parameters(str(temp / "net.params"))
            trainer.save_states(str(temp / "trainer.states"))
            _write_json(temp / "trainer.json", _trainer_layout(net, trainer))
            _write_json(temp / "rng.json", _rng_state(train_iter))
            _write_json(temp / "history.json", list(history))
            _write_json(temp / "config.json", self.config)
            files = {name: {"bytes": (temp / name).stat().st_size, "sha256": _sha256(temp / name)}
                     for name in FILES}
            _write_json(temp / MANIFEST, {"format": FORMAT, "epoch": epoch,
                                          "epochs": self.config["epochs"], "files": files})
            if final.exists():  # an older checkpoint of the same epoch: replace it
                old = final.with_name(f".{final.name}.old{_TEMP_SUFFIX}")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(final, old)
                shutil.rmtree(old, ignore_errors=True)
            os.replace(temp, final)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        _fsync_dir(self.directory)
        self.last_saved = final
        self._prune()
        return final

    def _prune(self) -> None:
        complete = [(e, p) for e, p in self.checkpoints() if (p / MANIFEST).is_file()]
        for _, path in complete[:-self.keep]:
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
        found = self.latest() if self.directory.is_dir() else None
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

    def __init__(self, root: Path, recipe_name: str, options, *, resume: bool, keep: int = 2,
                 file: Optional[TextIO] = None) -> None:
        self.root, self.recipe_name, self.options = Path(root), recipe_name, options
        self.resume, self.keep, self.file = resume, keep, file
        self.current: Optional[Checkpointer] = None

    def directory(self, variant: str, seed: int) -> Path:
        """Return the checkpoint directory of one run."""
        return self.root / _safe_name(self.recipe_name) / f"{_safe_name(variant)}-seed{seed}"

    def make(self, variant: str, seed: int) -> Checkpointer:
        """Return the Checkpointer of one run, without remembering it as the current one."""
        config = run_config(self.recipe_name, variant, seed, self.options)
        return Checkpointer(self.directory(variant, seed), config, resume=self.resume,
                            keep=self.keep, file=self.file)

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
                        f"choose another --checkpoint-dir (or delete {self.root}) to start over.")
                checkpointer.check_config(path)

    def describe(self) -> str:
        """Return one sentence about the last complete checkpoint of the current run."""
        if self.current is None:
            return f"no run started, so {self.root} holds no new checkpoint"
        return self.current.describe()
