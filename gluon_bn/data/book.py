"""Offline ``d2l.FashionMNIST``: d2l 1.0.3's data module over the verified local IDX files.

``d2l.FashionMNIST`` (MXNet flavour) builds its two data sets with
``gluon.data.vision.FashionMNIST``, which downloads the ``.gz`` files and checks their SHA-1.
Offline that download fails, and the copies Debian installs (``dataset-fashion-mnist``) are
re-compressed, so MXNet's SHA-1 check rejects them. :class:`FashionMNIST` here is a drop-in
replacement: the same ``d2l.DataModule`` interface, the same transforms (``Resize`` then
``ToTensor``) and the same Gluon ``DataLoader``, but the images come from
:func:`gluon_bn.data.load_arrays`, which finds the files on the local search path and checks
the SHA-256 of their decompressed content (see :mod:`gluon_bn.data`).

Importing this module imports ``d2l`` (and MXNet); ``import gluon_bn`` does neither and loads
this module only when ``gluon_bn.FashionMNIST`` is first used.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from d2l import mxnet as d2l  # after gluon_bn's MXNet, see above

from gluon_bn.data.idx import load_arrays
from gluon_bn.data.pipelines import Resize, _check_positive_int, _check_resize, image_transform
from gluon_bn.data.sources import FASHION_MNIST, PathLike

# gluon_bn's MXNet first: it loads the GPU wheel's CUDA runtime before d2l imports mxnet.
from gluon_bn.runtime.loader import mx

__all__ = ["FashionMNIST", "TEXT_LABELS", "DEFAULT_NUM_WORKERS"]

gluon = mx.gluon

# Fashion-MNIST class names; position = label. The same spelling as d2l's text_labels.
TEXT_LABELS = (
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)

# d2l uses 4 worker processes. Measured on this project's machine (2 vCPU, MXNet 1.9.1 CPU):
# one pass over the 60,000 training images, batch 64, Resize((28, 28)) + ToTensor, DataLoader
# construction included, 3 interleaved runs each (median, range), wall time and CPU time of
# the process and its workers. Another training job shared the 2 cores (load 4.5-7.4), so the
# wall times are noisy:
#   num_workers=0: wall 10.7 s (8.9-10.8), CPU 10.2 s
#   num_workers=2: wall 10.5 s (10.2-10.7), CPU 14.7 s
#   num_workers=4: wall 10.5 s (10.5-11.4), CPU 15.7 s
# Feeding a BN LeNet (forward, backward, SGD step, batch 128, 20,000 images) gave 10.9 and
# 10.0 s with 0 workers, 8.6 and 10.4 s with 4. With the images already in memory, workers do
# not shorten a pass on 2 cores; they cost ~50% more CPU (which training needs) and fork a
# process in which MXNet's engine already runs. So the default reads in this process.
DEFAULT_NUM_WORKERS = 0


class FashionMNIST(d2l.DataModule):
    """The Fashion-MNIST data set as ``d2l.FashionMNIST``, read offline from verified IDX files.

    Parameters
    ----------
    batch_size : int
        Examples per batch (the last batch keeps the remainder, as d2l's loaders do).
    resize : int or (int, int), optional
        Size given to ``transforms.Resize`` (``(width, height)`` for a pair) before
        ``ToTensor``; d2l's default ``(28, 28)`` keeps the images as they are. None skips
        the resize.
    root : str or os.PathLike, optional
        Directory holding the four IDX files (plain or ``.gz``). None searches as
        :func:`gluon_bn.data.find_data_root` does: ``$GLUON_BN_DATA``, MXNet's data
        directory, ``/usr/share/datasets/fashion-mnist``, then a download.
    num_workers : int
        ``DataLoader`` worker processes; 0 reads in this process (see `DEFAULT_NUM_WORKERS`).
    limit, val_limit : int, optional
        Keep only the first `limit` training / `val_limit` validation examples (quick runs);
        a limit above the set size keeps everything.

    Attributes
    ----------
    batch_size, resize, root, num_workers, limit, val_limit
        The arguments, as recorded by ``save_hyperparameters`` (also in ``hparams``).
    train, val : gluon.data.Dataset
        The transformed training (60,000) and validation (10,000) sets; item ``i`` is
        ``(X, y)`` with X float32 (1, H, W) in [0, 1]. Built in the current array mode
        (``mx.np`` after ``npx.set_np()``, else ``mx.nd``).

    Raises
    ------
    gluon_bn.data.DataError
        If the files cannot be found, read or verified; the message lists where it looked
        and how to get them.
    ValueError
        For an invalid argument.
    """

    def __init__(
        self,
        batch_size: int = 64,
        resize: Resize = (28, 28),
        root: Optional[PathLike] = None,
        num_workers: int = DEFAULT_NUM_WORKERS,
        *,
        limit: Optional[int] = None,
        val_limit: Optional[int] = None,
    ) -> None:
        batch_size = _check_positive_int("batch_size", batch_size)
        resize = _check_resize(resize)
        num_workers = _check_positive_int("num_workers", num_workers, allow_zero=True)
        limit = _check_positive_int("limit", limit, allow_none=True)
        val_limit = _check_positive_int("val_limit", val_limit, allow_none=True)
        super().__init__(root=root, num_workers=num_workers)
        # Records every argument above as an attribute and in self.hparams (names with a
        # leading underscore, such as the __class__ cell of super(), are skipped).
        self.save_hyperparameters()
        train_x, train_y, val_x, val_y = load_arrays(FASHION_MNIST, root)
        # Images (N, 28, 28) uint8 -> (N, 28, 28, 1): height, width, channel per item, the
        # layout Resize and ToTensor take (and MXNet's own FashionMNIST holds). Labels (N,).
        self._arrays = {
            True: (train_x[:limit, :, :, np.newaxis], train_y[:limit]),
            False: (val_x[:val_limit, :, :, np.newaxis], val_y[:val_limit]),
        }
        self._datasets: Dict[Tuple[bool, bool], gluon.data.Dataset] = {}

    @property
    def train(self) -> "gluon.data.Dataset":
        """The transformed training set, in the current array mode."""
        return self._dataset(train=True)

    @property
    def val(self) -> "gluon.data.Dataset":
        """The transformed validation set, in the current array mode."""
        return self._dataset(train=False)

    def _dataset(self, train: bool) -> "gluon.data.Dataset":
        """Build (once per array mode) the ``ArrayDataset`` with ``Resize`` + ``ToTensor``.

        Gluon's numpy-mode operators reject ``mx.nd`` inputs and the reverse, so the images
        are held as ``mx.np`` or ``mx.nd`` according to the mode active when the data set
        is first used in that mode, not when this object was made.
        """
        numpy_mode = bool(mx.util.is_np_array())
        key = (train, numpy_mode)
        if key not in self._datasets:
            images, labels = self._arrays[train]
            to_array = mx.np.array if numpy_mode else mx.nd.array
            # Indexing one preloaded array per item is ~3x faster than converting a numpy
            # item on every access (measured: 1.5 s against 4.3 s for 10,000 items).
            dataset = gluon.data.ArrayDataset(to_array(images, dtype=np.uint8), labels)
            self._datasets[key] = dataset.transform_first(image_transform(self.resize))
        return self._datasets[key]

    def get_dataloader(self, train: bool) -> "gluon.data.DataLoader":
        """Return a ``DataLoader`` over the training (shuffled) or validation set (in order).

        Parameters
        ----------
        train : bool
            True for the training set. Its order is redrawn on every pass by Gluon's own
            sampler, from numpy's global RNG (``np.random.seed`` reproduces it), as in d2l.

        Returns
        -------
        gluon.data.DataLoader
            Yields ``(X, y)``: X float32 (B, 1, H, W) in [0, 1], y int32 (B,); ``mx.np``
            arrays in numpy mode, ``mx.nd`` arrays otherwise.
        """
        return gluon.data.DataLoader(
            self._dataset(train), self.batch_size, shuffle=train, num_workers=self.num_workers
        )

    def text_labels(self, indices) -> List[str]:
        """Return the class names of the labels `indices`.

        Parameters
        ----------
        indices : iterable of int, or array
            Labels in 0..9, e.g. a batch's ``y`` (``mx.nd`` or ``mx.np``, shape (B,)).

        Returns
        -------
        list of str
            One name per label, e.g. ``['ankle boot', 't-shirt']``.
        """
        if hasattr(indices, "asnumpy"):  # an mx.nd / mx.np array: one read-back, not B
            indices = indices.asnumpy().reshape(-1)
        return [TEXT_LABELS[int(index)] for index in indices]

    def visualize(self, batch, nrows: int = 1, ncols: int = 8, labels: Sequence[str] = ()) -> None:
        """Show the first ``nrows * ncols`` images of `batch` titled by their labels.

        Parameters
        ----------
        batch : (X, y)
            X of shape (B, 1, H, W), y of shape (B,), as the loaders yield.
        nrows, ncols : int
            Grid of images.
        labels : sequence of str
            Titles; empty means the class names of ``y``.
        """
        images, targets = batch
        titles = list(labels) if len(labels) else self.text_labels(targets)
        # (B, 1, H, W) -> (B, H, W): one grey-scale image per subplot.
        d2l.show_images(images.squeeze(axis=1), nrows, ncols, titles=titles)
