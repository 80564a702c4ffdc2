"""Reading and verifying IDX files: `read_idx`, `load_arrays`, `verify_files` and `identify`.

An IDX file may be plain or gzipped (recognised by its magic bytes, not its name). Its magic
number, dimensions and length are checked on every read; `load_arrays` also checks each
file's counts, image shape and label range against its `IdxDataset`.

Integrity, file by file, with ``verify=True`` (the default):

* **Fashion-MNIST, all four files** and **MNIST, training labels and both test files**: the
  SHA-256 of the *decompressed* IDX content must match the spec's, so a plain file, the
  original ``.gz`` and a re-compressed ``.gz`` (Debian's) all pass, and nothing else does.
  Fashion-MNIST's sums were computed from Debian's ``dataset-fashion-mnist``; MNIST's from
  copies of the original ``.gz`` files whose MD5 and SHA-1 equal those torchvision and MXNet
  publish (see :data:`gluon_bn.data.sources.MNIST`).
* **MNIST training images** (no reference copy of its content was at hand): a ``.gz`` whose
  SHA-1 equals the one MXNet's ``gluon.data.vision.MNIST`` checks (read from MXNet at run
  time) is the original file, byte for byte. Any other copy (plain, or re-compressed) is
  accepted on its structure alone: magic number, dimensions, length, 60000 images of 28x28;
  a `DataWarning` says so; Fashion-MNIST's training images are refused by their SHA-256.
  A download is checked by MXNet against that SHA-1 in any case.

A file whose content is another known set's (Fashion-MNIST's labels where MNIST's belong)
gets a checksum error that says which set it is from; `identify` tells the sets apart.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import warnings
import zlib
from pathlib import Path
from typing import Mapping, Optional, Sequence, Tuple

import numpy as np

from gluon_bn.data.sources import (
    FASHION_MNIST,
    SPECS,
    DataError,
    DataWarning,
    IdxDataset,
    PathLike,
    _file_in,
    find_data_root,
    mxnet_sources,
)

__all__ = ["read_idx", "load_arrays", "verify_files", "identify"]


# IDX magic numbers: two zero bytes, the element type (0x08 = unsigned byte) and the number
# of dimensions. Only the two kinds that (Fashion-)MNIST uses are accepted.
_IDX_LABELS = 0x00000801  # uint8, 1-D: (N,)
_IDX_IMAGES = 0x00000803  # uint8, 3-D: (N, H, W)
_GZIP_MAGIC = b"\x1f\x8b"


# --------------------------------------------------------------------------- reading IDX


def _read_raw(path: Path) -> bytes:
    """Return the bytes of a file as stored (compressed or not)."""
    try:
        return path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read the IDX file {path}:\n  {err}") from err


def _read_idx_bytes(path: Path, raw: Optional[bytes] = None) -> bytes:
    """Return the decompressed content of an IDX file (gzip detected by its magic bytes)."""
    raw = _read_raw(path) if raw is None else raw
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
            f"{path} is truncated: its header needs {header} bytes, the file has {len(data)}."
        )
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
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
    hints = [
        f"  - delete {path} and run again: it is fetched again when it lies in MXNet's "
        "data directory (~/.mxnet/datasets/...)"
    ]
    if spec.apt_package:
        hints.append(
            f"  - if it comes from the Debian package: "
            f"sudo apt-get install --reinstall {spec.apt_package}"
        )
    hints.append("  - or pass verify=False if you trust this copy")
    return "How to fix:\n" + "\n".join(hints)


def _owner(index: int, sha256: str) -> Optional[str]:
    """The name of the known set whose file number `index` has this content, if any."""
    return next((s.name for s in SPECS.values() if s.sha256[index] == sha256), None)


def _not_another_sets(spec: IdxDataset, index: int, got: str) -> str:
    """The line naming the set a wrong file belongs to ("" when it is no known set's)."""
    owner = _owner(index, got)
    if owner and owner != spec.name:
        return f"  This is {owner}'s {spec.files[index]}, not {spec.name}'s.\n"
    return ""


def _check_sha256(spec: IdxDataset, index: int, path: Path, data: bytes) -> None:
    """Raise DataError unless the decompressed content has the spec's SHA-256."""
    want, got = spec.sha256[index], hashlib.sha256(data).hexdigest()
    if got == want:
        return
    raise DataError(
        f"checksum mismatch for {path} ({spec.name}):\n"
        f"  SHA-256 of the decompressed content is {got}\n"
        f"  expected                               {want}\n"
        + _not_another_sets(spec, index, got)
        + _fix_hint(spec, path)
    )


def _check_without_sum(spec: IdxDataset, index: int, path: Path, raw: bytes, data: bytes) -> None:
    """A file whose content sum is unknown: refuse another set's, warn unless MXNet's .gz."""
    other = _not_another_sets(spec, index, hashlib.sha256(data).hexdigest())
    if other:
        raise DataError(f"{path} is not {spec.name}'s:\n{other}" + _fix_hint(spec, path))
    if spec.mxnet_class is not None and raw[:2] == _GZIP_MAGIC:
        if hashlib.sha1(raw).hexdigest() == mxnet_sources(spec)[index][2]:
            return
        form = "a .gz other than the original (re-compressed?)"
    else:
        form = "a plain file" if raw[:2] != _GZIP_MAGIC else "a .gz"
    warnings.warn(
        f"{path} ({spec.name}) is {form}; no checksum of its content is known, so only its "
        f"structure and counts were checked",
        DataWarning,
        stacklevel=2,
    )


def _check_order(spec: IdxDataset) -> list:
    """File indices, those with a content checksum first (a wrong set fails before a warning)."""
    return sorted(range(4), key=lambda index: spec.sha256[index] is None)


def _load_file(spec: IdxDataset, directory: Path, index: int, verify: bool) -> np.ndarray:
    """Read file number `index` of `spec` from `directory` and check hash and structure."""
    name = spec.files[index]
    path = _file_in(directory, name)
    if path is None:
        raise DataError(f"{directory} lacks {name} (plain or .gz).")
    raw = _read_raw(path)
    data = _read_idx_bytes(path, raw)
    if verify and spec.sha256[index] is not None:
        _check_sha256(spec, index, path, data)
    array = _parse_idx(data, path)
    is_images = index % 2 == 0  # files alternate images, labels
    count = spec.num_train if index < 2 else spec.num_test
    shape = (count, *spec.image_shape) if is_images else (count,)
    if array.shape != shape:
        raise DataError(
            f"{path} does not hold {spec.name} {'images' if is_images else 'labels'}:\n"
            f"  shape {array.shape}, expected {shape}.\n" + _fix_hint(spec, path)
        )
    if not is_images and array.size and int(array.max()) >= spec.num_classes:
        raise DataError(
            f"{path} has label {int(array.max())}, "
            f"expected 0..{spec.num_classes - 1}.\n" + _fix_hint(spec, path)
        )
    if verify and spec.sha256[index] is None:
        _check_without_sum(spec, index, path, raw, data)
    return array


def load_arrays(
    spec: IdxDataset = FASHION_MNIST,
    root: Optional[PathLike] = None,
    *,
    verify: bool = True,
    env: Optional[Mapping[str, str]] = None,
    system_dirs: Optional[Sequence[PathLike]] = None,
    download: bool = True,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
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
    loaded = {i: _load_file(spec, directory, i, verify) for i in _check_order(spec)}
    train_x, train_y, test_x, test_y = (loaded[i] for i in range(4))
    return train_x, train_y.astype(np.int32), test_x, test_y.astype(np.int32)


def verify_files(spec: IdxDataset, directory: PathLike, *, verify: bool = True) -> Path:
    """Check the four files of `spec` in `directory` as `load_arrays` does, keeping nothing.

    Parameters
    ----------
    spec : IdxDataset
        The data set the files should hold.
    directory : str or os.PathLike
        A directory holding the four files (see `find_data_root`).
    verify : bool
        Check content checksums where the spec has them (structure is always checked).

    Returns
    -------
    pathlib.Path
        `directory`.

    Raises
    ------
    DataError
        At the first file that is missing, unreadable or fails a check.
    """
    directory = Path(directory)
    for index in _check_order(spec):
        _load_file(spec, directory, index, verify)
    return directory


def identify(directory: PathLike) -> Optional[str]:
    """Return the name in `SPECS` of the known set whose training labels `directory` holds.

    Only that file (the smallest with a checksum in every spec) is read, so this is quick;
    it names the set, it does not verify it (`verify_files` does).

    Parameters
    ----------
    directory : str or os.PathLike
        A directory holding a ``train-labels-idx1-ubyte`` file, plain or gzipped.

    Returns
    -------
    str or None
        E.g. ``"fashion-mnist"``; None when the file is absent, unreadable or unknown.
    """
    index = 1  # train labels: the same name in every spec of SPECS
    path = _file_in(Path(directory), FASHION_MNIST.files[index])
    if path is None:
        return None
    try:
        digest = hashlib.sha256(_read_idx_bytes(path)).hexdigest()
    except DataError:
        return None
    return next((key for key, spec in SPECS.items() if spec.sha256[index] == digest), None)
