"""d2l 1.0's training loop (``d2l.Trainer``), run as the book runs it, with its numbers recorded.

The book trains document 000's models with ``d2l.Trainer(max_epochs=10, num_gpus=1).fit(
model, data)`` and shows a board of three curves: the training loss (plotted twice per
epoch), the validation loss and the validation accuracy (once per epoch). Each point the
board draws is the mean of the values handed to ``Module.plot`` since the last point.
:class:`RecordingTrainer` is that Trainer, unchanged in what it computes; it also keeps
every value handed to ``plot`` and, per epoch, records their means and the epoch's wall time.

The board's validation accuracy is the mean of per-batch accuracies, so a smaller last batch
weighs as much as a full one. ``val_acc="counted"`` (the studies') records correct
predictions over validation examples instead; the default, ``"board"``, is the book's number.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, TextIO

from d2l import mxnet as d2l

from gluon_bn.records import BookEpoch
from gluon_bn.run.training import TrainingDiverged, _diverged
from gluon_bn.runtime.loader import mx

if TYPE_CHECKING:
    from gluon_bn.options import ResolvedRun

__all__ = ["BookEpoch", "RecordingTrainer", "VAL_ACCURACIES", "fit"]

# What BookEpoch.val_acc holds: the board's mean of per-batch accuracies (the book's number),
# or correct predictions / validation examples.
VAL_ACCURACIES = ("board", "counted")


class RecordingTrainer(d2l.Trainer):
    """``d2l.Trainer`` that records each epoch's board values and time, and prints a line.

    Parameters
    ----------
    max_epochs, num_gpus, gradient_clip_val
        As ``d2l.Trainer``.
    file : text stream, optional
        Where the per-epoch lines go (default stdout); None prints nothing when `quiet`.
    quiet : bool
        Print nothing.
    show_board : bool
        Let d2l draw its live board (in a notebook); off, the values are still recorded.
    on_epoch_end : callable, optional
        Called with each :class:`BookEpoch`.
    val_acc : {"board", "counted"}
        What each epoch's ``val_acc`` holds: the mean of the per-batch accuracies the board
        plots (the book's number, the default), or correct predictions / validation examples.
        The board itself is drawn the same either way.
    """

    def __init__(
        self,
        max_epochs: int,
        num_gpus: int = 0,
        gradient_clip_val: float = 0,
        *,
        file: Optional[TextIO] = None,
        quiet: bool = False,
        show_board: bool = False,
        on_epoch_end: Optional[Callable[[BookEpoch], None]] = None,
        val_acc: str = "board",
    ):
        if val_acc not in VAL_ACCURACIES:
            raise ValueError(f"val_acc must be one of {VAL_ACCURACIES}, got {val_acc!r}")
        super().__init__(max_epochs, num_gpus, gradient_clip_val)
        self.history: List[BookEpoch] = []
        self._file, self._quiet, self._show_board = file, quiet, show_board
        self._on_epoch_end = on_epoch_end
        self._val_acc = val_acc
        self._points: Dict[str, List[float]] = {}
        self._counted = [0.0, 0]  # correct predictions, validation examples (this epoch)

    def prepare_model(self, model) -> None:
        super().prepare_model(model)
        model.board.display = self._show_board
        board_plot = model.plot

        def plot(key: str, value, train: bool) -> None:
            # value is a scalar mx.np array; float() waits for it, as d2l's own plot does.
            self._points.setdefault(("train_" if train else "val_") + key, []).append(float(value))
            board_plot(key, value, train)

        model.plot = plot
        if self._val_acc == "counted":
            board_accuracy = model.accuracy  # called by validation_step only

            def accuracy(Y_hat, Y, averaged: bool = True):
                # the same per-example comparison; counted here, and the batch mean returned
                # to the board as before
                compare = board_accuracy(Y_hat, Y, averaged=False)
                self._counted[0] += float(compare.sum())
                self._counted[1] += int(compare.size)
                return compare.mean() if averaged else compare

            model.accuracy = accuracy

    def fit_epoch(self) -> None:
        self._points = {}
        self._counted = [0.0, 0]
        mx.nd.waitall()
        start = time.perf_counter()
        super().fit_epoch()
        mx.nd.waitall()
        seconds = time.perf_counter() - start
        means = {key: sum(v) / len(v) for key, v in self._points.items() if v}
        correct, examples = self._counted
        val_acc = (
            (correct / examples if examples else float("nan"))
            if self._val_acc == "counted"
            else means.get("val_acc", float("nan"))
        )
        stats = BookEpoch(
            self.epoch + 1,
            means.get("train_loss", float("nan")),
            means.get("val_loss", float("nan")),
            val_acc,
            seconds,
        )
        if _diverged(stats.train_loss):
            raise TrainingDiverged(stats.epoch, None, stats.train_loss)
        self.history.append(stats)
        if not self._quiet:
            print(stats.line(), file=self._file or sys.stdout, flush=True)
        if self._on_epoch_end is not None:
            self._on_epoch_end(stats)


def fit(
    model,
    data,
    max_epochs: int,
    *,
    num_gpus: int = 1,
    file: Optional[TextIO] = None,
    quiet: bool = False,
    show_board: bool = False,
    on_epoch_end: Optional[Callable[[BookEpoch], None]] = None,
    val_acc: str = "board",
) -> List[BookEpoch]:
    """Train `model` on `data` with d2l 1.0's Trainer, as the book does, and return the history.

    Parameters
    ----------
    model : d2l.Classifier
        For example :class:`gluon_bn.models.BNLeNetScratch`, built in numpy mode.
    data : d2l.DataModule
        For example :class:`gluon_bn.FashionMNIST`.
    max_epochs : int
        Epochs to train.
    num_gpus : int
        As ``d2l.Trainer``: the book passes 1; with no GPU, d2l trains on the CPU.
    file, quiet, show_board, on_epoch_end, val_acc
        See :class:`RecordingTrainer` (``val_acc="board"``: the book's number).

    Returns
    -------
    list of BookEpoch
    """
    trainer = RecordingTrainer(
        max_epochs,
        num_gpus,
        file=file,
        quiet=quiet,
        show_board=show_board,
        on_epoch_end=on_epoch_end,
        val_acc=val_acc,
    )
    trainer.fit(model, data)
    return trainer.history


def train_book_variant(
    run: "ResolvedRun",
    variant: str,
    seed: int,
    ctx,
    *,
    file: Optional[TextIO] = None,
    on_epoch_end=None,
    val_acc: str = "board",
):
    """Train one variant with d2l 1.0's Trainer in numpy mode; return (history, net).

    The book's call, ``d2l.Trainer(max_epochs, num_gpus=1).fit(model, FashionMNIST(...))``,
    with :mod:`gluon_bn.models.book` for the models and :class:`gluon_bn.FashionMNIST` for
    the data. ``num_gpus`` is 1 when `ctx` is a GPU, else 0 (d2l then trains on the CPU).
    """
    from gluon_bn.bn.dialect import numpy_mode
    from gluon_bn.data.book import FashionMNIST
    from gluon_bn.device import as_context_list
    from gluon_bn.models import hybridize_network
    from gluon_bn.models.book import BNLeNet, BNLeNetScratch, LeNet
    from gluon_bn.run.training import seed_everything

    if run.dataset != "fashion-mnist":
        raise ValueError(
            f"the d2l.Trainer loop trains on Fashion-MNIST (the book's data), "
            f"not {run.dataset}; use --loop train_ch5"
        )
    num_gpus = int(any(c.device_type == "gpu" for c in as_context_list(ctx)))
    with numpy_mode():
        seed_everything(seed)  # initial weights (MXNet's RNG) and the loader's order (numpy's)
        model = {
            "plain": lambda: LeNet(lr=run.lr),
            "scratch": lambda: BNLeNetScratch(lr=run.lr, impl=run.bn_impl),
            "gluon": lambda: BNLeNet(lr=run.lr),
        }[variant]()
        compiled = hybridize_network(model.net, run.hybridize)
        if compiled is not model.net:
            if not isinstance(compiled, mx.gluon.nn.Sequential):  # one HybridSequential:
                wrapper = mx.gluon.nn.Sequential(prefix="")  # Block forbids changing the
                wrapper.add(compiled)  # attribute's type
                compiled = wrapper
            model.net = compiled
        data = FashionMNIST(
            batch_size=run.batch_size, root=run.data_root, limit=run.limit, val_limit=run.test_limit
        )
        history = fit(
            model,
            data,
            run.epochs,
            num_gpus=num_gpus,
            file=file,
            on_epoch_end=on_epoch_end,
            val_acc=val_acc,
        )
    return history, model.net
