"""Fashion-MNIST / MNIST: find the IDX files, read and verify them, and batch them for Gluon.

Where the data comes from (first match wins, see `find_data_root`):

1. the ``root`` argument (``--data-root``),
2. the environment variable ``GLUON_BN_DATA``,
3. MXNet's own data directory, ``$MXNET_HOME/datasets/<namespace>`` (``~/.mxnet`` by default),
4. the system directory of a Debian package (``/usr/share/datasets/fashion-mnist`` from
   ``dataset-fashion-mnist``),
5. otherwise a download into (3) with MXNet's downloader and MXNet's own URLs and SHA-1 sums.

Integrity: Fashion-MNIST files are checked against the SHA-256 of their *decompressed* IDX
content, so a plain file, MXNet's ``.gz`` and Debian's re-compressed ``.gz`` all pass. For
MNIST no reference copy was at hand to compute those sums, so its ``sha256`` entries are
``None``: its downloads are verified by MXNet's SHA-1 of the ``.gz`` (inside MXNet's
``download``), and at load time only the IDX structure (magic number, dimensions, length,
counts, label range) is checked.

Two input pipelines give the same batches for the same seed:

* ``"d2l"``: as in the book, a Gluon ``ArrayDataset`` with ``transforms.ToTensor()`` (after
  ``transforms.Resize`` if asked) read through ``gluon.data.DataLoader``, one example at a time;
* ``"fast"``: the whole set is preloaded as one float32 NDArray and batches are gathered with
  ``nd.take``.

Both draw each epoch's order from ``numpy.random.default_rng(seed)``, created once per
iterator, with one ``rng.permutation(n)`` per pass (``__iter__`` call). Where that stream
stands is the iterators' only state: ``state_dict()`` returns it as JSON-serialisable data
and ``load_state_dict(state)`` restores it (checkpoints use these to resume exactly).
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import math
import os
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from gluon_bn._mxnet import mx

__all__ = [
    "DataError",
    "IdxDataset",
    "FASHION_MNIST",
    "MNIST",
    "ENV_VAR",
    "PIPELINES",
    "read_idx",
    "mxnet_sources",
    "find_data_root",
    "load_arrays",
    "ORDER_STATE_KIND",
    "EpochShuffleSampler",
    "D2lBatchIterator",
    "FastBatchIterator",
    "load_data",
    "load_data_fashion_mnist",
    "load_data_mnist",
]

PathLike = Union[str, "os.PathLike[str]"]
Resize = Union[int, Tuple[int, int], None]

ENV_VAR = "GLUON_BN_DATA"
from gluon_bn.options import PIPELINES  # noqa: E402  (the names the run options accept)

# IDX magic numbers: two zero bytes, the element type (0x08 = unsigned byte) and the number
# of dimensions. Only the two kinds that (Fashion-)MNIST uses are accepted.
_IDX_LABELS = 0x00000801  # uint8, 1-D: (N,)
_IDX_IMAGES = 0x00000803  # uint8, 3-D: (N, H, W)
_GZIP_MAGIC = b"\x1f\x8b"
# MXNet builds its dataset URLs as _get_repo_file_url('gluon/dataset/' + cls._namespace, name)
# inside MNIST._get_data; the prefix is a literal there, not an attribute, so it is repeated here.
_MXNET_REPO_PREFIX = "gluon/dataset/"


class DataError(Exception):
    """The data set could not be found, read or verified; the message says how to fix it."""


@dataclass(frozen=True)
class IdxDataset:
    """Description of an MNIST-like data set stored as four IDX files.

    Parameters
    ----------
    name : str
        Human-readable name used in messages, e.g. ``"Fashion-MNIST"``.
    namespace : str
        Directory name under ``$MXNET_HOME/datasets`` and MXNet's repository namespace.
    files : tuple of 4 str
        File names without ``.gz``, in the order train images, train labels, test images,
        test labels. Each may be present plain or gzipped.
    num_train, num_test : int
        Expected number of training and test examples.
    image_shape : tuple of 2 int
        Expected (height, width) of every image.
    num_classes : int
        Labels must lie in ``0 .. num_classes - 1``.
    sha256 : tuple of 4 (str or None)
        SHA-256 of the decompressed content of each file in ``files``; ``None`` skips the
        content check for that file (structure and counts are still checked).
    mxnet_class : str or None
        Name of the class in ``mxnet.gluon.data.vision`` whose download information
        (``_train_data`` ... ``_namespace``) is used to download missing files.
    system_dirs : tuple of str
        Directories where an operating-system package installs the files.
    apt_package : str or None
        Debian package that provides the files, for the "how to get it" message.
    """

    name: str
    namespace: str
    files: Tuple[str, str, str, str]
    num_train: int
    num_test: int
    image_shape: Tuple[int, int] = (28, 28)
    num_classes: int = 10
    sha256: Tuple[Optional[str], Optional[str], Optional[str], Optional[str]] = (
        None, None, None, None)
    mxnet_class: Optional[str] = None
    system_dirs: Tuple[str, ...] = ()
    apt_package: Optional[str] = None

    def replace(self, **changes) -> "IdxDataset":
        """Return a copy with some fields changed (e.g. a tiny spec for tests).

        Parameters
        ----------
        **changes
            Field names and their new values.

        Returns
        -------
        IdxDataset
            The modified copy.
        """
        return dataclasses.replace(self, **changes)


_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

FASHION_MNIST = IdxDataset(
    name="Fashion-MNIST",
    namespace="fashion-mnist",
    files=_MNIST_FILES,
    num_train=60000,
    num_test=10000,
    # SHA-256 of the decompressed IDX bytes, computed from Debian's dataset-fashion-mnist files
    # (gzip.open(f).read() then hashlib.sha256); equal to the content of MXNet's downloads.
    sha256=(
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
    mxnet_class="FashionMNIST",
    system_dirs=("/usr/share/datasets/fashion-mnist",),
    apt_package="dataset-fashion-mnist",
)

MNIST = IdxDataset(
    name="MNIST",
    namespace="mnist",
    files=_MNIST_FILES,
    num_train=60000,
    num_test=10000,
    # No local copy to hash: downloads are checked by MXNet's SHA-1 of the .gz, loads by
    # structure and counts only (see the module docstring).
    sha256=(None, None, None, None),
    mxnet_class="MNIST",
    system_dirs=("/usr/share/datasets/mnist",),
    apt_package=None,
)


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


# --------------------------------------------------------------------------- finding the files

def mxnet_sources(spec: IdxDataset) -> Tuple[Tuple[str, str, str], ...]:
    """Return MXNet's download information for the four files of `spec`.

    The file names, SHA-1 sums and namespace are read at run time from the attributes
    MXNet's dataset class sets (``_train_data``, ``_train_label``, ``_test_data``,
    ``_test_label``, ``_namespace``); the URL is built as MXNet does, honouring
    ``MXNET_GLUON_REPO``.

    Parameters
    ----------
    spec : IdxDataset
        A spec with ``mxnet_class`` set.

    Returns
    -------
    tuple of (file_name, url, sha1)
        One entry per file, in the order of ``spec.files``; ``file_name`` ends in ``.gz``.

    Raises
    ------
    DataError
        If the spec has no MXNet class, or MXNet lacks it.
    """
    if spec.mxnet_class is None:
        raise DataError(f"{spec.name} has no MXNet download information (mxnet_class is None).")
    vision = mx.gluon.data.vision
    cls = getattr(vision, spec.mxnet_class, None)
    if cls is None:
        raise DataError(f"mxnet.gluon.data.vision has no class {spec.mxnet_class!r}.")

    class _Probe(cls):  # MXNet sets the attributes in __init__, then downloads in _get_data
        def _get_data(self) -> None:
            pass

    # An existing directory, so that MXNet's __init__ creates nothing.
    probe = _Probe(root=tempfile.gettempdir())
    url_of = mx.gluon.utils._get_repo_file_url  # pylint: disable=protected-access
    namespace = _MXNET_REPO_PREFIX + probe._namespace  # pylint: disable=protected-access
    # Order of spec.files: train images, train labels, test images, test labels.
    pairs = (probe._train_data, probe._train_label,  # pylint: disable=protected-access
             probe._test_data, probe._test_label)  # pylint: disable=protected-access
    return tuple((name, url_of(namespace, name), sha1) for name, sha1 in pairs)


def _file_in(directory: Path, name: str) -> Optional[Path]:
    """Return ``directory/name`` or ``directory/name.gz``, whichever is a file, else None."""
    for candidate in (directory / name, directory / (name + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def _missing_files(directory: Path, spec: IdxDataset) -> list:
    """Names of the files of `spec` that `directory` lacks (in neither form)."""
    return [name for name in spec.files if _file_in(directory, name) is None]


def _mxnet_home(env: Optional[Mapping[str, str]]) -> Path:
    """MXNet's data directory: MXNET_HOME, else ~/.mxnet (as mxnet.base.data_dir)."""
    if env is None:
        data_dir = getattr(mx.base, "data_dir", None)
        if data_dir is not None:
            return Path(data_dir()).expanduser()
        env = os.environ
    home = env.get("MXNET_HOME")
    if home:
        return Path(home).expanduser()
    default = getattr(mx.base, "data_dir_default", None)
    return Path(default() if default is not None else "~/.mxnet").expanduser()


