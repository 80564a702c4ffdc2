"""d2l 1.0's training loop (``d2l.Trainer``), run as the book runs it, with its numbers recorded.

The book trains document 000's models with ``d2l.Trainer(max_epochs=10, num_gpus=1).fit(
model, data)`` and shows a board of three curves: the training loss (plotted twice per
epoch), the validation loss and the validation accuracy (once per epoch). Each point the
board draws is the mean of the values handed to ``Module.plot`` since the last point.
:class:`RecordingTrainer` is that Trainer, unchanged in what it computes; it also keeps
every value handed to ``plot`` and, per epoch, records their means and the epoch's wall time.
"""
from __future__ import annotations

import sys
import time
from typing import Callable, Dict, List, Optional, TextIO

from d2l import mxnet as d2l

from gluon_bn._mxnet import mx
from gluon_bn.records import BookEpoch
from gluon_bn.run.training import TrainingDiverged, _diverged

__all__ = ["BookEpoch", "RecordingTrainer", "fit"]


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
    """

    def __init__(self, max_epochs: int, num_gpus: int = 0, gradient_clip_val: float = 0, *,
                 file: Optional[TextIO] = None, quiet: bool = False, show_board: bool = False,
                 on_epoch_end: Optional[Callable[[BookEpoch], None]] = None):
        super().__init__(max_epochs, num_gpus, gradient_clip_val)
        self.history: List[BookEpoch] = []
        self._file, self._quiet, self._show_board = file, quiet, show_board
        self._on_epoch_end = on_epoch_end
        self._points: Dict[str, List[float]] = {}

    def prepare_model(self, model) -> None:
        super().prepare_model(model)
        model.board.display = self._show_board
        board_plot = model.plot

        def plot(key: str, value, train: bool) -> None:
            # value is a scalar mx.np array; float() waits for it, as d2l's own plot does.
            self._points.setdefault(("train_" if train else "val_") + key, []).append(float(value))
            board_plot(key, value, train)

        model.plot = plot

    def fit_epoch(self) -> None:
        self._points = {}
        mx.nd.waitall()
        start = time.perf_counter()
        super().fit_epoch()
        mx.nd.waitall()
        seconds = time.perf_counter() - start
        means = {key: sum(v) / len(v) for key, v in self._points.items() if v}
        stats = BookEpoch(self.epoch + 1, means.get("train_loss", float("nan")),
                          means.get("val_loss", float("nan")),
                          means.get("val_acc", float("nan")), seconds)
        if _diverged(stats.train_loss):
            raise TrainingDiverged(stats.epoch, None, stats.train_loss)
        self.history.append(stats)
        if not self._quiet:
            print(stats.line(), file=self._file or sys.stdout, flush=True)
        if self._on_epoch_end is not None:
            self._on_epoch_end(stats)


def fit(model, data, max_epochs: int, *, num_gpus: int = 1, file: Optional[TextIO] = None,
        quiet: bool = False, show_board: bool = False,
        on_epoch_end: Optional[Callable[[BookEpoch], None]] = None) -> List[BookEpoch]:
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
    file, quiet, show_board, on_epoch_end
        See :class:`RecordingTrainer`.

    Returns
    -------
    list of BookEpoch
    """
    trainer = RecordingTrainer(max_epochs, num_gpus, file=file, quiet=quiet,
                               show_board=show_board, on_epoch_end=on_epoch_end)
    trainer.fit(model, data)
    return trainer.history
