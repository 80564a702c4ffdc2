"""The optimizer's state in a checkpoint, as MXNet arrays and JSON: never a pickle.

Part of the checkpoints (:mod:`gluon_bn.run.checkpoint_files` writes and reads the files);
this module turns a ``gluon.Trainer``'s state into ``trainer.params`` and ``trainer.json``
and back, renumbered to the resuming trainer's order of parameters.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import List, Tuple

from gluon_bn.runtime.loader import mx


class CheckpointError(ValueError):
    """A checkpoint cannot be used as asked; the message says why and what to do.

    Defined here, at the bottom of the checkpoint modules (``checkpoint_files`` and
    ``checkpoint`` import it from here and re-export it).
    """


def _param_keys(net, trainer) -> List[str]:
    """The structural name (``0.weight``, as in ``net.params``) of each of the trainer's parameters, by index."""
    by_id = {id(p): key for key, p in net._collect_params_with_prefix().items()}  # pylint: disable=protected-access
    keys = [by_id.get(id(p)) for p in trainer._params]  # pylint: disable=protected-access
    if None in keys:
        raise CheckpointError(
            "the trainer updates parameters that are not the network's; "
            "checkpoints need Trainer(net.collect_params(), ...)"
        )
    return keys


def _trainer_layout(net, trainer) -> dict:
    return {"params": _param_keys(net, trainer), "names": [p.name for p in trainer._params]}  # pylint: disable=protected-access


# ---------------------------------------------------------------------- optimizer state
# gluon.Trainer.save_states/load_states exchange a pickle of (Updater.states, optimizer),
# and unpickling can run code, so the checkpoints store the same state as MXNet arrays
# (``trainer.params``, mx.nd.save's binary format) and JSON (``trainer.json``) instead.
# What is read and written, all as MXNet 1.9.1 defines it (mxnet/gluon/trainer.py,
# mxnet/optimizer/optimizer.py):
#   Trainer.optimizer                 the optimizer (a public property)
#   Trainer._updaters                 one optimizer.Updater per device; Trainer.load_states
#                                     gives each the same ``states`` and marks them unsynced
#   Updater.states, .states_synced    {parameter index: state}; a state is None, an NDArray
#                                     (SGD's momentum) or a tuple of them (multi-precision)
#   Optimizer.num_update, begin_num_update, lr (set_learning_rate), lr_scheduler
#   Optimizer._all_index_update_counts / _index_update_count
#                                     {device id: {parameter index: updates done}}, which
#                                     Optimizer._update_count and _set_current_context keep
_STATE_ARRAYS = "trainer.params"
_OPTIMIZER_SCALARS = ("momentum", "wd", "clip_gradient", "multi_precision", "lazy_update")


def _updaters(trainer) -> list:
    """The trainer's updaters, initialised as Trainer.save_states/load_states do first."""
    # pylint: disable=protected-access
    if not trainer._kv_initialized:
        trainer._init_kvstore()
    if trainer._params_to_init:
        trainer._init_params()
    if trainer._update_on_kvstore:
        raise CheckpointError(
            "checkpoints cannot hold the optimizer state of a trainer that "
            "updates on a kvstore (update_on_kvstore); train on one device"
        )
    return list(trainer._updaters)


def _encode_state(state, name: str, arrays: dict):
    """JSON description of one optimizer state; its NDArrays go into `arrays` under `name`/i."""
    if state is None:
        return None
    if isinstance(state, mx.nd.NDArray):
        arrays[name] = state.copyto(mx.cpu())
        return "array"
    if isinstance(state, (tuple, list)):
        return {
            "tuple" if isinstance(state, tuple) else "list": [
                _encode_state(s, f"{name}/{i}", arrays) for i, s in enumerate(state)
            ]
        }
    raise CheckpointError(
        f"cannot checkpoint an optimizer state of type {type(state).__name__} ({name})"
    )


def _decode_state(spec, name: str, arrays: dict):
    """Inverse of :func:`_encode_state`; ValueError if the description and arrays disagree."""
    if spec is None:
        return None
    if spec == "array":
        if name not in arrays:
            raise ValueError(f"{_STATE_ARRAYS} lacks the optimizer state {name}")
        return arrays.pop(name)
    if isinstance(spec, dict) and len(spec) == 1 and set(spec) <= {"tuple", "list"}:
        kind, items = next(iter(spec.items()))
        decoded = [_decode_state(s, f"{name}/{i}", arrays) for i, s in enumerate(items)]
        return tuple(decoded) if kind == "tuple" else decoded
    raise ValueError(f"unknown optimizer state description {spec!r} ({name})")