def _how_to_get(spec: IdxDataset, mxnet_dir: Path) -> str:
    """The 'how to get the data' lines shared by the not-found messages."""
    lines = ["How to get the data:"]
    if spec.apt_package:
        where = f" (installs {spec.system_dirs[0]})" if spec.system_dirs else ""
        lines.append(f"  - sudo apt-get install {spec.apt_package}{where}")
    lines.append(f"  - or set {ENV_VAR} (or pass --data-root / root=) to a directory holding the "
                 "four files")
    lines.append(f"  - or connect to the internet: MXNet then downloads them into {mxnet_dir}")
    lines.append("Files needed, each plain or gzipped (.gz): " + ", ".join(spec.files))
    return "\n".join(lines)


def _describe(directory: Path, spec: IdxDataset) -> str:
    """One 'where it looked' line: the directory and what it lacks."""
    if not directory.is_dir():
        return f"  {directory}  (no such directory)"
    return f"  {directory}  (missing: {', '.join(_missing_files(directory, spec))})"


def _complete_dir(candidates: Sequence[Path], spec: IdxDataset) -> Optional[Path]:
    """The first directory among `candidates` that holds all four files."""
    for directory in candidates:
        if directory.is_dir() and not _missing_files(directory, spec):
            return directory
    return None


def _download(spec: IdxDataset, target: Path, retries: int) -> None:
    """Download the files `target` lacks with MXNet's downloader (SHA-1 checked by MXNet)."""
    for name, url, sha1 in mxnet_sources(spec):
        stem = name[:-3] if name.endswith(".gz") else name
        if _file_in(target, stem) is None:
            mx.gluon.utils.download(url, path=str(target / name), sha1_hash=sha1,
                                    retries=retries)


