"""What the companion notebooks show, as functions each notebook calls in one line.

Each step the notebooks share (the conventions, the function on a small batch in training
mode, in prediction mode and in 4-D, the layer and Gluon's ``nn.BatchNorm`` against the
function, the network's shapes and sizes, training with live curves, the first normalization
layer's ``gamma`` and ``beta``, the report) is one function here. The demonstrations print
what they show and assert it, so a notebook that runs is one whose claims held. Their arrays
are of the kind MXNet's current mode uses (``mx.np`` after ``npx.set_np()``, else ``mx.nd``)
unless `numpy_api` says otherwise. IPython and d2l load only in the functions that use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple, Union

import numpy as np

from gluon_bn.bn.functional import batch_norm
from gluon_bn.bn.layer import BatchNorm
from gluon_bn.recipes import Conventions, Recipe
from gluon_bn.records import Reproduction
from gluon_bn.report.markdown import markdown_report
from gluon_bn.run.training import seed_everything
from gluon_bn.runtime.loader import mx

# The network steps live in .nets; re-exported so notebooks import one module.
from gluon_bn.walkthrough.nets import (  # noqa: F401
    IMAGE_BATCH,
    _arrays,
    show_first_bn,
    show_layer_shapes,
    show_parameter_counts,
    train_live,
)

__all__ = [
    "FunctionDemo",
    "batch_norm_options",
    "batch_weight",
    "check_layer",
    "compare_with_gluon",
    "demo_function",
    "demo_per_channel",
    "demo_prediction",
    "show_assumptions",
    "show_conventions",
    "show_first_bn",
    "show_layer_shapes",
    "show_parameter_counts",
    "show_report",
    "train_live",
]

Array = Union[mx.nd.NDArray, mx.np.ndarray]  # either of MXNet's two array APIs
_SMOKE_NOTE = (
    "*Smoke run: a few hundred images for one epoch. The table shows that the "
    "pipeline works, not {what}.*"
)


def _display_markdown(text: str) -> None:
    from IPython.display import Markdown, display

    display(Markdown(text))


def _normal(xp, loc: float, scale: float, shape: Tuple[int, ...]):
    if xp is mx.np:
        return xp.random.normal(loc, scale, size=shape)
    return xp.random.normal(loc, scale, shape=shape)


# ---------------------------------------------------------------- the recipe and its conventions
def show_assumptions(recipe: Recipe) -> None:
    """Display, as a Markdown list, what the recipe had to decide that the document leaves open.

    Parameters
    ----------
    recipe : Recipe
        The document.
    """
    _display_markdown(
        "**What the recipe had to decide:**\n\n"
        + "\n".join(f"- {line}" for line in recipe.assumptions)
    )


def batch_norm_options(conv: Conventions) -> Dict[str, object]:
    """Return the keywords of :func:`gluon_bn.batch_norm` for these conventions.

    The two starting-value conventions (``moving_var_init``, ``moving_init``) belong to the
    layer, not to one call, so they are left out.

    Parameters
    ----------
    conv : Conventions
        A document's conventions.
    """
    return dict(
        eps=conv.eps,
        momentum=conv.momentum,
        momentum_on=conv.momentum_on,
        normalize_by=conv.normalize_by,
        update_in_prediction=conv.update_in_prediction,
    )


def batch_weight(conv: Conventions) -> float:
    """Return the weight a training step gives the batch statistics in the moving averages.

    Parameters
    ----------
    conv : Conventions
        A document's conventions: its momentum weighs the batch or the moving value.
    """
    return conv.momentum if conv.momentum_on == "batch" else 1.0 - conv.momentum


def show_conventions(conv: Conventions) -> Dict[str, object]:
    """Print the conventions and the batch's weight in the moving averages; return call keywords.

    Parameters
    ----------
    conv : Conventions
        A document's conventions.

    Returns
    -------
    dict
        :func:`batch_norm_options` of `conv`, to call :func:`gluon_bn.batch_norm` with.
    """
    print(conv)
    print(
        f"each training step gives the batch statistics a weight of {batch_weight(conv):g} "
        f"in the moving averages"
    )
    return batch_norm_options(conv)


# ---------------------------------------------------------------- the function
@dataclass
class FunctionDemo:
    """One training-mode call of :func:`gluon_bn.batch_norm` on a small batch: inputs and outputs.

    Attributes
    ----------
    conv : Conventions
        The conventions of the call.
    X, gamma, beta, moving_mean, moving_var
        The batch (4 examples, 3 features), the scale and shift, the moving statistics before.
    Y, new_mean, new_var
        The normalised batch and the moving statistics after the step.
    """

    conv: Conventions
    X: Array
    gamma: Array
    beta: Array
    moving_mean: Array
    moving_var: Array
    Y: Array
    new_mean: Array
    new_var: Array

    @property
    def bn_kwargs(self) -> Dict[str, object]:
        """The keywords the call took (:func:`batch_norm_options`)."""
        return batch_norm_options(self.conv)


def demo_function(conv: Conventions, *, numpy_api: Optional[bool] = None) -> FunctionDemo:
    """Normalise a 4x3 batch in training mode; print and check the output and the moving statistics.

    The output's per-feature mean must be 0 and its variance 1 (less what `eps` takes off);
    the moving statistics are recomputed with NumPy from the convention alone and must agree.

    Parameters
    ----------
    conv : Conventions
        The document's conventions (``moving_init="fixed"``: the moving statistics start at
        0 and at ``conv.moving_var_init``).
    numpy_api : bool, optional
        Build ``mx.np`` arrays (True) or ``mx.nd`` ones (False); default: MXNet's current mode.
        With ``mx.np`` arrays the array type is printed first.

    Returns
    -------
    FunctionDemo
        What went in and what came out, for :func:`demo_prediction`, :func:`check_layer`
        and :func:`compare_with_gluon`.
    """
    xp = _arrays(numpy_api)
    X = xp.array([[1, 8, 2], [3, 6, 2], [5, 4, 8], [7, 2, 4]])  # 4 examples, 3 features
    gamma, beta = xp.ones((1, 3)), xp.zeros((1, 3))
    moving_mean, moving_var = xp.zeros((1, 3)), xp.full((1, 3), conv.moving_var_init)
    with mx.autograd.record():  # training mode: the batch's own statistics normalise it
        Y, new_mean, new_var = batch_norm(
            X, gamma, beta, moving_mean, moving_var, **batch_norm_options(conv)
        )
    if xp is mx.np:
        print("Y is an", type(Y).__module__ + "." + type(Y).__name__)
    print("Y =", Y)
    mean = Y.mean(axis=0).asnumpy()
    variance = ((Y - Y.mean(axis=0)) ** 2).mean(axis=0).asnumpy()
    print("per-feature mean of Y:    ", mean.round(6))
    print("per-feature variance of Y:", variance.round(4))
    np.testing.assert_allclose(mean, 0, atol=1e-5)
    np.testing.assert_allclose(variance, 1, atol=1e-3)

    # The moving statistics, recomputed by hand with numpy from the stated convention.
    x, w = X.asnumpy(), batch_weight(conv)
    np.testing.assert_allclose(
        new_mean.asnumpy(), (1 - w) * moving_mean.asnumpy() + w * x.mean(axis=0), rtol=1e-5
    )
    np.testing.assert_allclose(
        new_var.asnumpy(), (1 - w) * moving_var.asnumpy() + w * x.var(axis=0), rtol=1e-5
    )
    print("moving mean after one step:", new_mean.asnumpy())
    print("moving var after one step: ", new_var.asnumpy())
    return FunctionDemo(conv, X, gamma, beta, moving_mean, moving_var, Y, new_mean, new_var)


def demo_prediction(demo: FunctionDemo) -> Array:
    """Call the function on the same batch in prediction mode, with the updated statistics.

    Outside ``autograd.record()`` the batch is normalised with the moving statistics it is
    given, which come back unchanged (updated instead with ``update_in_prediction=True``).

    Parameters
    ----------
    demo : FunctionDemo
        What :func:`demo_function` returned.

    Returns
    -------
    Y_pred : array
        The batch normalised with the moving statistics.
    """
    Y_pred, kept_mean, kept_var = batch_norm(
        demo.X, demo.gamma, demo.beta, demo.new_mean, demo.new_var, **demo.bn_kwargs
    )
    print("Y in prediction mode =", Y_pred)
    unchanged = kept_mean is demo.new_mean and kept_var is demo.new_var
    print("moving statistics unchanged:", unchanged)
    assert unchanged != demo.conv.update_in_prediction
    mean, var = demo.new_mean.asnumpy(), demo.new_var.asnumpy()
    expected = (demo.X.asnumpy() - mean) / np.sqrt(var + demo.conv.eps)  # gamma 1, beta 0
    if demo.conv.normalize_by == "sqrt_var_eps":
        np.testing.assert_allclose(Y_pred.asnumpy(), expected, rtol=1e-5, atol=1e-5)
    return Y_pred


def demo_per_channel(
    conv: Conventions, *, numpy_api: Optional[bool] = None, seed: int = 1
) -> Array:
    """Normalise a random 4-D batch (4, 2, 3, 3) in training mode; show the per-channel statistics.

    The statistics are kept per channel, shape (1, 2, 1, 1), and each channel of the output
    must have mean 0 and variance 1 over the batch and every pixel.

    Parameters
    ----------
    conv : Conventions
        The document's conventions.
    numpy_api : bool, optional
        As for :func:`demo_function`.
    seed : int
        Seeds the random batch (:func:`gluon_bn.run.training.seed_everything`).

    Returns
    -------
    Y4 : array
        The normalised batch.
    """
    xp = _arrays(numpy_api)
    seed_everything(seed)
    X4 = _normal(xp, 2, 3, (4, 2, 3, 3))  # batch 4, 2 channels, 3x3 pixels
    shape = (1, 2, 1, 1)  # gamma, beta and the statistics broadcast over batch and pixels
    with mx.autograd.record():
        Y4, mean4, _ = batch_norm(
            X4,
            xp.ones(shape),
            xp.zeros(shape),
            xp.zeros(shape),
            xp.full(shape, conv.moving_var_init),
            **batch_norm_options(conv),
        )
    print("statistics are kept per channel, shape", mean4.shape)
    mean = Y4.mean(axis=(0, 2, 3)).asnumpy()
    centred = Y4 - Y4.mean(axis=(0, 2, 3), keepdims=True)
    variance = (centred**2).mean(axis=(0, 2, 3)).asnumpy()
    print("per-channel mean of Y:    ", mean.round(6))
    print("per-channel variance of Y:", variance.round(4))
    assert tuple(mean4.shape) == shape
    np.testing.assert_allclose(mean, 0, atol=1e-5)
    np.testing.assert_allclose(variance, 1, atol=1e-3)
    return Y4


# ---------------------------------------------------------------- the layer
def check_layer(demo: FunctionDemo) -> BatchNorm:
    """Build :class:`gluon_bn.BatchNorm` with the demo's conventions; check it against the function.

    After one training call on the demo's batch the layer must hold the moving statistics
    the function returned. Prints the layer and which of its parameters are trained. For
    conventions whose moving statistics start fixed (``moving_init="fixed"``): a layer seeded
    by its first batch starts from other values than the function was given.

    Parameters
    ----------
    demo : FunctionDemo
        What :func:`demo_function` returned.

    Returns
    -------
    BatchNorm
        The layer, after its training call.
    """
    layer = BatchNorm(demo.X.shape[1], num_dims=2, **demo.conv.layer_options())
    layer.initialize()
    print(layer)
    with mx.autograd.record():
        layer(demo.X)
    for kept, returned in ((layer.moving_mean, demo.new_mean), (layer.moving_var, demo.new_var)):
        np.testing.assert_allclose(kept.data().asnumpy(), returned.asnumpy(), rtol=1e-6)
    print("after one training call the layer holds the same moving statistics as the function")
    params = layer.collect_params().values()
    print("trainable:", [p.name for p in params if p.grad_req != "null"])
    print("kept, not trained:", [p.name for p in params if p.grad_req == "null"])
    return layer


def compare_with_gluon(demo: FunctionDemo) -> mx.gluon.nn.BatchNorm:
    """Run Gluon's ``nn.BatchNorm`` (momentum converted) on the demo's batch; compare with ours.

    The output and the running mean must equal the function's; the running variance may
    differ only by what the starting values make: Gluon starts it at 1, the document at
    ``moving_var_init``, a gap of ``(1 - batch weight) * (1 - moving_var_init)``.

    Parameters
    ----------
    demo : FunctionDemo
        What :func:`demo_function` returned.

    Returns
    -------
    mx.gluon.nn.BatchNorm
        Gluon's layer, after one training step.
    """
    conv = demo.conv
    builtin = mx.gluon.nn.BatchNorm(
        momentum=conv.gluon_momentum(), epsilon=conv.eps, in_channels=demo.X.shape[1]
    )
    builtin.initialize()
    with mx.autograd.record():
        Y_builtin = builtin(demo.X)
    Y_builtin.backward()  # MXNet's CPU operator writes its running statistics in the backward pass
    same_output = np.allclose(Y_builtin.asnumpy(), demo.Y.asnumpy(), atol=1e-5)
    same_mean = np.allclose(
        builtin.running_mean.data().asnumpy(), demo.new_mean.asnumpy().ravel(), atol=1e-6
    )
    print(f"nn.BatchNorm(momentum={conv.gluon_momentum():g}) output equals ours:", same_output)
    print("running mean equals ours:", same_mean)
    gap = builtin.running_var.data().asnumpy() - demo.new_var.asnumpy().ravel()
    expected_gap = (1 - batch_weight(conv)) * (1 - conv.moving_var_init)
    print(
        "running var minus ours:",
        gap.round(6),
        f"(expected {expected_gap:g}: the running "
        f"variance starts at 1 in Gluon and at {conv.moving_var_init:g} here)",
    )
    assert same_output and same_mean
    np.testing.assert_allclose(gap, expected_gap, atol=1e-5)
    return builtin


def show_report(result: Reproduction, *, smoke: bool = False) -> None:
    """Display :func:`gluon_bn.report.markdown_report` of a record, after a note on a smoke run.

    Parameters
    ----------
    result : Reproduction
        What :func:`gluon_bn.run.reproduce.record_runs` returned.
    smoke : bool
        The notebook's smoke switch: first say that the table shows only that the pipeline
        works, not how the document's numbers compare (where it printed none: not what the
        networks can learn).
    """
    if smoke:
        what = (
            "how the document's numbers compare"
            if result.recipe.printed
            else "what the networks can learn"
        )
        _display_markdown(_SMOKE_NOTE.format(what=what))
    _display_markdown(markdown_report(result))
