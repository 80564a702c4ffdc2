"""The input pipelines: batches of Fashion-MNIST / MNIST for Gluon, as d2l's loaders give them.

Two input pipelines give the same batches for the same seed:

* ``"d2l"``: as in the book, a Gluon ``ArrayDataset`` with ``transforms.ToTensor()`` (after
  ``transforms.Resize`` if asked) read through ``gluon.data.DataLoader``, one example at a time
  (`D2lBatchIterator`);
* ``"fast"``: the whole set is preloaded as one float32 NDArray and batches are gathered with
  ``nd.take`` (`FastBatchIterator`).

Both draw each epoch's order from the same `EpochShuffleSampler` stream and save and restore
it with ``state_dict()`` / ``load_state_dict(state)`` (see :mod:`gluon_bn.data.order`).
`load_data` (and `load_data_fashion_mnist`, `load_data_mnist`) checks its arguments, reads
the arrays with :func:`gluon_bn.data.idx.load_arrays` and builds the two iterators.
"""

from __future__ import annotations

import math
from typing import Iterator, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from gluon_bn.data.idx import load_arrays
from gluon_bn.data.order import EpochShuffleSampler, _OrderStateMixin
from gluon_bn.data.sources import FASHION_MNIST, MNIST, IdxDataset, PathLike
from gluon_bn.options import PIPELINES  # the names the run options accept
from gluon_bn.runtime.loader import mx

__all__ = [
    "PIPELINES",
    "EpochShuffleSampler",
    "D2lBatchIterator",
    "FastBatchIterator",
    "load_data",
    "load_data_fashion_mnist",
    "load_data_mnist",
]

Resize = Union[int, Tuple[int, int], None]


# --------------------------------------------------------------------------- argument checks


def _check_positive_int(name: str, value, allow_none: bool = False, allow_zero: bool = False):
    """Return `value` as int, or raise ValueError saying what was expected."""
    if value is None and allow_none:
        return None
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if ok and (int(value) > 0 or (allow_zero and int(value) == 0)):
        return int(value)
    expected = "a non-negative int" if allow_zero else "a positive int"
    if allow_none:
        expected += " or None"
    raise ValueError(f"{name} must be {expected}, got {value!r}")


def _check_resize(resize) -> Resize:
    """Validate `resize`: None, a positive int, or a (width, height) pair of positive ints."""
    if resize is None:
        return None
    if isinstance(resize, (tuple, list)) and len(resize) == 2:
        return tuple(_check_positive_int("resize", r) for r in resize)
    return _check_positive_int("resize", resize)


def image_transform(resize: Resize = None) -> "mx.gluon.Block":
    """Return d2l's per-image transform: ``Resize(resize)`` (if given), then ``ToTensor``.

    (H, W, 1) uint8 -> (1, H', W') float32 divided by 255: the channel moves first.
    """
    transforms = mx.gluon.data.vision.transforms
    steps = [transforms.ToTensor()]
    if resize is not None:
        steps.insert(0, transforms.Resize(resize))
    return transforms.Compose(steps)


def _resolve_seed(seed: Optional[int]) -> int:
    """`seed` itself, or one drawn from numpy's global RNG (so numpy seeding reproduces it)."""
    if seed is None:
        return int(np.random.randint(0, 2**31 - 1))
    return _check_positive_int("seed", seed, allow_zero=True)


def _check_arrays(images: np.ndarray, labels: np.ndarray) -> None:
    """Images (N, H, W) and labels (N,) of the same N, or ValueError."""
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(
            f"expected images (N, H, W) and labels (N,), got shapes "
            f"{images.shape} and {labels.shape}"
        )


# --------------------------------------------------------------------------- iterators and loaders