def find_data_root(spec: IdxDataset, root: Optional[PathLike] = None, *,
                   env: Optional[Mapping[str, str]] = None,
                   system_dirs: Optional[Sequence[PathLike]] = None,
                   download: bool = True, retries: int = 2) -> Path:
    """Return the directory that holds the four IDX files of `spec`, downloading if needed.

    Search order: the explicit `root`; ``$GLUON_BN_DATA``; MXNet's
    ``$MXNET_HOME/datasets/<namespace>`` (``~/.mxnet`` by default); the system directories
    (Debian's ``/usr/share/datasets/...``); then a download into MXNet's directory. A
    directory counts if it holds every file, plain or ``.gz``. For `root` and
    ``GLUON_BN_DATA`` the directory itself or its ``<namespace>`` subdirectory is accepted.

    Parameters
    ----------
    spec : IdxDataset
        The data set to look for.
    root : str or os.PathLike, optional
        Explicit directory. If given and incomplete this is an error: no fallback.
    env : mapping, optional
        Environment to read ``GLUON_BN_DATA`` and ``MXNET_HOME`` from; ``os.environ`` by
        default (tests inject a dict).
    system_dirs : sequence of path, optional
        System directories to try; ``spec.system_dirs`` by default.
    download : bool
        Whether to download into MXNet's directory when nothing is found.
    retries : int
        Retries passed to MXNet's ``download``.

    Returns
    -------
    pathlib.Path
        The directory.

    Raises
    ------
    DataError
        If `root` or ``GLUON_BN_DATA`` is given but incomplete, or nothing was found and the
        download was disabled or failed; the message lists every place looked at.
    """
    environ = os.environ if env is None else env
    mxnet_dir = _mxnet_home(env) / "datasets" / spec.namespace

    explicit = [("the root argument", root), (f"${ENV_VAR}", environ.get(ENV_VAR) or None)]
    for label, value in explicit:
        if value is None:
            continue
        base = Path(value).expanduser()
        candidates = [base, base / spec.namespace]
        found = _complete_dir(candidates, spec)
        if found is not None:
            return found
        raise DataError(
            f"{spec.name} data not found in the directory given by {label}:\n"
            + "\n".join(_describe(d, spec) for d in candidates) + "\n"
            + _how_to_get(spec, mxnet_dir)
        )

    dirs = [Path(d) for d in (spec.system_dirs if system_dirs is None else system_dirs)]
    looked = [mxnet_dir] + dirs
    found = _complete_dir(looked, spec)
    if found is not None:
        return found

    places = "\n".join(_describe(d, spec) for d in looked)
    not_found = (f"{spec.name} data not found. Looked in (with {ENV_VAR} unset):\n{places}\n")
    if not download:
        raise DataError(not_found + "Downloading was disabled.\n" + _how_to_get(spec, mxnet_dir))
    try:
        _download(spec, mxnet_dir, retries)
    except Exception as err:  # requests, OSError, MXNet's UserWarning on a bad SHA-1, ...
        raise DataError(
            not_found
            + f"Downloading into {mxnet_dir} failed ({type(err).__name__}: {err}).\n"
            + _how_to_get(spec, mxnet_dir)
        ) from err
    if _missing_files(mxnet_dir, spec):
        raise DataError(not_found + f"After the download, {mxnet_dir} still lacks: "
                        + ", ".join(_missing_files(mxnet_dir, spec)))
    return mxnet_dir


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


