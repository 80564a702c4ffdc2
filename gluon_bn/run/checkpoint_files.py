"""The files of a checkpoint: layout, atomic writes, manifest, optimizer and generator state.

What is saved when, and what may be resumed, is :mod:`gluon_bn.run.checkpoint`'s business;
this module only writes, verifies and reads the files. Layout, one directory per
(recipe, variant, seed)::

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

Optimizer state: ``gluon.Trainer`` numbers its parameters in the order of their global
names (``dense3_weight`` ...), which depend on how many blocks the process built before,
so the same network gets another numbering in another process (``dense10_`` sorts before
``dense9_``). ``trainer.json`` records each index's structural name (``0.weight``, as in
``net.params``), and :meth:`Checkpointer.restore` renumbers the saved states (momentum,
update counts) to the resuming trainer's order before loading them.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import re
import shutil
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

FORMAT = 1
FILES = ("net.params", "trainer.states", "trainer.json", "rng.json", "history.json",
         "config.json")
MANIFEST = "manifest.json"
_EPOCH_DIR = re.compile(r"^epoch-(\d{4,})$")
_TEMP_SUFFIX = ".tmp"


class CheckpointError(ValueError):
    """A checkpoint cannot be used as asked; the message says why and what to do."""


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


def list_checkpoints(directory: Path) -> List[Tuple[int, Path]]:
    """Return ``(epoch, path)`` of every checkpoint directory (complete or not), oldest first."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _EPOCH_DIR.match(path.name)
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


def write_checkpoint(directory: Path, epoch: int, net, trainer, train_iter,
                     history: Sequence[dict], config: dict) -> Path:
    """Write the checkpoint of `epoch` into `directory` atomically and return its path.

    The files are written into a temporary directory, the manifest last, which is then
    renamed into place (replacing an older checkpoint of the same epoch).
    """
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"epoch-{epoch:04d}"
    temp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=_TEMP_SUFFIX,
                                 dir=directory))
    try:
        net.save_parameters(str(temp / "net.params"))
        trainer.save_states(str(temp / "trainer.states"))
        _write_json(temp / "trainer.json", _trainer_layout(net, trainer))
        _write_json(temp / "rng.json", _rng_state(train_iter))
        _write_json(temp / "history.json", list(history))
        _write_json(temp / "config.json", config)
        files = {name: {"bytes": (temp / name).stat().st_size, "sha256": _sha256(temp / name)}
                 for name in FILES}
        _write_json(temp / MANIFEST, {"format": FORMAT, "epoch": epoch,
                                      "epochs": config["epochs"], "files": files})
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


def read_checkpoint(path: Path, net, trainer, train_iter, ctx) -> list:
    """Load the checkpoint at `path` into `net`, `trainer`, `train_iter` and the generators.

    Returns the history it holds. Errors are those of the readers (MXNetError, OSError,
    ValueError, ...), or CheckpointError for optimizer state of other parameters.
    """
    net.load_parameters(str(path / "net.params"), ctx=ctx)
    layout = json.loads((path / "trainer.json").read_text(encoding="utf-8"))
    _load_trainer_states(path / "trainer.states", layout, net, trainer)
    history = json.loads((path / "history.json").read_text(encoding="utf-8"))
    _set_rng_state(json.loads((path / "rng.json").read_text(encoding="utf-8")),
                   train_iter)
    return history
