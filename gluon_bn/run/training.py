"""The documents' training loop (d2l's MXNet ``train_ch5``), with its history returned."""

from __future__ import annotations

import math
import random
import sys
import time
from typing import TYPE_CHECKING, Callable, Iterable, List, Optional, Sequence, TextIO, Tuple, Union

import numpy as np
from tqdm import tqdm

from gluon_bn.device import as_context_list
from gluon_bn.records import EpochStats
from gluon_bn.runtime.loader import mx

if TYPE_CHECKING:
    from gluon_bn.recipes import Recipe

nd, autograd, gluon = mx.nd, mx.autograd, mx.gluon
Context = mx.context.Context


# A mean cross-entropy this large means the predicted class probabilities are below
# exp(-1e6): the weights have exploded even if float32 has not overflowed yet.
MAX_LOSS = 1e6


class TrainingDiverged(RuntimeError):
    """The loss became NaN, infinite, or larger than any model still learning produces."""

    def __init__(self, epoch: int, batch: Optional[int], value: float):
        where = f"epoch {epoch}, batch {batch}" if batch is not None else f"epoch {epoch}"
        super().__init__(
            f"the training loss became {value:.4g} per example at {where} (diverged: NaN, "
            f"infinite or above {MAX_LOSS:g}). The usual cause is a learning rate too large "
            f"for this network (try a smaller --lr), or NaN/inf in the input data."
        )
        self.epoch, self.batch, self.value = epoch, batch, value


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and MXNet's generators (all devices) so CPU runs repeat exactly."""
    random.seed(seed)
    np.random.seed(seed)
    mx.random.seed(seed)


def prepare_network(
    recipe: "Recipe",
    variant: str,
    *,
    net: Optional[mx.gluon.Block] = None,
    bn_impl: str = "faithful",
    hybridize: str = "none",
    ctx=None,
    learning_rate: Optional[float] = None,
) -> Tuple[mx.gluon.Block, mx.gluon.Trainer]:
    """Build a recipe's network, compile it, initialise it and make its SGD trainer.

    The one way a network is made ready to train: ``gluon-bn reproduce``, the benches, the
    studies and the runtime probe all call it (after seeding, which decides the initial
    weights).

    Parameters
    ----------
    recipe : Recipe
        Whose network (:func:`gluon_bn.models.build_net`), initialiser and rate.
    variant : {"scratch", "gluon", "plain"}
        Which network (and which of the recipe's initialisers).
    net : Block, optional
        A network built already (a study's LeNet with its options) instead of the recipe's.
    bn_impl : {"faithful", "fast", "native"}
        The scratch layer's implementation.
    hybridize : {"none", "layers", "graph"}
        How it is compiled (:func:`gluon_bn.models.hybridize_network`), before initialising.
    ctx : Context or list of Context, optional
        Where the parameters live (default CPU).
    learning_rate : float, optional
        The trainer's rate (default the recipe's, :meth:`Recipe.trainer_learning_rate`).

    Returns
    -------
    (net, trainer)
    """
    from gluon_bn.models import build_net, hybridize_network, make_initializer

    net = hybridize_network(net or build_net(recipe, variant, bn_impl=bn_impl), hybridize)
    net.initialize(make_initializer(recipe.initializer_for(variant)), ctx=ctx or mx.cpu())
    rate = recipe.trainer_learning_rate() if learning_rate is None else learning_rate
    trainer = mx.gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": rate})
    return net, trainer


def _split(X, y, ctxs: List[Context]):
    if len(ctxs) == 1:
        return [X.as_in_context(ctxs[0])], [y.as_in_context(ctxs[0])]
    return (
        gluon.utils.split_and_load(X, ctxs, even_split=False),
        gluon.utils.split_and_load(y, ctxs, even_split=False),
    )


def evaluate_accuracy(
    data_iter: Iterable, net: gluon.Block, ctx: Union[Context, Sequence[Context]] = None
) -> float:
    """Return the accuracy of `net` on `data_iter`, in prediction mode.

    Parameters
    ----------
    data_iter : iterable of (X, y)
        Batches of NDArrays.
    net : gluon.Block
        Called outside ``autograd.record()``, so Gluon's and the scratch BN layers use their
        moving statistics.
    ctx : Context or list of Context
        Where to compute; a list splits each batch across devices.
    """
    ctxs = as_context_list(ctx or mx.cpu())
    correct = [nd.zeros((1,), ctx=c) for c in ctxs]
    n = 0
    for X, y in data_iter:
        for i, (Xs, ys) in enumerate(zip(*_split(X, y, ctxs))):
            correct[i] += (net(Xs).argmax(axis=1) == ys.astype("float32")).sum()
        n += y.shape[0]
    return sum(c.asscalar() for c in correct) / max(n, 1)