# --------------------------------------------------------------------------- input pipelines

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


def _resolve_seed(seed: Optional[int]) -> int:
    """`seed` itself, or one drawn from numpy's global RNG (so numpy seeding reproduces it)."""
    if seed is None:
        return int(np.random.randint(0, 2**31 - 1))
    return _check_positive_int("seed", seed, allow_zero=True)


def _check_arrays(images: np.ndarray, labels: np.ndarray) -> None:
    """Images (N, H, W) and labels (N,) of the same N, or ValueError."""
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"expected images (N, H, W) and labels (N,), got shapes "
                         f"{images.shape} and {labels.shape}")


# What `state_dict` returns, for every iterator and sampler of this module:
#   {"kind": ORDER_STATE_KIND, "version": 1, "shuffle": bool, "num_examples": int,
#    "seed": int or None, "bit_generator": numpy bit_generator.state (a dict) or None}
ORDER_STATE_KIND = "gluon_bn.data.epoch_order"
_ORDER_STATE_VERSION = 1


def _order_state(num_examples: int, seed: Optional[int],
                 rng: Optional[np.random.Generator]) -> dict:
    """The state dict of an epoch order: shuffled by `rng`, or file order if it is None."""
    shuffle = rng is not None
    return {"kind": ORDER_STATE_KIND, "version": _ORDER_STATE_VERSION, "shuffle": shuffle,
            "num_examples": num_examples, "seed": seed if shuffle else None,
            "bit_generator": rng.bit_generator.state if shuffle else None}


def _describe_order(state: Mapping) -> str:
    """E.g. "50 examples shuffled with seed 3", for error messages."""
    if not state.get("shuffle"):
        return f"{state.get('num_examples')!r} examples in file order"
    return f"{state.get('num_examples')!r} examples shuffled with seed {state.get('seed')!r}"


def _check_order_state(state, mine: dict, owner: str) -> None:
    """Raise ValueError unless `state` can replace `mine`, the `owner`'s own state dict.

    A shuffled state's ``bit_generator`` is tried on a fresh bit generator of the owner's
    type, so that a bad one is found before anything of the owner's is changed.
    """
    where = f"{owner}.load_state_dict"
    if not isinstance(state, Mapping) or state.get("kind") != ORDER_STATE_KIND:
        if not isinstance(state, Mapping):
            got = f"a {type(state).__name__}"
        elif "kind" in state:
            got = f"a dict of kind {state['kind']!r}"
        else:
            got = f"a dict without 'kind' (keys {sorted(map(str, state))})"
        raise ValueError(f"{where} expects what {owner}.state_dict() returns (a dict with "
                         f"kind {ORDER_STATE_KIND!r}), got {got}")
    if state.get("version") != _ORDER_STATE_VERSION:
        raise ValueError(f"{where}: unknown state version {state.get('version')!r}, "
                         f"expected {_ORDER_STATE_VERSION}")
    if any(state.get(key) != mine[key] for key in ("shuffle", "num_examples", "seed")):
        raise ValueError(f"{where}: the state is of another data set, seed or order: "
                         f"{_describe_order(state)}, but this {owner} has "
                         f"{_describe_order(mine)}")
    if not mine["shuffle"]:
        return
    kind = mine["bit_generator"]["bit_generator"]  # e.g. "PCG64"
    saved, probe = state.get("bit_generator"), getattr(np.random, kind)()
    try:
        probe.state = saved
    except (TypeError, ValueError, LookupError, OverflowError) as err:
        problem = f"{type(err).__name__}: {err}"
    else:  # numpy wraps some out-of-range numbers (a negative state, say) instead of failing
        problem = None if probe.state == saved else "its numbers do not read back as given"
    if problem is not None:
        raise ValueError(f"{where}: the state's bit_generator is not a valid {kind} state "
                         f"({problem})")


