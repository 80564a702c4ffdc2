"""Where the data sets are and how to get them: the `IdxDataset` specs, search and download.

`FASHION_MNIST` and `MNIST` describe the four IDX files of each set (names, counts, image
shape, SHA-256 of the decompressed content, MXNet's download class, Debian's directory).
Where the files are looked for (first match wins, see `find_data_root`):

1. the ``root`` argument (``--data-root``),
2. the environment variable ``GLUON_BN_DATA`` (`ENV_VAR`),
3. MXNet's own data directory, ``$MXNET_HOME/datasets/<namespace>`` (``~/.mxnet`` by default),
4. the system directory of a Debian package (``/usr/share/datasets/fashion-mnist`` from
   ``dataset-fashion-mnist``),
5. otherwise a download into (3) with MXNet's downloader and MXNet's own URLs and SHA-1 sums
   (`mxnet_sources`).

When nothing is found, the `DataError` lists every place looked at and how to get the data.
Reading and verifying the files (which check applies to which file) is
:mod:`gluon_bn.data.idx`'s job. Code that picks a set by its ``--dataset`` name goes through
`SPECS` (:func:`spec_for`), so a test can put a tiny set in MNIST's place.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Mapping, Optional, Sequence, Tuple, Union

from gluon_bn.recipes import TEST_SIZE, TRAIN_SIZE
from gluon_bn.runtime.loader import mx

__all__ = [
    "DataError",
    "DataWarning",
    "IdxDataset",
    "FASHION_MNIST",
    "MNIST",
    "SPECS",
    "ENV_VAR",
    "spec_for",
    "mxnet_sources",
    "default_dirs",
    "find_data_root",
]

PathLike = Union[str, "os.PathLike[str]"]

ENV_VAR = "GLUON_BN_DATA"

# MXNet builds its dataset URLs as _get_repo_file_url('gluon/dataset/' + cls._namespace, name)
# inside MNIST._get_data; the prefix is a literal there, not an attribute, so it is repeated here.
_MXNET_REPO_PREFIX = "gluon/dataset/"


class DataError(Exception):
    """The data set could not be found, read or verified; the message says how to fix it."""


class DataWarning(UserWarning):
    """A data file was accepted with a weaker check than a checksum of its content."""


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
        None,
        None,
        None,
        None,
    )
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


_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

FASHION_MNIST = IdxDataset(
    name="Fashion-MNIST",
    namespace="fashion-mnist",
    files=_MNIST_FILES,
    num_train=TRAIN_SIZE,
    num_test=TEST_SIZE,
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
    num_train=TRAIN_SIZE,
    num_test=TEST_SIZE,
    # SHA-256 of the decompressed IDX bytes, computed (gzip.decompress, hashlib.sha256) from
    # the .gz files of github.com/fgnt/mnist (commit ae608a0), byte for byte the originals:
    # their MD5s are those torchvision's MNIST.resources lists, their SHA-1s those MXNet
    # 1.9.1's vision.MNIST checks. The copy at hand lacked the training images, so that file
    # has no sum: gluon_bn.data.idx checks its .gz against MXNet's SHA-1, else its structure.
    sha256=(
        None,
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
    mxnet_class="MNIST",
    system_dirs=("/usr/share/datasets/mnist",),
    apt_package=None,
)

# The data sets by the names ``--dataset`` and the records use.
SPECS = {"fashion-mnist": FASHION_MNIST, "mnist": MNIST}


def spec_for(name: str) -> IdxDataset:
    """Return the spec of the data set called `name` in `SPECS` ("fashion-mnist", "mnist").

    Parameters
    ----------
    name : str
        A key of `SPECS`, as ``--dataset`` and a record's ``dataset`` spell it.

    Returns
    -------
    IdxDataset
        The spec now registered under that name.

    Raises
    ------
    ValueError
        For a name that is not in `SPECS`.
    """
    try:
        return SPECS[name]
    except KeyError:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(SPECS)}") from None


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
    pairs = (
        probe._train_data,
        probe._train_label,  # pylint: disable=protected-access
        probe._test_data,
        probe._test_label,
    )  # pylint: disable=protected-access
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
    lines.append(
        f"  - {'or ' if spec.apt_package else ''}set {ENV_VAR} (or pass --data-root / "
        "root=) to a directory holding the four files"
    )
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
            mx.gluon.utils.download(url, path=str(target / name), sha1_hash=sha1, retries=retries)


def default_dirs(
    spec: IdxDataset,
    *,
    env: Optional[Mapping[str, str]] = None,
    system_dirs: Optional[Sequence[PathLike]] = None,
) -> List[Path]:
    """Return the directories searched when no root is given: MXNet's, then the system ones.

    Parameters
    ----------
    spec : IdxDataset
        The data set.
    env : mapping, optional
        Environment to read ``MXNET_HOME`` from; ``os.environ`` by default.
    system_dirs : sequence of path, optional
        System directories; ``spec.system_dirs`` by default.

    Returns
    -------
    list of pathlib.Path
        ``$MXNET_HOME/datasets/<namespace>`` (where downloads go) first.
    """
    dirs = spec.system_dirs if system_dirs is None else system_dirs
    return [_mxnet_home(env) / "datasets" / spec.namespace] + [Path(d) for d in dirs]


def find_data_root(
    spec: IdxDataset,
    root: Optional[PathLike] = None,
    *,
    env: Optional[Mapping[str, str]] = None,
    system_dirs: Optional[Sequence[PathLike]] = None,
    download: bool = True,
    retries: int = 2,
) -> Path:
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
    looked = default_dirs(spec, env=env, system_dirs=system_dirs)
    mxnet_dir = looked[0]

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
            + "\n".join(_describe(d, spec) for d in candidates)
            + "\n"
            + _how_to_get(spec, mxnet_dir)
        )

    found = _complete_dir(looked, spec)
    if found is not None:
        return found

    places = "\n".join(_describe(d, spec) for d in looked)
    not_found = f"{spec.name} data not found. Looked in (with {ENV_VAR} unset):\n{places}\n"
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
        raise DataError(
            not_found
            + f"After the download, {mxnet_dir} still lacks: "
            + ", ".join(_missing_files(mxnet_dir, spec))
        )
    return mxnet_dir