def _stderr_is_terminal() -> bool:
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # replaced by an object without isatty, or closed
        return False


class _EpochBar:
    """tqdm's bar for one epoch on stderr: batches done, ETA, running loss and examples/s.

    Off (nothing is written, nothing extra is computed) unless `enabled` and stderr is a
    terminal. Closing it erases the line, so the epoch line train_ch5 prints on stdout
    appears as it always has.
    """

    REFRESH_SECONDS = 0.5  # how often the loss and rate in the bar are recomputed
    MIN_INTERVAL = 0.1  # tqdm's mininterval: seconds between redraws

    def __init__(self, total: int, epoch: int, enabled: bool):
        self.enabled = bool(enabled) and _stderr_is_terminal()
        self.bar = tqdm(
            total=total or None,
            desc=f"epoch {epoch}",
            unit="batch",
            file=sys.stderr,
            leave=False,
            dynamic_ncols=True,
            mininterval=self.MIN_INTERVAL,
            disable=not self.enabled,
        )
        self.start = self.last = time.time()
        self.examples = 0

    def update(self, examples: int, loss: Union[float, Callable[[], float]]) -> None:
        """One batch of `examples` done; `loss`: the running mean, or a function reading it."""
        if not self.enabled:
            return
        self.examples += examples
        now = time.time()
        if now - self.last >= self.REFRESH_SECONDS or self.bar.n + 1 == self.bar.total:
            self.last = now
            value = loss() if callable(loss) else loss
            rate = self.examples / max(now - self.start, 1e-9)
            self.bar.set_postfix_str(f"loss {value:.4f}, {rate:.0f} examples/s", refresh=False)
        self.bar.update(1)

    def testing(self) -> None:
        if self.enabled:
            self.bar.set_description_str(f"{self.bar.desc} (test)")

    def close(self) -> None:
        self.bar.close()