class EpochShuffleSampler(mx.gluon.data.Sampler):
    """Gluon sampler that yields a new permutation of ``range(length)`` on every pass.

    The permutations come from one ``numpy.random.default_rng(seed)`` created here, one
    ``rng.permutation(length)`` per ``__iter__`` call, the same stream `FastBatchIterator`
    uses.

    Parameters
    ----------
    length : int
        Number of examples.
    seed : int
        Seed of the generator.
    """

    def __init__(self, length: int, seed: int) -> None:
        self._length = length
        self._seed = None if seed is None else int(seed)
        self._rng = np.random.default_rng(seed)

    def epoch_order(self) -> np.ndarray:
        """Draw the next pass's order: int64 permutation of shape (length,)."""
        return self._rng.permutation(self._length)

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_order().tolist())

    def __len__(self) -> int:
        return self._length

    def state_dict(self) -> dict:
        """Return where the permutation stream stands, as JSON-serialisable data.

        Returns
        -------
        dict
            ``{"kind": ORDER_STATE_KIND, "version": 1, "shuffle": True, "num_examples":
            length, "seed": seed, "bit_generator": rng.bit_generator.state}``; the
            generator state is numpy's own (a dict of str and int), copied.
        """
        return _order_state(self._length, self._seed, self._rng)

    def load_state_dict(self, state: dict) -> None:
        """Continue the permutation stream from `state`, as returned by `state_dict`.

        Parameters
        ----------
        state : dict
            A state of a sampler or shuffled iterator over the same number of examples
            with the same seed (possibly after a JSON round trip).

        Raises
        ------
        ValueError
            If `state` is not such a state, is for another length or seed, or its
            generator state is not one of this generator's type. Nothing is changed then.
        """
        _check_order_state(state, self.state_dict(), type(self).__name__)
        self._rng.bit_generator.state = state["bit_generator"]


