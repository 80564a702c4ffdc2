"""Shared helpers of the tests of gluon_bn.data: tiny synthetic IDX sets and iterator passes.

Imported by tests/test_data_sources.py, test_data_idx.py and test_data_pipelines.py; the
`tiny` fixture is imported from here by the tests that use it.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from gluon_bn import data as D

__all__ = [
    "DEBIAN_DIR",
    "FILES",
    "N_TRAIN",
    "N_TEST",
    "H",
    "W",
    "idx_bytes",
    "write_idx",
    "tiny_arrays",
    "tiny_spec",
    "write_set",
    "tiny",
    "no_env",
    "pairs",
    "epochs",
    "needs_debian",
]

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = D.FASHION_MNIST.files  # train images, train labels, test images, test labels
N_TRAIN, N_TEST, H, W = 50, 20, 8, 7  # small and non-square, so swapped axes would show


# --------------------------------------------------------------------------- helpers


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array of 1 or 3 dimensions as IDX bytes."""
    assert array.dtype == np.uint8 and array.ndim in (1, 3)
    header = bytes([0, 0, 0x08, array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    """Write `array` as an IDX file, gzipped or plain; return the path."""
    content = idx_bytes(array)
    path.write_bytes(gzip.compress(content) if gz else content)
    return path


def tiny_arrays():
    """Synthetic set: image i has first pixel i, so a batch tells which examples it holds."""
    rng = np.random.default_rng(0)
    train_x = rng.integers(0, 256, (N_TRAIN, H, W), dtype=np.uint8)
    test_x = rng.integers(0, 256, (N_TEST, H, W), dtype=np.uint8)
    train_x[:, 0, 0] = np.arange(N_TRAIN)
    test_x[:, 0, 0] = np.arange(N_TEST)
    train_y = rng.integers(0, 10, N_TRAIN).astype(np.uint8)
    test_y = rng.integers(0, 10, N_TEST).astype(np.uint8)
    return train_x, train_y, test_x, test_y


def tiny_spec(arrays) -> D.IdxDataset:
    """An IdxDataset describing `arrays`, with their true SHA-256 sums and no downloads."""
    return D.FASHION_MNIST.replace(
        name="Tiny",
        namespace="tiny",
        num_train=N_TRAIN,
        num_test=N_TEST,
        image_shape=(H, W),
        sha256=tuple(hashlib.sha256(idx_bytes(a)).hexdigest() for a in arrays),
        mxnet_class=None,
        system_dirs=(),
        apt_package=None,
    )


def write_set(directory: Path, arrays, gz=(True, False, True, False)) -> Path:
    """Write the four files of `arrays` into `directory` (created), some gzipped."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, array, zipped in zip(FILES, arrays, gz):
        write_idx(directory / (name + ".gz" if zipped else name), array, zipped)
    return directory


@pytest.fixture
def tiny(tmp_path):
    """(spec, data directory, arrays) of a tiny complete data set."""
    arrays = tiny_arrays()
    return tiny_spec(arrays), write_set(tmp_path / "tiny-data", arrays), arrays


def no_env(tmp_path) -> dict:
    """An injected environment whose MXNet home is an empty temporary directory."""
    return {"MXNET_HOME": str(tmp_path / "mxnet-home")}


def pairs(a, b):
    """zip() that insists on equal lengths (zip(strict=True) needs Python 3.10)."""
    assert len(a) == len(b), (len(a), len(b))
    return zip(a, b)


def epochs(it, n=2):
    """`n` passes over an iterator, as lists of (X, y) numpy pairs."""
    return [[(x.asnumpy(), y.asnumpy()) for x, y in it] for _ in range(n)]


# --------------------------------------------------------------------------- real data

needs_debian = pytest.mark.skipif(
    not DEBIAN_DIR.is_dir(),
    reason=f"{DEBIAN_DIR} is absent (sudo apt-get install dataset-fashion-mnist)",
)
