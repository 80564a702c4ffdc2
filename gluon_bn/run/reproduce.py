"""Run a recipe: resolve its options, train each variant and seed with its loop, record the outcome."""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence, TextIO, Tuple

from gluon_bn import data as gdata
from gluon_bn.device import as_context_list
from gluon_bn.models import find_bn
from gluon_bn.options import ResolvedRun, RunOptions
from gluon_bn.recipes import Recipe, get_recipe
from gluon_bn.records import Reproduction, VariantRun, epoch_from_dict
from gluon_bn.report import environment, write_outputs
from gluon_bn.run.training import prepare_network, seed_everything, train_ch5


def resolve_dataset(
    recipe: Recipe, options: RunOptions, file: TextIO, *, download: bool = True
) -> str:
    """Return the data set a run trains on; for "auto", MNIST where its files verify.

    A recipe written for MNIST (document 004) trains on MNIST when its four files are on the
    search path (``--data-root``, ``$GLUON_BN_DATA``, ``$MXNET_HOME/datasets/mnist``,
    ``/usr/share/datasets/mnist``) or can be downloaded, and pass every check of
    :mod:`gluon_bn.data.idx`. Otherwise it falls back to Fashion-MNIST and prints a note
    saying why; its record and reports then say "run on Fashion-MNIST as a stand-in for
    MNIST" (:meth:`gluon_bn.recipes.Recipe.describe_dataset`).

    Parameters
    ----------
    recipe : Recipe
        The document.
    options : RunOptions
        Its ``dataset`` ("auto" or a name) and ``data_root``.
    file : text stream
        Where the note goes.
    download : bool
        Whether MNIST may be downloaded (into MXNet's data directory) when not found.

    Returns
    -------
    str
        "mnist" or "fashion-mnist".

    Raises
    ------
    DataError
        When MNIST's files are found but fail a check and are not another known set's: a
        corrupt MNIST is reported, not silently replaced.
    """
    if options.dataset != "auto":
        return options.dataset
    if recipe.dataset != "mnist":
        return recipe.dataset
    spec = gdata.spec_for("mnist")
    stand_in = (
        f"{recipe.name} runs on Fashion-MNIST as a stand-in for MNIST (its record and "
        f"reports say so)"
    )
    try:
        directory = gdata.find_data_root(spec, options.data_root, download=download)
    except gdata.DataError:
        env_dir = os.environ.get(gdata.ENV_VAR)
        if options.data_root or env_dir:  # an explicit directory: nothing else was tried
            missing = (
                f"not in --data-root {options.data_root}"
                if options.data_root
                else f"not in ${gdata.ENV_VAR} ({env_dir})"
            )
        else:
            missing = f"not in {', '.join(str(d) for d in gdata.default_dirs(spec))} and " + (
                "could not be downloaded" if download else "were not downloaded"
            )
        print(
            f"note: {recipe.name} trained on MNIST digits, which are {missing}: {stand_in}. "
            f"To train on MNIST, pass --data-root DIR holding its four files.",
            file=file,
        )
        return "fashion-mnist"
    try:
        gdata.verify_files(spec, directory)
    except gdata.DataError:
        found = gdata.identify(directory)
        if found in (None, "mnist"):
            raise
        print(
            f"note: {directory} holds {gdata.spec_for(found).name}, not MNIST: {stand_in}.",
            file=file,
        )
        return found
    return "mnist"


def load_data(run: ResolvedRun, seed: int):
    """Return (train_iter, test_iter) of the run's data set for one seed (train_ch5's pipelines)."""
    return gdata.load_data(
        gdata.spec_for(run.dataset),
        run.batch_size,
        root=run.data_root,
        pipeline=run.pipeline,
        seed=seed,
        limit=run.limit,
        test_limit=run.test_limit,
    )