class D2lBatchIterator(_OrderStateMixin):
    """Batches as in d2l: ``ArrayDataset`` + ``ToTensor`` through ``gluon.data.DataLoader``.

    The shuffling state is saved and restored with `state_dict` and `load_state_dict`.

    Parameters
    ----------
    images : numpy.ndarray
        uint8 images of shape (N, H, W).
    labels : numpy.ndarray
        Integer labels of shape (N,).
    batch_size : int
        Examples per batch; the last batch keeps the remainder.
    shuffle : bool
        Draw a new order every epoch (training) or keep the file order (test).
    seed : int, optional
        Seed of the epoch permutations; None draws one from numpy's global RNG.
    resize : int or (int, int), optional
        Size given to ``transforms.Resize`` before ``ToTensor``.
    num_workers : int
        DataLoader worker processes (d2l uses 4 on Linux; 0 reads in this process).

    Yields
    ------
    X : NDArray
        float32 (B, 1, H', W') in [0, 1], on cpu.
    y : NDArray
        int32 (B,), on cpu.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        *,
        shuffle: bool,
        seed: Optional[int] = None,
        resize: Resize = None,
        num_workers: int = 0,
    ) -> None:
        _check_arrays(images, labels)
        self.batch_size = _check_positive_int("batch_size", batch_size)
        self.num_examples = len(labels)
        num_workers = _check_positive_int("num_workers", num_workers, allow_zero=True)
        # Images as MXNet's FashionMNIST holds them: uint8 NDArray (N, H, W, 1), HWC per item.
        data = mx.nd.array(images[..., np.newaxis], dtype=np.uint8)
        dataset = mx.gluon.data.ArrayDataset(data, labels.astype(np.int32))
        dataset = dataset.transform_first(image_transform(_check_resize(resize)))
        # The DataLoader draws the sampler's indices in this process, also with workers.
        self._sampler = (
            EpochShuffleSampler(self.num_examples, _resolve_seed(seed)) if shuffle else None
        )
        sampler = self._sampler or mx.gluon.data.SequentialSampler(self.num_examples)
        self._loader = mx.gluon.data.DataLoader(
            dataset,
            self.batch_size,
            shuffle=False,
            sampler=sampler,
            last_batch="keep",
            num_workers=num_workers,
        )

    def __iter__(self) -> Iterator[Tuple["mx.nd.NDArray", "mx.nd.NDArray"]]:
        return iter(self._loader)

    def __len__(self) -> int:
        return len(self._loader)


class FastBatchIterator(_OrderStateMixin):
    """Batches gathered with ``nd.take`` from the whole set preloaded as one NDArray.

    Without `resize` the set is held as float32 (N, 1, H, W) / 255 (what ``ToTensor``
    computes); with `resize` it is held as uint8 (N, H, W, 1) and each batch goes through
    the same ``Resize`` and ``ToTensor`` operators as the d2l pipeline, batched.
    Parameters, batches, `state_dict` and `load_state_dict` are as for `D2lBatchIterator`
    (without ``num_workers``).
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        *,
        shuffle: bool,
        seed: Optional[int] = None,
        resize: Resize = None,
    ) -> None:
        _check_arrays(images, labels)
        self.batch_size = _check_positive_int("batch_size", batch_size)
        self.num_examples = len(labels)
        # The permutation stream of the d2l pipeline, drawn without a DataLoader.
        self._sampler = (
            EpochShuffleSampler(self.num_examples, _resolve_seed(seed)) if shuffle else None
        )
        resize = _check_resize(resize)
        if resize is None:
            self._transform = None
            # (N, H, W) -> (N, 1, H, W) float32 in [0, 1]; x / 255 in float32, as ToTensor does.
            self._x = mx.nd.array(images[:, np.newaxis], dtype=np.uint8).astype(np.float32)
            self._x /= 255
        else:
            transforms = mx.gluon.data.vision.transforms
            # Resize and ToTensor accept a batch (B, H, W, C) -> (B, C, H', W').
            self._transform = transforms.Compose([transforms.Resize(resize), transforms.ToTensor()])
            self._x = mx.nd.array(images[..., np.newaxis], dtype=np.uint8)  # (N, H, W, 1)
        self._y = mx.nd.array(labels, dtype=np.int32)  # (N,)

    def __iter__(self) -> Iterator[Tuple["mx.nd.NDArray", "mx.nd.NDArray"]]:
        n, size = self.num_examples, self.batch_size
        order = self._sampler.epoch_order() if self._sampler is not None else None  # (N,)
        for start in range(0, n, size):
            stop = min(start + size, n)
            if order is None:
                x, y = self._x[start:stop], self._y[start:stop]
            else:
                index = mx.nd.array(order[start:stop], dtype=np.int64)  # (B,)
                x = mx.nd.take(self._x, index, axis=0)
                y = mx.nd.take(self._y, index, axis=0)
            if self._transform is not None:
                x = self._transform(x)
            yield x, y

    def __len__(self) -> int:
        return math.ceil(self.num_examples / self.batch_size)