def train_ch5(
    net: gluon.Block,
    train_iter,
    test_iter,
    batch_size: int,
    trainer: gluon.Trainer,
    ctx: Union[Context, Sequence[Context]],
    num_epochs: int,
    *,
    file: Optional[TextIO] = None,
    start_epoch: int = 0,
    sync_every_batch: bool = True,
    on_epoch_end: Optional[Callable[[EpochStats], None]] = None,
    stop_requested: Optional[Callable[[], bool]] = None,
    progress: bool = True,
) -> List[EpochStats]:
    """Train `net` as d2l's MXNet ``train_ch5`` does, print its lines and return the history.

    Each batch: summed softmax cross-entropy under ``autograd.record()``, ``backward``,
    ``trainer.step(batch_size)``. Each epoch prints
    ``epoch N, loss L, train acc A, test acc B, time T sec``, the time including the test
    evaluation. A first line says ``training on <ctx>``.

    Parameters
    ----------
    net : gluon.Block
        Initialised on `ctx`.
    train_iter, test_iter : iterables of (X, y)
        Batches of NDArrays (see :mod:`gluon_bn.data`).
    batch_size : int
        What ``trainer.step`` divides the summed gradient by.
    trainer : gluon.Trainer
        Over ``net.collect_params()``.
    ctx : Context or list of Context
        A list trains data-parallel: each batch is split with ``split_and_load``.
    num_epochs : int
        Last epoch to run (1-based), counting `start_epoch` epochs already done.
    file : text stream, optional
        Where the lines go (default stdout). Only these lines: the progress bar goes to
        stderr.
    start_epoch : int
        Epochs already done (when resuming): training starts at epoch ``start_epoch + 1``.
    sync_every_batch : bool
        True (the documents): read loss and accuracy back to Python after every batch, as
        train_ch5 does, which also stops on the first diverged batch. False: keep the sums,
        and each batch's summed loss (one scalar per batch), on the device and read them once
        per epoch (faster; same numbers up to float32 summation order). Divergence is then
        checked on the epoch's mean loss at the epoch's end, and the error names the epoch's
        first diverged batch (the one True stops at).
    on_epoch_end : callable, optional
        Called with each epoch's :class:`EpochStats` after its line is printed
        (checkpoints use it).
    stop_requested : callable, optional
        Asked after every batch; when it returns True, KeyboardInterrupt is raised there.
        The CLI uses it because a Ctrl-C that lands inside an NDArray's ``__del__`` is
        swallowed by Python ("Exception ignored in ..."); the flag it set is not.
    progress : bool
        Show a tqdm bar per epoch on stderr (batches, ETA, running loss, examples/s), erased
        before the epoch's line. It is shown only when stderr is a terminal; False (the
        CLI's ``--quiet``) turns it off there too. With ``sync_every_batch=False`` the
        running loss in the bar is read back from the device at most every half second,
        and only while the bar is shown.

    Returns
    -------
    list of EpochStats
        One per epoch run.

    Raises
    ------
    TrainingDiverged
        When the mean loss per example becomes NaN, infinite or above MAX_LOSS (with
        ``sync_every_batch=False``: the epoch's, checked at the epoch's end).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if isinstance(num_epochs, bool) or not isinstance(num_epochs, int) or num_epochs < 0:
        raise ValueError(f"num_epochs must be a non-negative int, got {num_epochs!r}")
    file = file or sys.stdout
    ctxs = as_context_list(ctx)
    print("training on", ctx, file=file, flush=True)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    history = []
    for epoch in range(start_epoch + 1, num_epochs + 1):
        bar = _EpochBar(_length(train_iter), epoch, progress)
        try:
            loss_sum, correct_sum, n = 0.0, 0.0, 0
            device_sums = [nd.zeros((2,), ctx=c) for c in ctxs]
            # Per batch (sync_every_batch=False): its per-device sums (kept, read back only
            # if the epoch diverged) and its example count.
            batch_sums, batch_sizes = [], []
            start = time.time()
            for batch, (X, y) in enumerate(train_iter, 1):
                Xs, ys = _split(X, y, ctxs)
                with autograd.record():
                    y_hats = [net(x) for x in Xs]
                    losses = [loss_fn(y_hat, t).sum() for y_hat, t in zip(y_hats, ys)]
                autograd.backward(losses)
                trainer.step(batch_size)
                # Per device: [summed loss, correct predictions] of this batch, shape (2,).
                sums = [
                    nd.concat(
                        loss_.reshape((1,)),
                        (y_hat.argmax(axis=1) == t.astype("float32")).sum().reshape((1,)),
                        dim=0,
                    )
                    for loss_, y_hat, t in zip(losses, y_hats, ys)
                ]
                n += y.shape[0]
                if sync_every_batch:
                    values = sum(s.asnumpy().astype("float64") for s in sums)
                    _check_loss(values[0] / y.shape[0], epoch, batch)
                    loss_sum += float(values[0])
                    correct_sum += float(values[1])
                else:
                    for acc, s in zip(device_sums, sums):
                        acc += s
                    batch_sums.append(sums)
                    batch_sizes.append(y.shape[0])
                bar.update(
                    y.shape[0],
                    (loss_sum / n) if sync_every_batch else lambda: _running_loss(device_sums, n),
                )
                if stop_requested is not None and stop_requested():
                    raise KeyboardInterrupt
            if not sync_every_batch:
                values = sum(s.asnumpy().astype("float64") for s in device_sums)
                loss_sum, correct_sum = float(values[0]), float(values[1])
                if batch_sums and _diverged(loss_sum / n):
                    _check_batches(batch_sums, batch_sizes, epoch)
                # Raises only if no single batch diverged (float32 rounding of the
                # epoch's sum).
                _check_loss(loss_sum / max(n, 1), epoch, None)
            nd.waitall()
            train_seconds = time.time() - start
            bar.testing()
            test_acc = evaluate_accuracy(test_iter, net, ctxs if len(ctxs) > 1 else ctxs[0])
            seconds = time.time() - start
        finally:
            bar.close()
        stats = EpochStats(
            epoch,
            loss_sum / max(n, 1),
            correct_sum / max(n, 1),
            test_acc,
            seconds,
            train_seconds,
            n / max(train_seconds, 1e-9),
        )
        print(stats.line(), file=file, flush=True)
        history.append(stats)
        if on_epoch_end is not None:
            on_epoch_end(stats)
    return history


def _check_batches(batch_sums: list, batch_sizes: List[int], epoch: int) -> None:
    """Raise TrainingDiverged for the first batch whose loss per example diverged."""
    # Per device: the batches' (2,) sums stacked to (batches, 2) and read back once; summed
    # over devices in float64, as the per-batch read-back does.
    values = sum(nd.stack(*column).asnumpy().astype("float64") for column in zip(*batch_sums))
    for batch, (loss, size) in enumerate(zip(values[:, 0], batch_sizes), 1):
        _check_loss(loss / size, epoch, batch)


def _running_loss(device_sums: list, n: int) -> float:
    """The mean loss so far from the per-device sums kept on the devices (the bar's display)."""
    return float(sum(s[0].asscalar() for s in device_sums)) / max(n, 1)


def _diverged(mean_loss: float) -> bool:
    return not (math.isfinite(mean_loss) and mean_loss <= MAX_LOSS)


def _check_loss(mean_loss: float, epoch: int, batch: Optional[int]) -> None:
    if _diverged(mean_loss):
        raise TrainingDiverged(epoch, batch, float(mean_loss))


def _length(iterable) -> int:
    try:
        return len(iterable)
    except TypeError:
        return 0
