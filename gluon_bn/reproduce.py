"""Run a recipe: build its network, train it with train_ch5 on its data, record the outcome."""
from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence, TextIO, Tuple

from ._mxnet import mx
from . import data as gdata
from .device import as_context_list
from .models import (build_net, check_hybridize_mode, find_bn, hybridize_network,
                     make_initializer)
from .recipes import LOOPS, Recipe, VARIANTS, get_recipe
from .report import environment, write_outputs
from .training import seed_everything, train_ch5

DATASETS = ("auto", "fashion-mnist", "mnist")


@dataclass(frozen=True)
class RunOptions:
    """How to run a recipe; every field left None takes the document's value.

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
    hybridize : {"none", "layers", "graph"}
        How the network is compiled (:func:`gluon_bn.models.hybridize_network`).
    sync_every_batch : bool
        train_ch5's per-batch read-back (the documents) or one per epoch.
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
    hybridize: str = "none"
    sync_every_batch: bool = True
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
            if value is not None and (not isinstance(value, int) or value < (0 if name == "epochs" else 1)):
                least = "0 or more" if name == "epochs" else "a positive integer"
                raise ValueError(f"{name} must be {least}, got {value!r}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.pipeline not in gdata.PIPELINES:
            raise ValueError(f"pipeline must be one of {gdata.PIPELINES}, got {self.pipeline!r}")
        check_hybridize_mode(self.hybridize)
        if self.bn_impl not in ("faithful", "fast"):
            raise ValueError(f"bn_impl must be 'faithful' or 'fast', got {self.bn_impl!r}")
        if self.loop not in ("auto",) + LOOPS:
            raise ValueError(f"loop must be one of {('auto',) + LOOPS}, got {self.loop!r}")
        if self.loop == "d2l.Trainer" and self.pipeline != "d2l":
            raise ValueError("the d2l.Trainer loop reads its data through gluon_bn.FashionMNIST "
                             "(the book's pipeline): use --pipeline d2l, or --loop train_ch5 "
                             "for the fast pipeline")


def resolve_loop(recipe: Recipe, options: RunOptions) -> str:
    """Return the training loop a run uses ("train_ch5" or "d2l.Trainer")."""
    if options.loop != "auto":
        return options.loop
    return "train_ch5" if options.pipeline == "fast" else recipe.loop


def resolve_dataset(recipe: Recipe, options: RunOptions, file: TextIO) -> str:
    """Return the dataset to train on; for "auto", say so when falling back from MNIST."""
    if options.dataset != "auto":
        return options.dataset
    if recipe.dataset == "mnist":
        try:
            gdata.find_data_root(gdata.MNIST, options.data_root)
            return "mnist"
        except gdata.DataError:
            print(f"note: {recipe.name} trained on MNIST digits, which cannot be found or "
                  f"downloaded here; running it on Fashion-MNIST instead (reports say so). "
                  f"Use --dataset mnist where MNIST is available.", file=file)
            return "fashion-mnist"
    return recipe.dataset


def load_data(dataset: str, batch_size: int, options: RunOptions, seed: int):
    """Return (train_iter, test_iter) of `dataset` for one run."""
    spec = gdata.MNIST if dataset == "mnist" else gdata.FASHION_MNIST
    return gdata.load_data(spec, batch_size, root=options.data_root, pipeline=options.pipeline,
                           seed=seed, limit=options.limit, test_limit=options.test_limit)


def run_variant(recipe: Recipe, variant: str, seed: int, ctx, options: RunOptions,
                dataset: str, *, file: Optional[TextIO] = None,
                checkpoint=None, on_epoch_end=None, return_net: bool = False,
                stop_requested=None):
    """Train one variant of `recipe` with one seed; return its record (history and first BN).

    Parameters
    ----------
    recipe : Recipe
        The document.
    variant : {"scratch", "gluon", "plain"}
        Which network.
    seed : int
        Seeds Python, NumPy and MXNet (initial weights) and the training-set shuffling.
    ctx : Context or list of Context
        Where to train.
    options : RunOptions
        Overrides and switches.
    dataset : str
        "fashion-mnist" or "mnist".
    file : text stream, optional
        Where train_ch5 prints.
    checkpoint : gluon_bn.checkpoint.Checkpointer, optional
        Saves after every epoch and restores a previous run's state.
    on_epoch_end : callable, optional
        Called with each epoch's EpochStats (after the checkpoint, if any): live curves.
    return_net : bool
        Return ``(record, trained_net)`` instead of the record alone.
    stop_requested : callable, optional
        Passed to :func:`gluon_bn.training.train_ch5`.
    """
    file = file or sys.stdout
    batch_size = options.batch_size or recipe.batch_size
    epochs = recipe.num_epochs if options.epochs is None else options.epochs
    if resolve_loop(recipe, options) == "d2l.Trainer":
        if checkpoint is not None:
            raise ValueError("checkpoints are kept by the train_ch5 loop only; drop "
                             "--checkpoint-dir or add --loop train_ch5")
        print(f"{recipe.name} / {variant} / seed {seed} (d2l.Trainer)", file=file)
        history, net = train_book_variant(recipe, variant, seed, ctx, options, dataset,
                                          batch_size, epochs, file=file,
                                          on_epoch_end=on_epoch_end)
        record = _record(variant, seed, history, net, ctx)
        return (record, net) if return_net else record
    seed_everything(seed)
    train_iter, test_iter = load_data(dataset, batch_size, options, seed)
    net = hybridize_network(build_net(recipe, variant, bn_impl=options.bn_impl),
                            options.hybridize)
    net.initialize(make_initializer(recipe.initializer_for(variant)), ctx=ctx)
    trainer = mx.gluon.Trainer(net.collect_params(), "sgd",
                               {"learning_rate": recipe.trainer_learning_rate(options.lr)})
    history, start_epoch, callbacks = [], 0, []
    if checkpoint is not None:
        history, start_epoch = checkpoint.restore(net, trainer, train_iter, ctx)
        callbacks.append(checkpoint.saver(net, trainer, train_iter, history))
    if on_epoch_end is not None:
        callbacks.append(on_epoch_end)

    def after_epoch(stats) -> None:
        for callback in callbacks:
            callback(stats)

    print(f"{recipe.name} / {variant} / seed {seed}", file=file)
    history = history + [s.as_dict() for s in train_ch5(
        net, train_iter, test_iter, batch_size, trainer, ctx, epochs, file=file,
        start_epoch=start_epoch, sync_every_batch=options.sync_every_batch,
        on_epoch_end=after_epoch, stop_requested=stop_requested)]
    record = _record(variant, seed, history, net, ctx)
    return (record, net) if return_net else record


def train_book_variant(recipe: Recipe, variant: str, seed: int, ctx, options: RunOptions,
                       dataset: str, batch_size: int, epochs: int, *,
                       file: Optional[TextIO] = None, on_epoch_end=None):
    """Train one variant with d2l 1.0's Trainer in numpy mode; return (history dicts, net).

    The book's call, ``d2l.Trainer(max_epochs, num_gpus=1).fit(model, FashionMNIST(...))``,
    with :mod:`gluon_bn.d2l_models` for the models and :class:`gluon_bn.FashionMNIST` for
    the data. ``num_gpus`` is 1 when `ctx` is a GPU, else 0 (d2l then trains on the CPU).
    """
    from .d2l_data import FashionMNIST
    from .d2l_models import BNLeNet, BNLeNetScratch, LeNet
    from .d2l_trainer import fit, numpy_mode

    if dataset != "fashion-mnist":
        raise ValueError(f"the d2l.Trainer loop trains on Fashion-MNIST (the book's data), "
                         f"not {dataset}; use --loop train_ch5")
    lr = options.lr if options.lr is not None else recipe.learning_rate
    num_gpus = int(any(c.device_type == "gpu" for c in as_context_list(ctx)))
    with numpy_mode():
        seed_everything(seed)  # initial weights (MXNet's RNG) and the loader's order (numpy's)
        model = {"plain": lambda: LeNet(lr=lr),
                 "scratch": lambda: BNLeNetScratch(lr=lr, impl=options.bn_impl),
                 "gluon": lambda: BNLeNet(lr=lr)}[variant]()
        compiled = hybridize_network(model.net, options.hybridize)
        if compiled is not model.net:
            if not isinstance(compiled, mx.gluon.nn.Sequential):  # one HybridSequential:
                wrapper = mx.gluon.nn.Sequential(prefix="")  # Block forbids changing the
                wrapper.add(compiled)                          # attribute's type
                compiled = wrapper
            model.net = compiled
        data = FashionMNIST(batch_size=batch_size, root=options.data_root,
                            limit=options.limit, val_limit=options.test_limit)
        history = fit(model, data, epochs, num_gpus=num_gpus, file=file,
                      on_epoch_end=on_epoch_end)
    return [h.as_dict() for h in history], model.net


def _record(variant: str, seed: int, history: list, net, ctx) -> dict:
    """Return one run's record: its history and the first BN layer's learned gamma and beta."""
    bn = find_bn(net)
    values = {}
    for name in ("gamma", "beta"):
        if bn is None:
            values[name] = None
            continue
        param = getattr(bn, name)
        device = param.list_ctx()[0] if _first(ctx) not in param.list_ctx() else _first(ctx)
        values[name] = param.data(device).asnumpy().ravel().tolist()
    return {"variant": variant, "seed": seed, "history": history,
            "first_bn_gamma": values["gamma"], "first_bn_beta": values["beta"]}


def _first(ctx):
    return ctx[0] if isinstance(ctx, (list, tuple)) else ctx


def reproduce(recipe_name: str, options: RunOptions, ctx, *, out_dir: Optional[Path] = None,
              file: Optional[TextIO] = None, checkpointer_factory=None,
              stop_requested=None) -> Tuple[dict, dict]:
    """Run every variant and seed of a recipe and write JSON, Markdown and PNG under `out_dir`.

    Parameters
    ----------
    recipe_name : str
        A name :func:`gluon_bn.recipes.get_recipe` knows (``NAME[:ALTERNATIVE]``).
    options : RunOptions
        What to run.
    ctx : Context or list of Context
        Where to run.
    out_dir : Path, optional
        Where to write; nothing is written when None.
    file : text stream, optional
        Where progress lines go (default stdout).
    checkpointer_factory : callable, optional
        ``(variant, seed) -> Checkpointer`` for per-epoch checkpoints.
    stop_requested : callable, optional
        Asked after every batch; True stops the run with KeyboardInterrupt.

    Returns
    -------
    (result, paths)
        The result dict (what the JSON holds) and the written paths.
    """
    file = file or sys.stdout
    options.check()
    recipe = get_recipe(recipe_name)
    dataset = resolve_dataset(recipe, options, file)
    result = make_result(recipe, options, ctx, dataset)
    paths = {}
    for seed in options.seeds:
        for variant in options.variants:
            checkpoint = checkpointer_factory(variant, seed) if checkpointer_factory else None
            result["runs"].append(run_variant(recipe, variant, seed, ctx, options, dataset,
                                              file=file, checkpoint=checkpoint,
                                              stop_requested=stop_requested))
            if out_dir is not None:  # rewrite after every run: nothing finished is lost
                paths = write_outputs(result, Path(out_dir), output_stem(recipe.name, options))
    return result, paths


def make_result(recipe: Recipe, options: RunOptions, ctx, dataset: str,
                runs: Sequence[dict] = ()) -> dict:
    """Return a reproduction's result (what its JSON holds), with the options' defaults resolved.

    Parameters
    ----------
    recipe : Recipe
        The document.
    options : RunOptions
        What was run; fields left to the document are filled in from `recipe`.
    ctx : Context or list of Context
        Where it ran.
    dataset : str
        "fashion-mnist" or "mnist".
    runs : sequence of dict
        Run records (:func:`run_variant`), if any yet.
    """
    config = asdict(options)
    config.update(loop=resolve_loop(recipe, options),
                  epochs=recipe.num_epochs if options.epochs is None else options.epochs,
                  lr=options.lr if options.lr is not None else recipe.learning_rate,
                  batch_size=options.batch_size or recipe.batch_size,
                  variants=list(options.variants), seeds=list(options.seeds))
    return {"recipe": recipe.name, "dataset": dataset, "config": config,
            "environment": environment(ctx), "recipe_data": asdict(recipe), "runs": list(runs)}


def output_stem(recipe_name: str, options: RunOptions) -> str:
    """Return the file stem of a run's outputs, naming what distinguishes it."""
    parts = [recipe_name.replace(":", "-")]
    if options.loop == "train_ch5" and get_recipe(recipe_name).loop != "train_ch5":
        parts.append("train_ch5")
    if options.pipeline != "d2l":
        parts.append(options.pipeline)
    if options.bn_impl != "faithful":
        parts.append(f"bn-{options.bn_impl}")
    if options.limit:
        parts.append(f"limit{options.limit}")
    return "_".join(parts)
