"""The notebooks' network steps: shapes and sizes, training with live curves, what BN learned.

Part of :mod:`gluon_bn.walkthrough`, which re-exports every name here.
"""

from __future__ import annotations

import io
from dataclasses import replace
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from gluon_bn.models import build_net, count_parameters, find_bn, make_initializer
from gluon_bn.options import RunOptions
from gluon_bn.recipes import VARIANTS, Recipe
from gluon_bn.records import VariantRun
from gluon_bn.run.reproduce import run_variant
from gluon_bn.runtime.loader import mx

IMAGE_BATCH = (2, 1, 28, 28)  # two Fashion-MNIST-sized images


def _arrays(numpy_api: Optional[bool]):
    """Return ``mx.np`` or ``mx.nd``: as asked, else the kind MXNet's current mode uses."""
    numpy_api = mx.util.is_np_array() if numpy_api is None else numpy_api
    return mx.np if numpy_api else mx.nd


def _uniform(xp, shape: Tuple[int, ...]):
    """Uniform [0, 1) draws of `shape` from `xp` (``mx.np`` or ``mx.nd``)."""
    return xp.random.uniform(size=shape) if xp is mx.np else xp.random.uniform(shape=shape)


# ---------------------------------------------------------------- the network
def show_layer_shapes(
    net: mx.gluon.Block,
    input_shape: Sequence[int] = IMAGE_BATCH,
    *,
    numpy_api: Optional[bool] = None,
) -> List[Tuple[int, ...]]:
    """Pass a random batch through `net`'s blocks one by one, printing each block's output shape.

    Parameters
    ----------
    net : mx.gluon.Block
        An initialised sequential network (its children run in order).
    input_shape : sequence of int
        The batch's shape (default: two Fashion-MNIST-sized images).
    numpy_api : bool, optional
        As for :func:`demo_function`.

    Returns
    -------
    list of tuple
        The output shape after each block.
    """
    out, shapes = _uniform(_arrays(numpy_api), tuple(input_shape)), []
    for block in net:
        out = block(out)
        shapes.append(tuple(out.shape))
        print(f"{type(block).__name__:>10}  {out.shape}")
    return shapes


def show_parameter_counts(
    recipe: Recipe,
    variants: Iterable[str] = VARIANTS,
    input_shape: Sequence[int] = IMAGE_BATCH,
    *,
    numpy_api: Optional[bool] = None,
) -> Dict[str, int]:
    """Build each variant of the recipe's network and print its number of trainable parameters.

    Parameters
    ----------
    recipe : Recipe
        The document.
    variants : iterable of str
        Which networks (default: scratch, gluon, plain).
    input_shape : sequence of int
        A batch shape to resolve the deferred parameter shapes with.
    numpy_api : bool, optional
        As for :func:`demo_function`.

    Returns
    -------
    dict
        variant -> trainable parameters.
    """
    xp, counts = _arrays(numpy_api), {}
    for variant in variants:
        net = build_net(recipe, variant)
        net.initialize(make_initializer(recipe.initializer_for(variant)))
        net(xp.zeros(tuple(input_shape)))  # resolves the deferred shapes
        counts[variant] = count_parameters(net)
        print(f"{variant:>8}: {counts[variant]:,} trainable parameters")
    return counts


# ---------------------------------------------------------------- training and what it learned
def train_live(
    variant: str,
    *,
    recipe: Recipe,
    options: RunOptions,
    seed: int,
    ctx,
    dataset: Optional[str] = None,
    bn_impl: Optional[str] = None,
) -> Tuple[VariantRun, mx.gluon.Block]:
    """Train one variant with :func:`gluon_bn.run.reproduce.run_variant`, drawing live curves.

    Each epoch's statistics feed d2l's ``Animator`` (loss, train and test accuracy), so the
    curves grow while the network trains; the loop's printed lines follow at the end, so
    that the figure redraws in place.

    Parameters
    ----------
    variant : {"scratch", "gluon", "plain"}
        Which network.
    recipe : Recipe
        The document (or one of its alternatives).
    options : RunOptions
        The notebook's options (epochs, limits, loop, ...).
    seed : int
        The run's seed.
    ctx : Context or list of Context
        Where to train.
    dataset : str, optional
        What to train on (default: as `options` resolve it).
    bn_impl : {"faithful", "fast"}, optional
        The scratch layer's implementation (default: the options' own).

    Returns
    -------
    record : VariantRun
        The run's record, as :func:`gluon_bn.run.reproduce.record_runs` takes it.
    net : mx.gluon.Block
        The trained network.
    """
    from d2l import mxnet as d2l

    run = replace(options, bn_impl=bn_impl or options.bn_impl).resolve(recipe, dataset=dataset)
    animator = d2l.Animator(
        xlabel="epoch",
        xlim=[1, max(run.epochs, 2)],
        legend=[f"{variant} train loss", "train acc", "test acc"],
    )

    def on_epoch_end(stats) -> None:
        animator.add(stats.epoch, (stats.loss, stats.train_acc, stats.test_acc))

    log = io.StringIO()
    record, net = run_variant(
        run, variant, seed, ctx, file=log, on_epoch_end=on_epoch_end, return_net=True
    )
    print(log.getvalue().rstrip())
    return record, net


def show_first_bn(
    nets: Mapping[str, mx.gluon.Block], recipe: Optional[Recipe] = None
) -> Dict[str, Optional[Tuple[np.ndarray, np.ndarray]]]:
    """Print the learned ``gamma`` and ``beta`` of each network's first normalization layer.

    Parameters
    ----------
    nets : mapping of str to mx.gluon.Block
        Label -> trained network (or a block holding it, such as a ``d2l.Classifier``).
    recipe : Recipe, optional
        Where the document printed its own, they follow (rounded to 3 digits like ours).

    Returns
    -------
    dict
        Label -> (gamma, beta) as flat NumPy arrays, or None for a network without one.
    """
    learned = {}
    for label, net in nets.items():
        bn = find_bn(net)
        if bn is None:
            print(f"{label}: no batch normalization")
            learned[label] = None
            continue
        gamma, beta = (p.list_data()[0].asnumpy().ravel() for p in (bn.gamma, bn.beta))
        print(f"{label:>8} gamma:", gamma.round(3))
        print(f"{label:>8} beta: ", beta.round(3))
        learned[label] = (gamma, beta)
    if recipe is not None and recipe.printed_gamma_beta:
        print("document gamma:", np.round(recipe.printed_gamma_beta[0], 3))
        print("document beta: ", np.round(recipe.printed_gamma_beta[1], 3))
    return learned
