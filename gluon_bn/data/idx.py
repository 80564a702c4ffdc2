"""Reading and verifying IDX files: `read_idx`, and `load_arrays` for a whole data set.

An IDX file may be plain or gzipped (recognised by its magic bytes, not its name). Its magic
number, dimensions and length are checked on every read; `load_arrays` also checks each
file's counts, image shape and label range against its `IdxDataset`.

Integrity: Fashion-MNIST files are checked against the SHA-256 of their *decompressed* IDX
content, so a plain file, MXNet's ``.gz`` and Debian's re-compressed ``.gz`` all pass. For
MNIST no reference copy was at hand to compute those sums, so its ``sha256`` entries are
``None``: its downloads are verified by MXNet's SHA-1 of the ``.gz`` (inside MXNet's
``download``), and at load time only the IDX structure (magic number, dimensions, length,
counts, label range) is checked.
"""
from __future__ import annotations

import gzip
import hashlib
import math
import zlib
from pathlib import Path
from typing import Mapping, Optional, Sequence, Tuple

import numpy as np

from gluon_bn.data.sources import (FASHION_MNIST, DataError, IdxDataset, PathLike, _file_in,
                                   find_data_root)

__all__ = ["read_idx", "load_arrays"]


# IDX magic numbers: two zero bytes, the element type (0x08 = unsigned byte) and the number
# of dimensions. Only the two kinds that (Fashion-)MNIST uses are accepted.
_IDX_LABELS = 0x00000801  # uint8, 1-D: (N,)
_IDX_IMAGES = 0x00000803  # uint8, 3-D: (N, H, W)
_GZIP_MAGIC = b"\x1f\x8b"


# --------------------------------------------------------------------------- reading IDX

def _read_idx_bytes(path: Path) -> bytes:
    """Return the decompressed content of an IDX file (gzip detected by its magic bytes)."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read the IDX file {path}:\n  {err}") from err
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise DataError(
            f"the gzip file {path} is corrupt or incomplete ({type(err).__name__}: {err}).\n"
            "Delete it and fetch it again (a download stopped half-way leaves such a file)."
        ) from err


def _parse_idx(data: bytes, path: Path) -> np.ndarray:
    """Parse decompressed IDX bytes into a uint8 array of the dimensions in the header."""
    if len(data) < 4:
        raise DataError(f"{path} is not an IDX file: only {len(data)} bytes long.")
    magic = int.from_bytes(data[:4], "big")
    if magic not in (_IDX_LABELS, _IDX_IMAGES):
        raise DataError(
            f"{path} is not an IDX file of labels or images:\n"
            f"  magic number 0x{magic:08x}, expected 0x{_IDX_LABELS:08x} (uint8 labels, 1-D)"
            f" or 0x{_IDX_IMAGES:08x} (uint8 images, 3-D)."
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim  # magic, then one big-endian uint32 per dimension
    if len(data) < header:
        raise DataError(
            f"{path} is truncated: its header needs {header} bytes, the file has {len(data)}.")
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = math.prod(dims)
    actual = len(data) - header
    if actual != expected:
        what = "truncated" if actual < expected else "longer than its header says"
        raise DataError(
            f"the IDX file {path} is {what}:\n"
            f"  header: dimensions {dims}, so {expected} bytes of data are expected,\n"
            f"  found {actual} bytes (decompressed, after the {header}-byte header).\n"
            "Delete the file and fetch it again."
        )
    # A writable copy (frombuffer over bytes is read-only); shape is exactly `dims`.
    return np.frombuffer(data, dtype=np.uint8, count=expected, offset=header).reshape(dims).copy()


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file of uint8 labels (1-D) or images (3-D), plain or gzipped.

    Parameters
    ----------
    path : str or os.PathLike
        The file. Gzip is recognised by its magic bytes (``1f 8b``), not by the name.

    Returns
    -------
    numpy.ndarray
        uint8 array of shape ``(N,)`` for labels or ``(N, H, W)`` for images.

    Raises
    ------
    DataError
        If the file cannot be read, is corrupt gzip, has a wrong magic number, or its
        length does not match the dimensions in its header.
    """
    path = Path(path)
    return _parse_idx(_read_idx_bytes(path), path)


# --------------------------------------------------------------------------- loading arrays

def _fix_hint(spec: IdxDataset, path: Path) -> str:
    """How to replace a bad file, depending on where it lies."""
    hints = [f"  - delete {path} and run again: it is fetched again when it lies in MXNet's "
             "data directory (~/.mxnet/datasets/...)"]
    if spec.apt_package:
        hints.append(f"  - if it comes from the Debian package: "
                     f"sudo apt-get install --reinstall {spec.apt_package}")
    hints.append("  - or pass verify=False if you trust this copy")
    return "How to fix:\n" + "\n".join(hints)


def _load_file(spec: IdxDataset, directory: Path, index: int, verify: bool) -> np.ndarray:
    """Read file number `index` of `spec` from `directory` and check hash and structure."""
    name = spec.files[index]
    path = _file_in(directory, name)
    if path is None:
        raise DataError(f"{directory} lacks {name} (plain or .gz).")
    data = _read_idx_bytes(path)
    want = spec.sha256[index]
    if verify and want is not None:
        got = hashlib.sha256(data).hexdigest()
        if got != want:
            raise DataError(
                f"checksum mismatch for {path} ({spec.name}):\n"
                f"  SHA-256 of the decompressed content is {got}\n"
                f"  expected                               {want}\n"
                + _fix_hint(spec, path)
            )
    array = _parse_idx(data, path)
    is_images = index % 2 == 0  # files alternate images, labels
    count = spec.num_train if index < 2 else spec.num_test
    shape = (count, *spec.image_shape) if is_images else (count,)
    if array.shape != shape:
        raise DataError(
            f"{path} does not hold {spec.name} {'images' if is_images else 'labels'}:\n"
            f"  shape {array.shape}, expected {shape}.\n" + _fix_hint(spec, path))
    if not is_images and array.size and int(array.max()) >= spec.num_classes:
        raise DataError(f"{path} has label {int(array.max())}, "
                        f"expected 0..{spec.num_classes - 1}.\n" + _fix_hint(spec, path))
    return array


def load_arrays(spec: IdxDataset = FASHION_MNIST, root: Optional[PathLike] = None, *,
                verify: bool = True, env: Optional[Mapping[str, str]] = None,
                system_dirs: Optional[Sequence[PathLike]] = None,
                download: bool = True) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Find, read and check the four IDX files of `spec` and return them as numpy arrays.

    Parameters
    ----------
    spec : IdxDataset
        The data set, `FASHION_MNIST` by default.
    root : str or os.PathLike, optional
        Explicit data directory (see `find_data_root`).
    verify : bool
        Check the SHA-256 of each file's decompressed content where the spec has one.
        Counts, image shape and label range are always checked.
    env, system_dirs, download
        Passed to `find_data_root`.

    Returns
    -------
    train_x, train_y, test_x, test_y : numpy.ndarray
        Images uint8 of shape (N, H, W); labels int32 of shape (N,). Nothing is cached.

    Raises
    ------
    DataError
        If the files are missing, unreadable, corrupt, or fail a check.
    """
    directory = find_data_root(spec, root, env=env, system_dirs=system_dirs, download=download)
    train_x, train_y, test_x, test_y = (_load_file(spec, directory, i, verify) for i in range(4))
    return train_x, train_y.astype(np.int32), test_x, test_y.astype(np.int32)
