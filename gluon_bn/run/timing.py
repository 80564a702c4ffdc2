"""Timing a training path: a warm-up slice, then a share of an epoch timed and scaled to a
whole epoch (train_ch5), document 000's loop timed the same way (d2l.Trainer), and MXNet's
profiler over a few steps. What the benches and the compiled-speed study both time.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

from gluon_bn import data as gdata
from gluon_bn.models import check_hybridize_mode
from gluon_bn.options import RunOptions
from gluon_bn.recipes import TEST_SIZE, TRAIN_SIZE, get_recipe
from gluon_bn.run.reproduce import run_variant
from gluon_bn.run.training import prepare_network, seed_everything, train_ch5
from gluon_bn.runtime.loader import mx

BOOK_RECIPE = "d2l-1.0"  # the d2l.Trainer loop is document 000's: its network, batch and rate


@dataclass(frozen=True)
class BenchConfig:
    """One path to time: which layer, which implementation, how compiled, which pipeline."""

    variant: str  # "scratch", "gluon" or "plain"
    bn_impl: str = "faithful"
    hybridize: str = "none"  # see gluon_bn.models.hybridize_network
    pipeline: str = "d2l"

    def __post_init__(self):
        check_hybridize_mode(self.hybridize)

    @property
    def label(self) -> str:
        impl = f" {self.bn_impl}" if self.variant == "scratch" else ""
        compiled = {"none": "", "layers": " hybrid", "graph": " graph"}[self.hybridize]
        return f"{self.variant}{impl}{compiled} / {self.pipeline}"


def timed_examples(fraction: float, batch_size: int) -> int:
    """Return how many training examples a bench times: `fraction` of an epoch in whole batches.

    Parameters
    ----------
    fraction : float
        Share of the 60000 training images (0 < fraction <= 1).
    batch_size : int
        Examples per batch; at least one batch is timed.
    """
    return max(batch_size, int(math.ceil(TRAIN_SIZE * fraction / batch_size)) * batch_size)


def time_config(
    config: BenchConfig,
    recipe_name: str = "d2l-en",
    *,
    fraction: float = 1.0,
    warmup_batches: int = 5,
    ctx=None,
    seed: int = 0,
    repeat: int = 1,
    data_root: Optional[str] = None,
    batch_size: Optional[int] = None,
) -> Dict[str, float]:
    """Train one warm-up slice, then time `fraction` of an epoch with train_ch5; scale to an epoch.

    With `repeat` > 1 the timed slice runs that many times (training on) and the fastest
    counts: on a shared machine the minimum is the least disturbed measurement.

    Parameters
    ----------
    config : BenchConfig
        The path.
    recipe_name : str
        Whose network, batch size and learning rate.
    fraction : float
        Share of the 60000 training images timed (0 < fraction <= 1).
    warmup_batches : int
        Batches run before timing (graph building, memory pools).
    ctx : Context, optional
        Default CPU.
    seed : int
        Seeds the weights and the shuffling.
    repeat : int
        Timed runs; the fastest is reported, all are returned.
    data_root : str, optional
        Explicit Fashion-MNIST directory.
    batch_size : int, optional
        Examples per batch instead of the recipe's (the learning rate stays the recipe's).

    Returns
    -------
    dict
        ``seconds_per_epoch``, ``examples_per_sec``, ``timed_examples``, ``timed_seconds``
        (of the fastest run) and ``all_seconds_per_epoch``.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise ValueError(f"repeat must be a positive int, got {repeat!r}")
    net, trainer, batch = prepare_bench(
        config, recipe_name, seed=seed, ctx=ctx, batch_size=batch_size
    )
    timed = timed_examples(fraction, batch)
    seconds = [
        train_slice(
            net,
            trainer,
            slice_data(
                config, recipe_name, limit=limit, seed=seed, data_root=data_root, batch_size=batch
            ),
            batch,
            ctx,
        )
        for limit in [warmup_batches * batch] + [timed] * repeat
    ]
    best = min(seconds[1:])
    n = min(timed, TRAIN_SIZE)
    return {
        "seconds_per_epoch": best * TRAIN_SIZE / n,
        "examples_per_sec": n / best,
        "timed_examples": n,
        "timed_seconds": best,
        "all_seconds_per_epoch": [s * TRAIN_SIZE / n for s in seconds[1:]],
    }


