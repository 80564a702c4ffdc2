"""The files of a checkpoint: layout, atomic writes, manifest, optimizer and generator state.

What is saved when, and what may be resumed, is :mod:`gluon_bn.run.checkpoint`'s business;
this module only writes, verifies and reads the files. Layout, one directory per
(recipe, variant, seed)::

    CHECKPOINT_DIR/<recipe>/<variant>-seed<seed>/epoch-0003/
        net.params        parameters, moving statistics included (net.save_parameters)
        trainer.params    the optimizer's per-parameter state arrays (SGD's momentum),
                          in MXNet's own binary format (mx.nd.save), named by parameter
        trainer.json      which parameter each trainer index is (see below), and the
                          optimizer's scalars: update counts, learning rate (and its
                          schedule), hyperparameters, and what each state is made of
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

Optimizer state: ``gluon.Trainer`` numbers its parameters in the order of their global
names (``dense3_weight`` ...), which depend on how many blocks the process built before,
so the same network gets another numbering in another process (``dense10_`` sorts before
``dense9_``). ``trainer.json`` records each index's structural name (``0.weight``, as in
``net.params``), and :meth:`Checkpointer.restore` renumbers the saved states (momentum,
update counts) to the resuming trainer's order before loading them.

No pickles (manifest ``format`` 2): MXNet's ``Trainer.save_states`` writes a pickle, and
loading a pickle can run arbitrary code, so a checkpoint from elsewhere could take over the
process that resumes it. The optimizer state is therefore stored as arrays
(``trainer.params``, read with ``mx.nd.load``, which only parses arrays) plus JSON, and
written into and read from the trainer's updaters and optimizer directly (the comment
above :func:`_updaters` lists the MXNet 1.9.1 attributes used, as
``Trainer.save_states``/``load_states`` use them). Nothing here imports :mod:`pickle`.
Checkpoints of format 1 (written by an earlier gluon-bn, with a ``trainer.states``
pickle) are refused with a :class:`CheckpointError` that says how to start afresh
(:func:`refuse_pickled`); their ``trainer.states`` is never opened.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from gluon_bn.run.checkpoint_optimizer import (
    CheckpointError,
    _load_trainer_state,
    _save_trainer_state,
)
from gluon_bn.run.resume import EPOCH_DIR, MANIFEST
from gluon_bn.runtime.loader import mx

FORMAT = 2  # 1: optimizer state in trainer.states, a pickle (refused, never read)
FILES = ("net.params", "trainer.params", "trainer.json", "rng.json", "history.json", "config.json")
_OLD_STATES = "trainer.states"  # format 1's pickle
_TEMP_SUFFIX = ".tmp"


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
        state = {
            "train_iter": dict(
                data_iter.state_dict(),
                shuffle=bool(saved),
                bit_generator=saved[0] if saved else None,
            )
        }
    data_iter.load_state_dict(state["train_iter"])


def pickle_problem(path: Path) -> Optional[str]:
    """Return why the checkpoint directory `path` is of the old, pickled format, or None.

    Looks at names and the manifest only; never reads, let alone unpickles, ``trainer.states``.
    """
    if (path / _OLD_STATES).exists():
        return f"it holds {_OLD_STATES}"
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(manifest, dict) and (
        manifest.get("format") == 1
        or _OLD_STATES in (manifest.get("files") if isinstance(manifest.get("files"), dict) else {})
    ):
        return f"its manifest (format {manifest.get('format')!r}) lists {_OLD_STATES}"
    return None


def refuse_pickled(path: Path, run_directory: Optional[Path] = None) -> None:
    """Raise CheckpointError if the checkpoint at `path` stores a pickle (the old format)."""
    problem = pickle_problem(path)
    if problem is None:
        return
    where = run_directory or path.parent
    raise CheckpointError(
        f"the checkpoint {path} stores the optimizer state as a pickle ({problem}): it was "
        f"written by an earlier gluon-bn. gluon-bn no longer loads pickles, because loading "
        f"one can run arbitrary code, so it cannot resume this checkpoint (it was not read "
        f"and is left as it is). Start afresh with another --checkpoint-dir (or delete "
        f"{where})."
    )


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


def list_checkpoints(directory: Path) -> List[Tuple[int, Path]]:
    """Return ``(epoch, path)`` of every checkpoint directory (complete or not), oldest first."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = EPOCH_DIR.match(path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    return sorted(found)


