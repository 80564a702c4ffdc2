"""``compiled-speed``: every BN path timed, and where the scratch layer's time goes.

- train_ch5 paths: :func:`gluon_bn.run.timing.time_config` (a warm-up slice, then
  ``fraction`` of an epoch timed and scaled to 60000 images).
- d2l.Trainer paths: :func:`gluon_bn.run.timing.time_book_loop`, document 000's loop for
  ``epochs`` epochs on ``fraction`` of the images (validation on a sixth as many, the
  ratio of Fashion-MNIST's test set to its training set); the last epoch (the first is
  the warm-up) scaled to 60000 images.
- The profile: one BN layer alone, on a batch shaped like LeNet's first BN input,
  forward and backward :data:`PROFILE_STEPS` times under MXNet's profiler. The operators'
  total time (the profiler's ``operator`` domain) against the wall time of the same steps
  gives the share of the layer's time spent outside MXNet's operators: Python, autograd's
  bookkeeping and the calls into the library. This is meaningful with the synchronous
  NaiveEngine that ``gluon-bn study`` selects on the CPU (operators then run on the calling
  thread, so the two times do not overlap); profiling slows the steps a little, so the
  unprofiled time is recorded too.
"""

from __future__ import annotations

import time

from gluon_bn.bn.layer import BatchNorm
from gluon_bn.run.timing import BenchConfig, operator_times, time_book_loop, time_config
from gluon_bn.run.training import seed_everything
from gluon_bn.runtime.loader import mx

nd, autograd = mx.nd, mx.autograd
PROFILE_STEPS = 10
WARMUP_STEPS = 3
FIRST_BN = (6, 24, 24)  # channels, height, width of LeNet's first BN input


def measure_speed(exp, config, seed: int) -> dict:
    """Time or profile one configuration of ``compiled-speed`` (round `seed`); return its numbers."""
    s, kind = exp.settings, config.settings["kind"]
    if kind == "bench":
        c = config.settings
        if c["bn_impl"] == "native":
            from gluon_bn.bn.native import unavailable_reason

            why = unavailable_reason()
            if why:  # no C++ compiler here: the row stays empty, the verdict does not read it
                return {"unavailable": why}
        timing = time_config(
            BenchConfig(c["variant"], c["bn_impl"], c["hybridize"], c["pipeline"]),
            exp.study.recipe,
            fraction=s.fraction,
            ctx=exp.ctx,
            seed=seed,
        )
        return {
            "seconds_per_epoch": timing["seconds_per_epoch"],
            "examples_per_sec": timing["examples_per_sec"],
            "timed_examples": timing["timed_examples"],
        }
    if kind == "book":
        return time_book(exp, config.settings["variant"], config.settings["bn_impl"], seed)
    return profile_layer(
        make_layer(config.settings["impl"], exp.recipe), seed, batch_size=s.batch_size, ctx=exp.ctx
    )


def time_book(exp, variant: str, bn_impl: str, seed: int) -> dict:
    """Seconds per 60000-image epoch of document 000's loop (d2l.Trainer) after a warm-up epoch."""
    return time_book_loop(
        variant,
        bn_impl,
        train_examples=exp.settings.train_examples,
        epochs=exp.settings.epochs,
        seed=seed,
        ctx=exp.ctx,
    )


def make_layer(impl: str, recipe) -> mx.gluon.Block:
    """Return the first BN layer of the recipe's LeNet: scratch ("faithful", "fast") or "gluon"."""
    conv = recipe.conventions
    if impl == "gluon":
        layer = mx.gluon.nn.BatchNorm(
            momentum=conv.gluon_momentum(), epsilon=conv.eps, in_channels=FIRST_BN[0]
        )
    else:
        layer = BatchNorm(FIRST_BN[0], 4, impl=impl, **conv.layer_options())
    return layer


def profile_layer(layer: mx.gluon.Block, seed: int, *, batch_size: int, ctx=None) -> dict:
    """Time `layer`'s forward and backward in training mode, and its operators' share of it.

    Parameters
    ----------
    layer : gluon.Block
        Not yet initialised.
    seed : int
        Seeds the input.
    batch_size : int
        The input is (batch_size, 6, 24, 24), normal draws.
    ctx : Context, optional
        Default CPU.

    Returns
    -------
    dict
        ``unprofiled_ms`` and ``wall_ms`` (per step, without and with the profiler),
        ``operator_ms`` (per step, the profiler's operator total) and ``python_share``
        (1 − operator / wall, at least 0).
    """
    ctx = ctx or mx.cpu()
    seed_everything(seed)
    layer.initialize(ctx=ctx)
    X = nd.random.normal(0.5, 2.0, shape=(batch_size,) + FIRST_BN, ctx=ctx)

    def step() -> None:
        x = X.copy()
        x.attach_grad()
        with autograd.record():
            y = layer(x)
        y.backward()

    def steps() -> None:
        for _ in range(PROFILE_STEPS):
            step()

    for _ in range(WARMUP_STEPS):
        step()
    nd.waitall()
    start = time.perf_counter()
    steps()
    nd.waitall()
    unprofiled = (time.perf_counter() - start) * 1e3 / PROFILE_STEPS
    wall, ops = operator_times(steps)
    wall /= PROFILE_STEPS
    operator = sum(ms for _, ms in ops.values()) / PROFILE_STEPS
    return {
        "unprofiled_ms": unprofiled,
        "wall_ms": wall,
        "operator_ms": operator,
        "python_share": max(0.0, 1.0 - operator / wall),
    }