def run_variant(
    run: ResolvedRun,
    variant: str,
    seed: int,
    ctx,
    *,
    file: Optional[TextIO] = None,
    checkpoint=None,
    on_epoch_end=None,
    return_net: bool = False,
    stop_requested=None,
    progress: bool = True,
    val_acc: str = "board",
):
    """Train one variant of a run with one seed; return its record (history and first BN).

    Parameters
    ----------
    run : ResolvedRun
        The recipe and every setting (:meth:`gluon_bn.options.RunOptions.resolve`).
    variant : {"scratch", "gluon", "plain"}
        Which network.
    seed : int
        Seeds Python, NumPy and MXNet (initial weights) and the training-set shuffling.
    ctx : Context or list of Context
        Where to train.
    file : text stream, optional
        Where the loop prints.
    checkpoint : gluon_bn.run.checkpoint.Checkpointer, optional
        Saves after every epoch and restores a previous run's state (train_ch5 loop).
    on_epoch_end : callable, optional
        Called with each epoch's statistics (after the checkpoint, if any): live curves.
    return_net : bool
        Return ``(record, trained_net)`` instead of the record alone.
    stop_requested : callable, optional
        Passed to :func:`gluon_bn.run.training.train_ch5`.
    progress : bool
        train_ch5's progress bar on stderr (shown only on a terminal).
    val_acc : {"board", "counted"}
        The d2l.Trainer loop's validation accuracy: the book's mean of per-batch accuracies
        (the default, what ``gluon-bn reproduce`` records), or correct / examples
        (:class:`gluon_bn.run.book.RecordingTrainer`; the studies). train_ch5 always counts.
    """
    file = file or sys.stdout
    recipe = run.recipe
    if run.loop == "d2l.Trainer":
        if checkpoint is not None:
            raise ValueError(
                "checkpoints are kept by the train_ch5 loop only; drop "
                "--checkpoint-dir or add --loop train_ch5"
            )
        print(f"{recipe.name} / {variant} / seed {seed} (d2l.Trainer)", file=file)
        from gluon_bn.run.book import train_book_variant  # d2l 1.0 loads here

        history, net = train_book_variant(
            run, variant, seed, ctx, file=file, on_epoch_end=on_epoch_end, val_acc=val_acc
        )
        record = _record(variant, seed, history, net)
        return (record, net) if return_net else record
    seed_everything(seed)
    train_iter, test_iter = load_data(run, seed)
    net, trainer = prepare_network(
        recipe,
        variant,
        bn_impl=run.bn_impl,
        hybridize=run.hybridize,
        ctx=ctx,
        learning_rate=run.trainer_learning_rate(),
    )
    history, start_epoch, callbacks = [], 0, []
    if checkpoint is not None:  # the checkpoint keeps the finished epochs' history as data
        history, start_epoch = checkpoint.restore(net, trainer, train_iter, ctx)
        callbacks.append(checkpoint.saver(net, trainer, train_iter, history))
    if on_epoch_end is not None:
        callbacks.append(on_epoch_end)

    def after_epoch(stats) -> None:
        for callback in callbacks:
            callback(stats)

    print(f"{recipe.name} / {variant} / seed {seed}", file=file)
    history = [epoch_from_dict(h) for h in history] + train_ch5(
        net,
        train_iter,
        test_iter,
        run.batch_size,
        trainer,
        ctx,
        run.epochs,
        file=file,
        start_epoch=start_epoch,
        sync_every_batch=run.sync_every_batch,
        on_epoch_end=after_epoch,
        stop_requested=stop_requested,
        progress=progress,
    )
    record = _record(variant, seed, history, net)
    return (record, net) if return_net else record


def _record(variant: str, seed: int, history, net) -> VariantRun:
    """Return one run's record: its history and the first BN layer's learned gamma and beta."""
    bn = find_bn(net)

    def learned(param):
        # the copy on the first device the parameter lives on: ctx[0] for train_ch5 (the
        # order of initialisation), wherever d2l.Trainer moved the model for the book's loop
        return tuple(param.data(param.list_ctx()[0]).asnumpy().ravel().tolist())

    if bn is None:
        return VariantRun(variant, seed, tuple(history))
    return VariantRun(variant, seed, tuple(history), learned(bn.gamma), learned(bn.beta))


def resolve(recipe_name: str, options: RunOptions, *, file: Optional[TextIO] = None) -> ResolvedRun:
    """Return the run `options` describe for the recipe called `recipe_name`, defaults decided.

    The one place a run's defaults are settled, for the command line and the library alike:
    :meth:`RunOptions.resolve`, with the data set looked up (:func:`resolve_dataset`).
    """
    recipe = get_recipe(recipe_name)
    options.check()
    return options.resolve(recipe, dataset=resolve_dataset(recipe, options, file or sys.stdout))


def build_native(run: ResolvedRun, ctx) -> None:
    """Build the native operator now when `run` trains it: no compiler is an error before the
    first run, not during it (ValueError for a GPU, where it does not run)."""
    if run.bn_impl == "native" and "scratch" in run.variants:
        if any(c.device_type != "cpu" for c in as_context_list(ctx)):
            raise ValueError(
                "--bn-impl native runs on the CPU only; add --device cpu, or use "
                "--bn-impl fast on a GPU"
            )
        from gluon_bn.bn.native import load

        load()


