"""Typed records of what training measured, and their JSON at the edge.

A reproduction is a :class:`Reproduction`: the resolved run (:class:`gluon_bn.options.
ResolvedRun`, which holds the recipe), the environment it ran in, and one
:class:`VariantRun` per variant and seed, each with its per-epoch history. Each loop keeps
its own epoch record: :class:`EpochStats` (train_ch5's printed line) and :class:`BookEpoch`
(d2l 1.0's board). The reports, the results table and the checkpoints read these objects;
JSON is only how they are stored, written by :meth:`Reproduction.to_json` and read back by
:func:`load_result` (which also reads the records written before the schema had a version).

This module imports no MXNet.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from gluon_bn.options import ResolvedRun
from gluon_bn.recipes import get_recipe

SCHEMA_VERSION = 3


@dataclass(frozen=True)
class EpochStats:
    """What one epoch of :func:`gluon_bn.run.training.train_ch5` measured.

    Attributes
    ----------
    epoch : int
        1-based.
    loss, train_acc, test_acc : float
        Mean summed-softmax-cross-entropy per example, accuracy over the epoch's training
        batches (as the network stood when it saw each batch), accuracy on the test set.
    seconds : float
        Wall time of the epoch including the test evaluation (what train_ch5 prints).
    train_seconds : float
        Wall time of the training batches alone.
    examples_per_sec : float
        Training examples per training second.
    """

    epoch: int
    loss: float
    train_acc: float
    test_acc: float
    seconds: float
    train_seconds: float
    examples_per_sec: float

    def line(self) -> str:
        """Return the line train_ch5 prints for this epoch."""
        return (
            f"epoch {self.epoch}, loss {self.loss:.4f}, train acc {self.train_acc:.3f}, "
            f"test acc {self.test_acc:.3f}, time {self.seconds:.1f} sec"
        )

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class BookEpoch:
    """One epoch of ``d2l.Trainer``: the means of what its board plots, and the time.

    Attributes
    ----------
    epoch : int
        1-based.
    train_loss : float
        Mean of the epoch's batch-mean training losses (as the network stood at each batch).
    val_loss, val_acc : float
        Means over the validation batches after the epoch, in prediction mode.
    seconds : float
        Wall time of the epoch, validation included, after MXNet's queue has drained.
    """

    epoch: int
    train_loss: float
    val_loss: float
    val_acc: float
    seconds: float

    def line(self) -> str:
        """Return the line printed for this epoch."""
        return (
            f"epoch {self.epoch}, train loss {self.train_loss:.4f}, val loss "
            f"{self.val_loss:.4f}, val acc {self.val_acc:.3f}, time {self.seconds:.1f} sec"
        )

    def as_dict(self) -> dict:
        return asdict(self)


Epoch = Union[EpochStats, BookEpoch]
# Each loop's epoch record, and its metrics as reports show them (seconds last).
EPOCH_TYPES = {"train_ch5": EpochStats, "d2l.Trainer": BookEpoch}
LOOP_METRICS = {
    "train_ch5": ("loss", "train_acc", "test_acc", "seconds"),
    "d2l.Trainer": ("train_loss", "val_loss", "val_acc", "seconds"),
}
# The held-out accuracy each loop measures after every epoch.
HELD_OUT_ACCURACY = {"train_ch5": "test_acc", "d2l.Trainer": "val_acc"}


def loop_of_epoch(data: dict) -> str:
    """Return the loop that wrote the epoch record `data`: the one whose metrics it holds."""
    for loop, metrics in LOOP_METRICS.items():
        if set(metrics) <= set(data):
            return loop
    raise ValueError(
        f"not an epoch record of a known loop ({', '.join(LOOP_METRICS)}): "
        f"its keys are {sorted(data)}"
    )


def epoch_from_dict(data: dict) -> Epoch:
    """Return the epoch record stored as `data` (its keys say which loop wrote it)."""
    cls = EPOCH_TYPES[loop_of_epoch(data)]
    names = {f.name for f in fields(cls)}
    return cls(**{k: _number(v) for k, v in data.items() if k in names})


def _number(value):
    """JSON keeps NaN and infinities as strings ("nan", "inf"); read them back as floats."""
    return float(value) if isinstance(value, str) else value


@dataclass(frozen=True)
class VariantRun:
    """One network trained with one seed: its history and its first BN layer's gamma and beta.

    Attributes
    ----------
    variant : {"scratch", "gluon", "plain"}
    seed : int
    history : tuple of EpochStats or BookEpoch
        One record per epoch, in order.
    first_bn_gamma, first_bn_beta : tuple of float, optional
        The first BN layer's learned parameters (None for plain LeNet).
    """

    variant: str
    seed: int
    history: Tuple[Epoch, ...]
    first_bn_gamma: Optional[Tuple[float, ...]] = None
    first_bn_beta: Optional[Tuple[float, ...]] = None

    def values(self, metric: str) -> List[float]:
        """Return `metric` of every epoch, in order."""
        return [getattr(epoch, metric) for epoch in self.history]

    def to_json(self) -> dict:
        """Return this run as JSON-ready data."""
        return {
            "variant": self.variant,
            "seed": self.seed,
            "history": [epoch.as_dict() for epoch in self.history],
            "first_bn_gamma": _list(self.first_bn_gamma),
            "first_bn_beta": _list(self.first_bn_beta),
        }

    @classmethod
    def from_json(cls, data: dict) -> "VariantRun":
        """Return the run stored as `data`."""
        return cls(
            data["variant"],
            int(data["seed"]),
            tuple(epoch_from_dict(h) for h in data["history"]),
            _tuple(data.get("first_bn_gamma")),
            _tuple(data.get("first_bn_beta")),
        )


def _list(values: Optional[Tuple[float, ...]]) -> Optional[list]:
    return None if values is None else list(values)


def _tuple(values: Optional[list]) -> Optional[Tuple[float, ...]]:
    return None if values is None else tuple(values)


@dataclass
class Reproduction:
    """A recipe reproduced: the resolved run, where it ran, and every variant and seed's run.

    Attributes
    ----------
    run : ResolvedRun
        What was run (recipe included).
    environment : dict
        Versions, device and thread settings (:func:`gluon_bn.report.provenance`).
    runs : list of VariantRun
        In the order they ran.
    """

    run: ResolvedRun
    environment: Dict[str, object]
    runs: List[VariantRun] = field(default_factory=list)

    @property
    def recipe(self):
        return self.run.recipe

    @property
    def loop(self) -> str:
        return self.run.loop

    @property
    def metrics(self) -> Tuple[str, ...]:
        """The per-epoch metrics of this run's loop, seconds last."""
        return LOOP_METRICS[self.run.loop]

    def runs_of(self, variant: str) -> List[VariantRun]:
        """Return the runs of `variant`, one per seed."""
        return [r for r in self.runs if r.variant == variant]

    def to_json(self) -> dict:
        """Return the record as JSON-ready data (what ``STEM.json`` holds)."""
        return {
            "schema": SCHEMA_VERSION,
            "recipe": self.recipe.name,
            "dataset": self.run.dataset,
            "dataset_note": self.recipe.describe_dataset(self.run.dataset),
            "config": self.run.config(),
            "environment": self.environment,
            "recipe_data": asdict(self.recipe),
            "runs": [r.to_json() for r in self.runs],
        }

    @classmethod
    def from_json(cls, data: dict) -> "Reproduction":
        """Return the record stored as `data`, migrating records older than the schema version."""
        data = migrate(data)
        recipe = get_recipe(data["recipe"])
        names = {f.name for f in fields(ResolvedRun)} - {"recipe"}
        config = {k: v for k, v in data["config"].items() if k in names}
        config.update(variants=tuple(config["variants"]), seeds=tuple(config["seeds"]))
        return cls(
            ResolvedRun(recipe=recipe, **config),
            data["environment"],
            [VariantRun.from_json(r) for r in data["runs"]],
        )