def time_book_loop(
    variant: str,
    bn_impl: str = "faithful",
    *,
    train_examples: int,
    epochs: int = 2,
    seed: int = 0,
    ctx=None,
    data_root: Optional[str] = None,
) -> Dict[str, float]:
    """Time document 000's loop (d2l.Trainer on d2l 1.0's data module); scale to an epoch.

    The network, batch size (128) and rate are :data:`BOOK_RECIPE`'s, as the book trains
    them. The loop runs ``max(2, epochs)`` epochs on the first `train_examples` images,
    validating on a sixth as many (Fashion-MNIST's test/train ratio); the first epoch is the
    warm-up and the last is timed. A d2l.Trainer epoch includes its validation pass, so the
    time scaled to 60000 training images also stands for 10000 validation images.

    Parameters
    ----------
    variant : {"scratch", "gluon", "plain"}
        Which of the book's networks.
    bn_impl : {"faithful", "fast", "native"}
        The scratch layer's implementation (the document's is "faithful").
    train_examples : int
        Training images per epoch, 1 to 60000.
    epochs : int
        Epochs to run; at least 2 are.
    seed : int
        Seeds the weights and the loader's order.
    ctx : Context, optional
        Default CPU.
    data_root : str, optional
        Explicit Fashion-MNIST directory.

    Returns
    -------
    dict
        ``seconds_per_epoch`` (60000 images), ``examples_per_sec`` and ``timed_examples``.
    """
    if not 1 <= train_examples <= TRAIN_SIZE:
        raise ValueError(f"train_examples must be 1 to {TRAIN_SIZE}, got {train_examples!r}")
    options = RunOptions(
        variants=(variant,),
        seeds=(seed,),
        epochs=max(2, epochs),
        bn_impl=bn_impl,
        loop="d2l.Trainer",
        pipeline="d2l",
        dataset="fashion-mnist",
        data_root=data_root,
        limit=train_examples,
        test_limit=max(1, train_examples * TEST_SIZE // TRAIN_SIZE),
    )
    run = options.resolve(get_recipe(BOOK_RECIPE), dataset="fashion-mnist")
    record = run_variant(run, variant, seed, ctx or mx.cpu(), file=io.StringIO(), progress=False)
    seconds = record.history[-1].seconds  # the last epoch: training and validation
    return {
        "seconds_per_epoch": seconds * TRAIN_SIZE / train_examples,
        "examples_per_sec": train_examples / seconds,
        "timed_examples": train_examples,
    }


def prepare_bench(
    config: BenchConfig,
    recipe_name: str = "d2l-en",
    *,
    seed: int = 0,
    ctx=None,
    batch_size: Optional[int] = None,
) -> Tuple[mx.gluon.Block, mx.gluon.Trainer, int]:
    """Build, seed and initialise the recipe's network for `config`; return it, its trainer, the batch.

    Parameters
    ----------
    config : BenchConfig
        The path (its variant, BN implementation and compiled form).
    recipe_name : str
        Whose network, initialiser and learning rate.
    seed : int
        Seeds the weights.
    ctx : Context, optional
        Default CPU.
    batch_size : int, optional
        Instead of the recipe's.
    """
    recipe = get_recipe(recipe_name)
    seed_everything(seed)
    net, trainer = prepare_network(
        recipe, config.variant, bn_impl=config.bn_impl, hybridize=config.hybridize, ctx=ctx
    )
    return net, trainer, batch_size or recipe.batch_size


def slice_data(
    config: BenchConfig,
    recipe_name: str = "d2l-en",
    *,
    limit: int,
    seed: int = 0,
    data_root: Optional[str] = None,
    batch_size: Optional[int] = None,
) -> tuple:
    """Return the (train, test) iterators of one slice: the first `limit` training images on
    `config`'s pipeline in the seed's order, and one test batch.

    Parameters
    ----------
    config : BenchConfig
        Whose pipeline feeds the batches.
    recipe_name : str
        Whose batch size (unless `batch_size`).
    limit : int
        Training images of this slice.
    seed, data_root
        As for :func:`time_config`.
    batch_size : int, optional
        Instead of the recipe's.
    """
    batch = batch_size or get_recipe(recipe_name).batch_size
    return gdata.load_data_fashion_mnist(
        batch, root=data_root, pipeline=config.pipeline, seed=seed, limit=limit, test_limit=batch
    )


def train_slice(
    net: mx.gluon.Block, trainer: mx.gluon.Trainer, data: tuple, batch_size: int, ctx=None
) -> float:
    """Train one train_ch5 epoch over `data` (:func:`slice_data`); return its training seconds
    (sums read back once; the test batch evaluated after, not timed).

    Parameters
    ----------
    net, trainer
        From :func:`prepare_bench`; training goes on from where they are.
    data : (train_iter, test_iter)
        From :func:`slice_data`, loaded before, so that no file reading is timed.
    batch_size : int
        What ``trainer.step`` divides the summed gradient by.
    ctx : Context, optional
        Default CPU.
    """
    train_iter, test_iter = data
    stats = train_ch5(
        net,
        train_iter,
        test_iter,
        batch_size,
        trainer,
        ctx or mx.cpu(),
        1,
        file=io.StringIO(),
        sync_every_batch=False,
        progress=False,
    )[0]
    return stats.train_seconds


def operator_times(run: Callable[[], None]) -> Tuple[float, Dict[str, Tuple[int, float]]]:
    """Call `run` under MXNet's profiler; return its wall ms and each operator's (calls, ms).

    Parameters
    ----------
    run : callable
        The work to profile; it must leave nothing pending (it is followed by
        ``mx.nd.waitall()`` before the clock stops).
    """
    path = os.path.join(tempfile.gettempdir(), f"gluon-bn-profile-{os.getpid()}.json")
    mx.profiler.set_config(
        profile_imperative=True, profile_symbolic=True, aggregate_stats=True, filename=path
    )
    mx.nd.waitall()
    mx.profiler.set_state("run")
    try:
        start = time.perf_counter()
        run()
        mx.nd.waitall()
        wall = (time.perf_counter() - start) * 1e3
    finally:
        mx.profiler.set_state("stop")
    stats = json.loads(mx.profiler.dumps(reset=True, format="json"))
    # {"Time": {domain: {name: {"Count": calls, "Total": ms, ...}}}}: real operators only.
    ops = {
        name: (int(entry["Count"]), float(entry["Total"]))
        for name, entry in stats["Time"].get("operator", {}).items()
    }
    return wall, ops
