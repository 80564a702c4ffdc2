"""What a run is: the options a user gives and the one function that resolves their defaults.

:class:`RunOptions` holds what the user asked for; a field left ``None`` or ``"auto"`` means
"the document's value" or "the package's choice". :meth:`RunOptions.resolve` turns it, with
a recipe, into a :class:`ResolvedRun` in which nothing is left open. The command line only
parses its arguments into a ``RunOptions``; the library resolves it, so ``gluon-bn
reproduce NAME ...`` and ``gluon_bn.run.reproduce.reproduce(NAME, RunOptions(...))`` run the
identical configuration.

This module imports no MXNet.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from gluon_bn.recipes import LOOPS, VARIANTS, Recipe

DATASETS = ("auto", "fashion-mnist", "mnist")
PIPELINES = ("d2l", "fast")
BN_IMPLS = ("faithful", "fast", "native")
HYBRIDIZE_MODES = ("none", "layers", "graph")


@dataclass(frozen=True)
class RunOptions:
    """How to run a recipe, as asked; ``None`` and ``"auto"`` are resolved by :meth:`resolve`.

    Attributes
    ----------
    variants : tuple of str
        Any of "scratch", "gluon", "plain".
    seeds : tuple of int
        One run per seed and variant.
    epochs, lr, batch_size : optional
        Override the document's.
    pipeline : {"d2l", "fast"}
        The input pipeline (:mod:`gluon_bn.data`).
    bn_impl : {"faithful", "fast"}
        The scratch layer's implementation.
    hybridize : {"auto", "none", "layers", "graph"}
        How the network is compiled (:func:`gluon_bn.models.hybridize_network`); "auto":
        "graph" with the fast pipeline, else "none" (the documents').
    sync_every_batch : bool, optional
        train_ch5's per-batch read-back (the documents) or one per epoch; None: per batch
        except with the fast pipeline.
    dataset : {"auto", "fashion-mnist", "mnist"}
        "auto": the document's, falling back to Fashion-MNIST (and saying so) when the
        document's MNIST cannot be found or downloaded.
    data_root : str, optional
        An explicit data directory.
    limit, test_limit : int, optional
        Use only the first N training / test examples.
    loop : {"auto", "train_ch5", "d2l.Trainer"}
        "auto": the document's loop (:attr:`Recipe.loop`), except that ``pipeline="fast"``
        (which only train_ch5 reads) picks train_ch5.
    """

    variants: Tuple[str, ...] = ("scratch", "gluon")
    seeds: Tuple[int, ...] = (0,)
    epochs: Optional[int] = None
    lr: Optional[float] = None
    batch_size: Optional[int] = None
    pipeline: str = "d2l"
    bn_impl: str = "faithful"
    hybridize: str = "auto"
    sync_every_batch: Optional[bool] = None
    dataset: str = "auto"
    data_root: Optional[str] = None
    limit: Optional[int] = None
    test_limit: Optional[int] = None
    loop: str = "auto"

    def check(self) -> None:
        """Raise ValueError naming the first option that cannot work."""
        bad = [v for v in self.variants if v not in VARIANTS]
        if not self.variants or bad:
            raise ValueError(f"variants must be among {VARIANTS}, got {list(self.variants)}")
        if not self.seeds:
            raise ValueError("give at least one seed")
        for name in ("epochs", "batch_size", "limit", "test_limit"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, int) or value < (0 if name == "epochs" else 1)
            ):
                least = "0 or more" if name == "epochs" else "a positive integer"
                raise ValueError(f"{name} must be {least}, got {value!r}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        for name, allowed in (
            ("dataset", DATASETS),
            ("pipeline", PIPELINES),
            ("bn_impl", BN_IMPLS),
            ("hybridize", ("auto",) + HYBRIDIZE_MODES),
            ("loop", ("auto",) + LOOPS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.loop == "d2l.Trainer" and self.pipeline != "d2l":
            raise ValueError(
                "the d2l.Trainer loop reads its data through gluon_bn.FashionMNIST "
                "(the book's pipeline): use --pipeline d2l, or --loop train_ch5 "
                "for the fast pipeline"
            )

    def resolve(self, recipe: Recipe, *, dataset: Optional[str] = None) -> "ResolvedRun":
        """Return the run these options describe for `recipe`, every default decided.

        Parameters
        ----------
        recipe : Recipe
            The document whose values fill what the options leave open.
        dataset : str, optional
            The data set to train on when it has been decided already (see
            :func:`gluon_bn.run.reproduce.resolve_dataset`, which looks for the files); by
            default the asked one, or the document's for "auto".

        Raises
        ------
        ValueError
            For options that cannot work (:meth:`check`).
        """
        self.check()
        fast = self.pipeline == "fast"
        loop = self.loop if self.loop != "auto" else ("train_ch5" if fast else recipe.loop)
        hybridize = self.hybridize if self.hybridize != "auto" else ("graph" if fast else "none")
        sync = (not fast) if self.sync_every_batch is None else bool(self.sync_every_batch)
        return ResolvedRun(
            recipe=recipe,
            variants=tuple(self.variants),
            seeds=tuple(self.seeds),
            epochs=recipe.num_epochs if self.epochs is None else self.epochs,
            lr=recipe.learning_rate if self.lr is None else self.lr,
            batch_size=self.batch_size or recipe.batch_size,
            pipeline=self.pipeline,
            bn_impl=self.bn_impl,
            hybridize=hybridize,
            sync_every_batch=sync,
            loop=loop,
            dataset=dataset or (recipe.dataset if self.dataset == "auto" else self.dataset),
            data_root=self.data_root,
            limit=self.limit,
            test_limit=self.test_limit,
        )


@dataclass(frozen=True)
class ResolvedRun:
    """A run with nothing left open: what trains, how, on what, for how long.

    Attributes
    ----------
    recipe : Recipe
        The document.
    variants, seeds, epochs, lr, batch_size, pipeline, bn_impl, hybridize, sync_every_batch, loop, data_root, limit, test_limit
        As in :class:`RunOptions`, resolved (``lr`` is the document's step, before any
        scaling for a summed loss: see :meth:`trainer_learning_rate`).
    dataset : {"fashion-mnist", "mnist"}
        What it trains on.
    """

    recipe: Recipe
    variants: Tuple[str, ...]
    seeds: Tuple[int, ...]
    epochs: int
    lr: float
    batch_size: int
    pipeline: str
    bn_impl: str
    hybridize: str
    sync_every_batch: bool
    loop: str
    dataset: str
    data_root: Optional[str] = None
    limit: Optional[int] = None
    test_limit: Optional[int] = None

    def trainer_learning_rate(self) -> float:
        """Return the learning rate ``gluon.Trainer`` gets when train_ch5 steps by the batch size."""
        return self.recipe.trainer_learning_rate(self.lr)

    def command(self, omp_threads: Optional[int] = None) -> List[str]:
        """Return the ``gluon-bn`` arguments that run this again (data location left out).

        Parameters
        ----------
        omp_threads : int, optional
            The record's OpenMP thread count: its numbers repeat only with it (``--threads``).
        """
        variant = {("scratch", "gluon"): [], ("scratch", "gluon", "plain"): ["--variant", "all"]}
        args = [
            "reproduce",
            self.recipe.name,
            *variant.get(
                tuple(self.variants),
                ["--variant", self.variants[0] if len(self.variants) == 1 else "all"],
            ),
        ]
        args += [
            "--seed",
            *map(str, self.seeds),
            "--epochs",
            str(self.epochs),
            "--lr",
            f"{self.lr:g}",
            "--batch-size",
            str(self.batch_size),
            "--pipeline",
            self.pipeline,
            "--bn-impl",
            self.bn_impl,
            "--hybridize",
            self.hybridize,
            "--sync-every-batch",
            "yes" if self.sync_every_batch else "no",
            "--loop",
            self.loop,
            "--dataset",
            self.dataset,
        ]
        for flag, value in (
            ("--limit", self.limit),
            ("--test-limit", self.test_limit),
            ("--threads", omp_threads),
        ):
            if value is not None:
                args += [flag, str(value)]
        return args

    def config(self) -> Dict[str, object]:
        """Return the run as the ``config`` of its JSON record (everything but the recipe)."""
        fields = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "recipe"
        }
        return {**fields, "variants": list(self.variants), "seeds": list(self.seeds)}