def migrate(data: dict) -> dict:
    """Return a stored record in the current schema (version 3).

    Version 1 (no ``schema`` key) had no loop (every run was train_ch5's, unless its history
    shows the board's metrics), stored ``dataset`` "auto" in its config when the data set
    was chosen at run time, and ``hybridize`` as True/False in its oldest records.
    Version 2 had no ``environment["omp_threads"]``: it follows from the thread variables
    the record kept and its CPU count, by MXNet's own rule.
    """
    version = data.get("schema", 1)
    if version == SCHEMA_VERSION:
        return data
    if version not in (1, 2):
        raise ValueError(
            f"unknown result schema {version!r}; this gluon-bn reads "
            f"versions 1 to {SCHEMA_VERSION}: upgrade gluon-bn"
        )
    if version == 1:
        data = _migrate_from_1(data)
    environment = dict(data["environment"])
    if "omp_threads" not in environment:
        from gluon_bn.runtime import threads_in_effect

        environment["omp_threads"] = threads_in_effect(
            environment.get("threads") or {}, cores=environment.get("cpu_count")
        )
    return {**data, "schema": SCHEMA_VERSION, "environment": environment}


def _migrate_from_1(data: dict) -> dict:
    config = dict(data["config"])
    first = next((run["history"][0] for run in data["runs"] if run["history"]), None)
    if config.get("loop") not in LOOP_METRICS:
        config["loop"] = loop_of_epoch(first) if first else "train_ch5"
    if config.get("dataset") in (None, "auto"):
        config["dataset"] = data["dataset"]
    config["hybridize"] = {None: "none", False: "none", True: "layers"}.get(
        config.get("hybridize"), config.get("hybridize")
    )
    if config.get("sync_every_batch") is None:
        config["sync_every_batch"] = config.get("pipeline") != "fast"
    return {**data, "config": config}


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def dumps(reproduction: Reproduction) -> str:
    """Return the JSON text of a record."""
    return json.dumps(reproduction.to_json(), indent=1, default=_jsonable) + "\n"


def load_result(path: Union[str, Path]) -> Reproduction:
    """Read a result JSON file (any schema version) into a :class:`Reproduction`.

    Raises
    ------
    ValueError
        When the file is not a result record, naming the file.
    """
    path = Path(path)
    try:
        return Reproduction.from_json(json.loads(path.read_text()))
    except (KeyError, TypeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a gluon-bn result record ({err!r})") from err