def _optimizer_state(net, trainer) -> Tuple[dict, dict]:
    """Return ``(trainer.json data, {name: NDArray})``: the trainer's state without pickles.

    States and update counts are keyed by structural parameter name (``0.weight``), so that
    they can be renumbered to another process's trainer (see the module docstring).
    """
    updater = _updaters(trainer)[0]
    optimizer = trainer.optimizer
    keys = _param_keys(net, trainer)
    arrays: dict = {}
    states = {}
    for index, state in sorted(updater.states.items()):
        if not isinstance(index, int) or not 0 <= index < len(keys):
            raise CheckpointError(f"unexpected optimizer state index {index!r}")
        states[keys[index]] = _encode_state(state, keys[index], arrays)
    counts = optimizer._all_index_update_counts  # pylint: disable=protected-access
    current = next(
        (device for device, c in counts.items() if c is optimizer._index_update_count), None
    )  # pylint: disable=protected-access
    scheduler = optimizer.lr_scheduler
    data = dict(
        _trainer_layout(net, trainer),
        optimizer={
            "class": type(optimizer).__name__,
            "num_update": int(optimizer.num_update),
            "begin_num_update": int(optimizer.begin_num_update),
            "lr": optimizer.lr,
            "lr_scheduler": None
            if scheduler is None
            else {"class": type(scheduler).__name__, "attributes": dict(vars(scheduler))},
            "update_counts": {
                str(device): {keys[i]: int(n) for i, n in sorted(c.items())}
                for device, c in counts.items()
            },
            "current_device": current,
            "scalars": {
                name: getattr(optimizer, name)
                for name in _OPTIMIZER_SCALARS
                if hasattr(optimizer, name)
            },
            "states": states,
        },
    )
    try:
        json.dumps(data)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"the optimizer state cannot be written as JSON: {err}") from err
    return data, arrays


def _save_trainer_state(directory: Path, net, trainer) -> dict:
    """Write ``trainer.params`` (state arrays); return what ``trainer.json`` holds (layout, scalars)."""
    data, arrays = _optimizer_state(net, trainer)
    mx.nd.save(str(directory / _STATE_ARRAYS), arrays)
    with open(directory / _STATE_ARRAYS, "rb+") as f:
        os.fsync(f.fileno())
    return data


def _load_trainer_state(directory: Path, data: dict, net, trainer) -> None:
    """Load ``trainer.params`` and ``trainer.json`` into `trainer`, renumbered to its order.

    Raises CheckpointError for state of other parameters or another optimizer, ValueError
    or KeyError for files that do not fit together.
    """
    old_keys = data["params"]
    new_keys = _param_keys(net, trainer)
    if sorted(old_keys) != sorted(new_keys):
        raise CheckpointError(
            f"the checkpoint's optimizer state is for other parameters "
            f"({len(old_keys)} saved, {len(new_keys)} in this network)"
        )
    saved = data["optimizer"]
    optimizer = trainer.optimizer
    if saved["class"] != type(optimizer).__name__:
        raise CheckpointError(
            f"the checkpoint's optimizer is {saved['class']}, this run's "
            f"is {type(optimizer).__name__}"
        )
    differences = [
        f"{name}: checkpoint {value!r}, now {getattr(optimizer, name, None)!r}"
        for name, value in saved["scalars"].items()
        if getattr(optimizer, name, None) != value
    ]
    if differences:
        raise CheckpointError(
            "the checkpoint's optimizer was set up differently: " + "; ".join(differences)
        )
    scheduler = optimizer.lr_scheduler
    saved_scheduler = saved["lr_scheduler"]
    if (scheduler is None) != (saved_scheduler is None) or (
        scheduler is not None and saved_scheduler["class"] != type(scheduler).__name__
    ):
        raise CheckpointError("the checkpoint's learning rate schedule is not this run's")
    position = {key: i for i, key in enumerate(new_keys)}

    loaded = mx.nd.load(str(directory / _STATE_ARRAYS))
    if isinstance(loaded, list):  # mx.nd.save of an empty dict loads as []
        if loaded:
            raise ValueError(f"{_STATE_ARRAYS} holds unnamed arrays")
        loaded = {}
    states = {
        position[key]: _decode_state(spec, key, loaded) for key, spec in saved["states"].items()
    }
    if loaded:
        raise ValueError(
            f"{_STATE_ARRAYS} holds arrays that trainer.json does not describe: {sorted(loaded)}"
        )
    counts = {
        int(device): {position[key]: int(n) for key, n in c.items()}
        for device, c in saved["update_counts"].items()
    }
    current = saved["current_device"]

    # Everything is read and checked: now change the trainer, as Trainer.load_states does.
    for updater in _updaters(trainer):
        updater.states = dict(states)
        updater.states_synced = dict.fromkeys(states, False)  # moved to the weights' device
        updater.optimizer = optimizer
    # pylint: disable=protected-access
    optimizer._all_index_update_counts = counts or {0: {}}
    optimizer._index_update_count = optimizer._all_index_update_counts.setdefault(
        current if current is not None else next(iter(optimizer._all_index_update_counts)), {}
    )
    optimizer.num_update = int(saved["num_update"])
    optimizer.begin_num_update = int(saved["begin_num_update"])
    if scheduler is None:
        optimizer.set_learning_rate(saved["lr"])
    else:
        optimizer.lr = saved["lr"]
        for name, value in saved_scheduler["attributes"].items():
            setattr(scheduler, name, value)