def load_data(
    spec: IdxDataset,
    batch_size: int,
    resize: Resize = None,
    root: Optional[PathLike] = None,
    *,
    pipeline: str = "d2l",
    seed: Optional[int] = None,
    limit: Optional[int] = None,
    test_limit: Optional[int] = None,
    num_workers: int = 0,
    verify: bool = True,
    env: Optional[Mapping[str, str]] = None,
    system_dirs: Optional[Sequence[PathLike]] = None,
    download: bool = True,
):
    """Load any `IdxDataset` and return ``(train_iter, test_iter)`` like d2l does.

    Parameters
    ----------
    spec : IdxDataset
        The data set.
    batch_size : int
        Positive batch size.
    resize : int or (int, int), optional
        Resize images (``transforms.Resize``) before ``ToTensor``.
    root : str or os.PathLike, optional
        Explicit data directory (see `find_data_root`).
    pipeline : {"d2l", "fast"}
        Which input pipeline to build; both give the same batches for the same seed.
    seed : int, optional
        Seed of the training-set shuffling; None draws one from numpy's global RNG.
    limit, test_limit : int, optional
        Keep only the first `limit` training / `test_limit` test examples (quick runs);
        a limit above the set size keeps everything.
    num_workers : int
        DataLoader workers of the d2l pipeline (d2l uses 4 on Linux); must be 0 for "fast".
    verify, env, system_dirs, download
        Passed to `load_arrays`.

    Returns
    -------
    train_iter, test_iter : D2lBatchIterator or FastBatchIterator
        Training batches shuffled anew every epoch, test batches in file order; both
        yield ``(X, y)``: float32 (B, 1, H, W) in [0, 1] and int32 (B,).

    Raises
    ------
    ValueError
        For an invalid argument.
    DataError
        If the data cannot be found or verified.
    """
    batch_size = _check_positive_int("batch_size", batch_size)
    if pipeline not in PIPELINES:
        raise ValueError(f"pipeline must be one of {PIPELINES}, got {pipeline!r}")
    limit = _check_positive_int("limit", limit, allow_none=True)
    test_limit = _check_positive_int("test_limit", test_limit, allow_none=True)
    num_workers = _check_positive_int("num_workers", num_workers, allow_zero=True)
    if pipeline == "fast" and num_workers:
        raise ValueError("num_workers is only used by the d2l pipeline; pass 0 with 'fast'")
    resize = _check_resize(resize)
    seed = _resolve_seed(seed)

    train_x, train_y, test_x, test_y = load_arrays(
        spec, root, verify=verify, env=env, system_dirs=system_dirs, download=download
    )
    # Slicing with None keeps everything.
    train_x, train_y = train_x[:limit], train_y[:limit]
    test_x, test_y = test_x[:test_limit], test_y[:test_limit]

    if pipeline == "d2l":
        extra = {"num_workers": num_workers}
        make = D2lBatchIterator
    else:
        extra = {}
        make = FastBatchIterator
    train_iter = make(train_x, train_y, batch_size, shuffle=True, seed=seed, resize=resize, **extra)
    test_iter = make(test_x, test_y, batch_size, shuffle=False, resize=resize, **extra)
    return train_iter, test_iter


def load_data_fashion_mnist(
    batch_size: int,
    resize: Resize = None,
    root: Optional[PathLike] = None,
    *,
    pipeline: str = "d2l",
    seed: Optional[int] = None,
    limit: Optional[int] = None,
    test_limit: Optional[int] = None,
    num_workers: int = 0,
    verify: bool = True,
):
    """Load Fashion-MNIST and return ``(train_iter, test_iter)``, as d2l's function does.

    Parameters
    ----------
    batch_size, resize, root, pipeline, seed, limit, test_limit, num_workers, verify
        See `load_data`.

    Returns
    -------
    train_iter, test_iter
        See `load_data`.
    """
    return load_data(
        FASHION_MNIST,
        batch_size,
        resize,
        root,
        pipeline=pipeline,
        seed=seed,
        limit=limit,
        test_limit=test_limit,
        num_workers=num_workers,
        verify=verify,
    )


def load_data_mnist(
    batch_size: int,
    resize: Resize = None,
    root: Optional[PathLike] = None,
    *,
    pipeline: str = "d2l",
    seed: Optional[int] = None,
    limit: Optional[int] = None,
    test_limit: Optional[int] = None,
    num_workers: int = 0,
    verify: bool = True,
):
    """Load MNIST digits and return ``(train_iter, test_iter)``, like `load_data_fashion_mnist`.

    Parameters
    ----------
    batch_size, resize, root, pipeline, seed, limit, test_limit, num_workers, verify
        See `load_data`.

    Returns
    -------
    train_iter, test_iter
        See `load_data`.
    """
    return load_data(
        MNIST,
        batch_size,
        resize,
        root,
        pipeline=pipeline,
        seed=seed,
        limit=limit,
        test_limit=test_limit,
        num_workers=num_workers,
        verify=verify,
    )