def verify_checkpoint(path: Path) -> Optional[str]:
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


def remove_temporaries(directory: Path) -> None:
    """Delete the temporary directories that unfinished writes left in `directory`."""
    if not directory.is_dir():
        return
    for path in directory.iterdir():
        if path.name.startswith(".epoch-") and path.name.endswith(_TEMP_SUFFIX):
            shutil.rmtree(path, ignore_errors=True)


def write_checkpoint(
    directory: Path, epoch: int, net, trainer, train_iter, history: Sequence[dict], config: dict
) -> Path:
    """Write the checkpoint of `epoch` into `directory` atomically and return its path.

    The files are written into a temporary directory, the manifest last, which is then
    renamed into place (replacing an older checkpoint of the same epoch).
    """
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"epoch-{epoch:04d}"
    temp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=_TEMP_SUFFIX, dir=directory))
    steps = [
        ("net.params", lambda: net.save_parameters(str(temp / "net.params"))),
        (
            "trainer.params",
            lambda: _write_json(temp / "trainer.json", _save_trainer_state(temp, net, trainer)),
        ),
        ("rng.json", lambda: _write_json(temp / "rng.json", _rng_state(train_iter))),
        ("history.json", lambda: _write_json(temp / "history.json", list(history))),
        ("config.json", lambda: _write_json(temp / "config.json", config)),
        (
            MANIFEST,
            lambda: _write_json(
                temp / MANIFEST,
                {
                    "format": FORMAT,
                    "epoch": epoch,
                    "epochs": config["epochs"],
                    "files": {
                        name: {
                            "bytes": (temp / name).stat().st_size,
                            "sha256": _sha256(temp / name),
                        }
                        for name in FILES
                    },
                },
            ),
        ),
    ]
    try:
        for name, write in steps:
            try:
                write()
            except (OSError, mx.base.MXNetError) as err:
                raise _write_failed(final / name, err, directory) from None
        if final.exists():  # an older checkpoint of the same epoch: replace it
            old = final.with_name(f".{final.name}.old{_TEMP_SUFFIX}")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(temp, final)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    _fsync_dir(directory)
    return final


def _write_failed(path: Path, err: BaseException, directory: Path):
    """Return the WriteError for a checkpoint file that could not be written: which, why, what is kept."""
    from gluon_bn.report import WriteError, os_error_cause

    if isinstance(err, OSError):
        cause = os_error_cause(err)
    else:  # MXNet's own writer reports no errno: "FileStream.Write incomplete"
        cause = (
            "MXNet could not write the whole file (a full disk or a file-size limit?): "
            + str(err).strip().splitlines()[-1][:200]
        )
    kept = [path for _, path in list_checkpoints(directory) if verify_checkpoint(path) is None]
    previous = (
        f"the last complete checkpoint is intact: {kept[-1]}"
        if kept
        else "no earlier checkpoint of this run exists"
    )
    return WriteError(
        f"could not write the checkpoint file {path}: {cause}; {previous}. Free "
        f"space (or raise the limit), then run the same command with --resume."
    )


def read_checkpoint(path: Path, net, trainer, train_iter, ctx) -> list:
    """Load the checkpoint at `path` into `net`, `trainer`, `train_iter` and the generators.

    Returns the history it holds. Errors are those of the readers (MXNetError, OSError,
    ValueError, KeyError, ...), or CheckpointError for optimizer state of other parameters
    or another optimizer, and for a checkpoint of the old format (a pickle), which is
    refused before anything is read.
    """
    refuse_pickled(path)
    net.load_parameters(str(path / "net.params"), ctx=ctx)
    data = json.loads((path / "trainer.json").read_text(encoding="utf-8"))
    _load_trainer_state(path, data, net, trainer)
    history = json.loads((path / "history.json").read_text(encoding="utf-8"))
    _set_rng_state(json.loads((path / "rng.json").read_text(encoding="utf-8")), train_iter)
    return history