def reproduce(
    recipe_name: str,
    options: RunOptions,
    ctx,
    *,
    out_dir: Optional[Path] = None,
    file: Optional[TextIO] = None,
    checkpointer_factory=None,
    stop_requested=None,
    progress: bool = True,
    on_epoch_end=None,
    guard=None,
) -> Tuple[Reproduction, dict]:
    """Run every variant and seed of a recipe and write JSON, Markdown and PNG under `out_dir`.

    Parameters
    ----------
    recipe_name : str
        A name :func:`gluon_bn.recipes.get_recipe` knows (``NAME[:ALTERNATIVE]``).
    options : RunOptions
        What to run, resolved here (:func:`resolve`).
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
    progress : bool
        Progress bars on stderr (on a terminal only); ``--quiet`` turns them off.
    on_epoch_end : callable, optional
        Called with every epoch's record (``EpochStats`` or ``BookEpoch``), every run.
    guard : gluon_bn.runtime.watch.LoadWatch, optional
        Watches the step times of every train_ch5 run against this machine's idle ones and
        drops the process to one OpenMP thread when they collapse; its drops are recorded as
        ``thread_changes`` in the record's environment (the runs after a drop ran with one
        thread).

    Returns
    -------
    (reproduction, paths)
        The typed record (:class:`gluon_bn.records.Reproduction`) and the written paths.
    """
    file = file or sys.stdout
    run = resolve(recipe_name, options, file=file)
    build_native(run, ctx)
    result = make_result(run, ctx)
    paths = {}
    asked, ended = stop_requested, on_epoch_end
    if guard is not None:

        def asked() -> bool:
            note = guard.after_batch()
            if note:
                print(note, file=file, flush=True)
            return bool(stop_requested is not None and stop_requested())

        def ended(stats) -> None:
            note = guard.epoch_ended(stats)
            if note:
                print(note, file=file, flush=True)
            if on_epoch_end is not None:
                on_epoch_end(stats)

    for seed in run.seeds:
        for variant in run.variants:
            checkpoint = checkpointer_factory(variant, seed) if checkpointer_factory else None
            if guard is not None:
                guard.begin(
                    {"variant": variant, "seed": seed},
                    {
                        "recipe": run.recipe.name,
                        "variant": variant,
                        "bn_impl": run.bn_impl,
                        "pipeline": run.pipeline,
                        "hybridize": run.hybridize,
                        "batch_size": run.batch_size,
                    },
                )
            result.runs.append(
                run_variant(
                    run,
                    variant,
                    seed,
                    ctx,
                    file=file,
                    checkpoint=checkpoint,
                    progress=progress,
                    stop_requested=asked,
                    on_epoch_end=ended,
                )
            )
            if guard is not None and guard.events:
                result.environment["thread_changes"] = list(guard.events)
            if out_dir is not None:  # rewrite after every run: nothing finished is lost
                paths = write_outputs(result, Path(out_dir), output_stem(run))
    return result, paths


def make_result(run: ResolvedRun, ctx, runs: Sequence[VariantRun] = ()) -> Reproduction:
    """Return the record of a resolved run (its runs so far), with this machine's environment.

    Parameters
    ----------
    run : ResolvedRun
        What was run.
    ctx : Context or list of Context
        Where it ran.
    runs : sequence of VariantRun
        Run records (:func:`run_variant`), if any yet.
    """
    return Reproduction(run, environment(ctx), list(runs))


def record_runs(
    recipe: Recipe,
    options: RunOptions,
    ctx,
    runs: Sequence[VariantRun],
    *,
    dataset: Optional[str] = None,
) -> Reproduction:
    """Return the record of runs trained one by one (a notebook's), as :func:`reproduce` would.

    Parameters
    ----------
    recipe : Recipe
        The document (or one of its alternatives).
    options : RunOptions
        The options the runs were trained with; their variants are taken from `runs`.
    ctx : Context or list of Context
        Where they ran.
    runs : sequence of VariantRun
        What :func:`run_variant` returned, in order.
    dataset : str, optional
        What they trained on (default: as `options` resolve it).
    """
    runs = list(runs)
    variants = tuple(dict.fromkeys(r.variant for r in runs))
    seeds = tuple(dict.fromkeys(r.seed for r in runs))
    run = replace(options, variants=variants, seeds=seeds).resolve(recipe, dataset=dataset)
    return make_result(run, ctx, runs)


def output_stem(run: ResolvedRun) -> str:
    """Return the file stem of a run's outputs, naming what distinguishes it."""
    parts = [run.recipe.name.replace(":", "-")]
    if run.loop != run.recipe.loop and run.pipeline == "d2l":
        parts.append(run.loop)
    if run.pipeline != "d2l":
        parts.append(run.pipeline)
    if run.bn_impl != "faithful":
        parts.append(f"bn-{run.bn_impl}")
    if run.limit:
        parts.append(f"limit{run.limit}")
    return "_".join(parts)