class _OrderStateMixin:
    """`state_dict` / `load_state_dict` of an iterator whose order is ``self._sampler``'s."""

    num_examples: int
    _sampler: Optional[EpochShuffleSampler]  # None: file order, nothing to save

    def state_dict(self) -> dict:
        """Return the state of the epoch order (the shuffling), as JSON-serialisable data.

        Only the stream of epoch orders is state, not a pass in progress: loaded before a
        pass, the state makes this iterator's next pass the one the original makes next.

        Returns
        -------
        dict
            ``{"kind": ORDER_STATE_KIND, "version": 1, "shuffle": bool, "num_examples":
            int, "seed": int or None, "bit_generator": dict or None}``: for a shuffling
            iterator the seed and numpy's ``bit_generator.state`` of its permutation
            generator (a dict of str and int), for a file-order one None and None. The
            format is the same for both pipelines, so either can load the other's state.
        """
        if self._sampler is None:
            return _order_state(self.num_examples, None, None)
        return self._sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        """Set the epoch order to `state`, as returned by `state_dict`.

        Parameters
        ----------
        state : dict
            A state of an iterator over the same number of examples, shuffling with the
            same seed or keeping file order as this one does (possibly after a JSON round
            trip).

        Raises
        ------
        ValueError
            If `state` is not an iterator state, is for another number of examples, seed
            or kind of order, or holds a broken generator state. Nothing is changed then.
        """
        _check_order_state(state, self.state_dict(), type(self).__name__)
        if self._sampler is not None:
            self._sampler.load_state_dict(state)


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

    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int, *,
                 shuffle: bool, seed: Optional[int] = None, resize: Resize = None,
                 num_workers: int = 0) -> None:
        _check_arrays(images, labels)
        self.batch_size = _check_positive_int("batch_size", batch_size)
        self.num_examples = len(labels)
        num_workers = _check_positive_int("num_workers", num_workers, allow_zero=True)
        transforms = mx.gluon.data.vision.transforms
        steps = [transforms.ToTensor()]  # (H, W, 1) uint8 -> (1, H, W) float32 / 255
        if resize is not None:
            steps.insert(0, transforms.Resize(_check_resize(resize)))
        # Images as MXNet's FashionMNIST holds them: uint8 NDArray (N, H, W, 1), HWC per item.
        data = mx.nd.array(images[..., np.newaxis], dtype=np.uint8)
        dataset = mx.gluon.data.ArrayDataset(data, labels.astype(np.int32))
        dataset = dataset.transform_first(transforms.Compose(steps))
        # The DataLoader draws the sampler's indices in this process, also with workers.
        self._sampler = (EpochShuffleSampler(self.num_examples, _resolve_seed(seed))
                         if shuffle else None)
        sampler = self._sampler or mx.gluon.data.SequentialSampler(self.num_examples)
        self._loader = mx.gluon.data.DataLoader(
            dataset, self.batch_size, shuffle=False, sampler=sampler, last_batch="keep",
            num_workers=num_workers)

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

    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int, *,
                 shuffle: bool, seed: Optional[int] = None, resize: Resize = None) -> None:
        _check_arrays(images, labels)
        self.batch_size = _check_positive_int("batch_size", batch_size)
        self.num_examples = len(labels)
        # The permutation stream of the d2l pipeline, drawn without a DataLoader.
        self._sampler = (EpochShuffleSampler(self.num_examples, _resolve_seed(seed))
                         if shuffle else None)
        resize = _check_resize(resize)
        if resize is None:
            self._transform = None
            # (N, H, W) -> (N, 1, H, W) float32 in [0, 1]; x / 255 in float32, as ToTensor does.
            self._x = mx.nd.array(images[:, np.newaxis], dtype=np.uint8).astype(np.float32)
            self._x /= 255
        else:
            transforms = mx.gluon.data.vision.transforms
            # Resize and ToTensor accept a batch (B, H, W, C) -> (B, C, H', W').
            self._transform = transforms.Compose([transforms.Resize(resize),
                                                  transforms.ToTensor()])
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


def load_data(spec: IdxDataset, batch_size: int, resize: Resize = None,
              root: Optional[PathLike] = None, *, pipeline: str = "d2l",
              seed: Optional[int] = None, limit: Optional[int] = None,
              test_limit: Optional[int] = None, num_workers: int = 0, verify: bool = True,
              env: Optional[Mapping[str, str]] = None,
              system_dirs: Optional[Sequence[PathLike]] = None,
              download: bool = True):
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
        spec, root, verify=verify, env=env, system_dirs=system_dirs, download=download)
    # Slicing with None keeps everything.
    train_x, train_y = train_x[:limit], train_y[:limit]
    test_x, test_y = test_x[:test_limit], test_y[:test_limit]

    if pipeline == "d2l":
        extra = {"num_workers": num_workers}
        make = D2lBatchIterator
    else:
        extra = {}
        make = FastBatchIterator
    train_iter = make(train_x, train_y, batch_size, shuffle=True, seed=seed, resize=resize,
                      **extra)
    test_iter = make(test_x, test_y, batch_size, shuffle=False, resize=resize, **extra)
    return train_iter, test_iter


def load_data_fashion_mnist(batch_size: int, resize: Resize = None,
                            root: Optional[PathLike] = None, *, pipeline: str = "d2l",
                            seed: Optional[int] = None, limit: Optional[int] = None,
                            test_limit: Optional[int] = None, num_workers: int = 0,
                            verify: bool = True):
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
    return load_data(FASHION_MNIST, batch_size, resize, root, pipeline=pipeline, seed=seed,
                     limit=limit, test_limit=test_limit, num_workers=num_workers,
                     verify=verify)


def load_data_mnist(batch_size: int, resize: Resize = None, root: Optional[PathLike] = None,
                    *, pipeline: str = "d2l", seed: Optional[int] = None,
                    limit: Optional[int] = None, test_limit: Optional[int] = None,
                    num_workers: int = 0, verify: bool = True):
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
    return load_data(MNIST, batch_size, resize, root, pipeline=pipeline, seed=seed,
                     limit=limit, test_limit=test_limit, num_workers=num_workers,
                     verify=verify)
