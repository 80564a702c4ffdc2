"""The ablations' runs: each network at its best learning rate, and the bias identity checked. MXNet.

One run (:func:`measure_ablation`) is one network with one seed: it is trained at every
rate of the study's grid on the kept training images but the last sixth
(:data:`gluon_bn.study.registry.HELD_OUT_SHARE`), each measured on that held-out sixth; the
best rate that trains is chosen (:func:`gluon_bn.study.ablated.choose_rate`), and the
network is trained again at it on every kept training image and measured on the test set.
The selection happens inside the run, so each (configuration, seed) stays one resumable
run. The bias configuration trains nothing: :func:`bias_identity` checks, on a real batch,
that a BN layer ignores a constant added per channel to its input.
"""

from __future__ import annotations

import copy
from typing import Dict, List

import numpy as np

from gluon_bn.run.training import seed_everything
from gluon_bn.runtime.loader import mx
from gluon_bn.study.ablated import choose_rate
from gluon_bn.study.registry import HELD_OUT_SHARE, SETTLING_STEPS
from gluon_bn.study.study_record import Configuration

autograd, nd, nn = mx.autograd, mx.nd, mx.gluon.nn


def split(exp):
    """Return an Experiment like `exp` whose training and test images are the fitting part of
    its kept training images and their held-out last sixth (never the test set)."""
    train_x, train_y, _, _ = exp.arrays()
    held = max(1, round(len(train_y) * HELD_OUT_SHARE))
    fit = len(train_y) - held
    part = copy.copy(exp)  # the same study, settings, recipe and device; other images
    part._arrays = (train_x[:fit], train_y[:fit], train_x[fit:], train_y[fit:])
    return part


def measure_ablation(exp, config: Configuration, seed: int) -> dict:
    """Measure one configuration of the ablations study with `seed` (see the module)."""
    options = dict(config.settings)
    if options.pop("check", None) == "bias identity":
        return bias_identity(exp, seed)
    s, part = exp.settings, split(exp)
    validation: List[Dict[str, object]] = []
    seconds = 0.0
    for lr in s.grid:
        _, _, tried = part.train(options, seed, lr=float(lr), batch_size=s.batch_size)
        seconds += tried["train_seconds"]
        validation.append(
            {
                "lr": float(lr),
                **{k: tried[k] for k in ("final_acc", "loss", "diverged", "curve") if k in tried},
            }
        )
    chosen, why = choose_rate(validation)
    if chosen is None:
        return {
            "chosen_lr": None,
            "validation": validation,
            "curve": [],
            "loss": [],
            "final_acc": None,
            "diverged": False,
            "train_seconds": seconds,
            "untrainable": f"fails to train at every rate of the grid ({why})",
        }
    _, _, final = exp.train(options, seed, lr=chosen, batch_size=s.batch_size)
    return {
        **final,
        "chosen_lr": chosen,
        "validation": validation,
        "final_seconds": final["train_seconds"],
        "train_seconds": seconds + final["train_seconds"],
    }


def bias_identity(exp, seed: int) -> dict:
    """Check that each nn.BatchNorm layer of BN LeNet ignores a constant added per channel.

    On the first training batch of `seed`, every BN layer's own input ``x`` (the network in
    prediction mode up to it) goes through two copies of the layer with the same random
    gamma and beta, one fed ``x`` and one ``x + c`` with ``c`` a random constant per channel
    (three standard deviations of ``x`` in size), in float64 so that float32's rounding
    over a channel's values (recorded too, ``training_change_float32``) hides nothing.
    Measured, each the largest over the layers: the change of the training-mode output
    relative to its scale, the gradient of a random linear loss with respect to ``c``
    relative to that with respect to beta, and, after :data:`SETTLING_STEPS` training steps
    on the same inputs (the moving statistics settle), the change of the prediction-mode
    output relative to its scale.
    """
    seed_everything(seed)
    rng = np.random.RandomState(seed)
    net = exp.network({"bn": "gluon"})
    X, _ = next(iter(exp.batches(exp.settings.batch_size, train=True, seed=seed)))
    X = X.as_in_context(exp.ctx)
    inputs = []
    for layer in net._children.values():  # LeNet is one flat Sequential
        if isinstance(layer, nn.BatchNorm):
            inputs.append((layer, X))
        X = layer(X)
    checks = [_shifted(layer, x, rng, exp.ctx) for layer, x in inputs]
    return {
        "layers": len(checks),
        "steps": SETTLING_STEPS,
        "per_layer": checks,
        **{
            key: max(c[key] for c in checks)
            for key in (
                "training_change",
                "constant_gradient",
                "prediction_change",
                "training_change_float32",
            )
        },
    }


def _shifted(layer, x, rng: np.random.RandomState, ctx) -> Dict[str, float]:
    """One BN layer's numbers for input `x` (see :func:`bias_identity`), in float64; and the
    training-mode change in float32, the precision training uses, for the record."""
    channels = x.shape[1]
    shape = (1, channels) + (1,) * (x.ndim - 2)
    gamma = rng.uniform(0.5, 1.5, channels)
    beta = rng.normal(0.0, 1.0, channels)
    constant = rng.normal(0.0, 3.0 * float(x.asnumpy().std()) + 1e-3, shape)
    weights = rng.normal(0.0, 1.0, x.shape)
    numbers = {}
    for dtype in ("float32", "float64"):
        copies = []
        for _ in range(2):
            bn = nn.BatchNorm(
                momentum=layer._kwargs["momentum"],
                epsilon=layer._kwargs["eps"],
                in_channels=channels,
            )
            bn.cast(dtype)
            bn.initialize(ctx=ctx)
            bn.gamma.set_data(nd.array(gamma, ctx=ctx, dtype=dtype))
            bn.beta.set_data(nd.array(beta, ctx=ctx, dtype=dtype))
            copies.append(bn)
        plain, shifted = copies
        x_ = x.astype(dtype)
        c = nd.array(constant, ctx=ctx, dtype=dtype)
        c.attach_grad()
        with autograd.record():
            y = plain(x_)
            y_shifted = shifted(nd.broadcast_add(x_, c))
            loss = (nd.array(weights, ctx=ctx, dtype=dtype) * y_shifted).sum()
        loss.backward()
        scale = max(1.0, float(nd.abs(y).max().asscalar()))
        numbers[f"training_change_{dtype}"] = float(nd.abs(y_shifted - y).max().asscalar()) / scale
        if dtype == "float32":
            continue
        numbers["constant_gradient"] = float(nd.abs(c.grad).max().asscalar()) / max(
            float(nd.abs(shifted.beta.grad()).max().asscalar()), 1e-300
        )
        for _ in range(SETTLING_STEPS):
            # nn.BatchNorm updates its moving statistics in the backward pass (oneDNN)
            with autograd.record():
                both = plain(x_).sum() + shifted(nd.broadcast_add(x_, c)).sum()
            both.backward()
        z = plain(x_)
        z_shifted = shifted(nd.broadcast_add(x_, c))
        numbers["prediction_change"] = float(nd.abs(z_shifted - z).max().asscalar()) / max(
            1.0, float(nd.abs(z).max().asscalar())
        )
    return {"training_change": numbers.pop("training_change_float64"), **numbers}
