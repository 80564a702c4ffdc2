"""Fashion-MNIST / MNIST: find the IDX files, read and verify them, and batch them for Gluon.

Where the data comes from (first match wins, see `find_data_root`):

1. the ``root`` argument (``--data-root``),
2. the environment variable ``GLUON_BN_DATA``,
3. MXNet's own data directory, ``$MXNET_HOME/datasets/<namespace>`` (``~/.mxnet`` by default),
4. the system directory of a Debian package (``/usr/share/datasets/fashion-mnist`` from
   ``dataset-fashion-mnist``),
5. otherwise a download into (3) with MXNet's downloader and MXNet's own URLs and SHA-1 sums.

Integrity: files are checked against the SHA-256 of their *decompressed* IDX content, so a
plain file, MXNet's ``.gz`` and Debian's re-compressed ``.gz`` all pass: every Fashion-MNIST
file and three of MNIST's. MNIST's training images, whose content sum is not known here,
pass as MXNet's original ``.gz`` (its SHA-1) or else on their structure alone, with a
`DataWarning`. :mod:`gluon_bn.data.idx` says which check applies where and whence the sums.

Two input pipelines give the same batches for the same seed:

* ``"d2l"``: as in the book, a Gluon ``ArrayDataset`` with ``transforms.ToTensor()`` (after
  ``transforms.Resize`` if asked) read through ``gluon.data.DataLoader``, one example at a time;
* ``"fast"``: the whole set is preloaded as one float32 NDArray and batches are gathered with
  ``nd.take``.

Both draw each epoch's order from ``numpy.random.default_rng(seed)``, created once per
iterator, with one ``rng.permutation(n)`` per pass (``__iter__`` call). Where that stream
stands is the iterators' only state: ``state_dict()`` returns it as JSON-serialisable data
and ``load_state_dict(state)`` restores it (checkpoints use these to resume exactly).

The package, one module per concern (each imports only the ones above it):

* :mod:`gluon_bn.data.sources`: the data set specs (`IdxDataset`, `FASHION_MNIST`, `MNIST`,
  `SPECS` by name), where the files are looked for, how to get them, and the download;
* :mod:`gluon_bn.data.idx`: reading and verifying IDX files (`read_idx`, `verify_files`,
  `identify`), and `load_arrays`;
* :mod:`gluon_bn.data.order`: the epoch order and its state (`EpochShuffleSampler`);
* :mod:`gluon_bn.data.pipelines`: the two pipelines and `load_data`,
  `load_data_fashion_mnist`, `load_data_mnist`;
* :mod:`gluon_bn.data.book`: d2l 1.0's ``FashionMNIST`` data module over these files (imports
  ``d2l``, so it is not imported here).

Every name is re-exported here, so ``from gluon_bn.data import ...`` needs no submodule.
"""

from __future__ import annotations

from gluon_bn.data.idx import identify, load_arrays, read_idx, verify_files
from gluon_bn.data.order import ORDER_STATE_KIND, EpochShuffleSampler
from gluon_bn.data.pipelines import (
    PIPELINES,
    D2lBatchIterator,
    FastBatchIterator,
    Resize,
    _check_positive_int,
    _check_resize,
    load_data,
    load_data_fashion_mnist,
    load_data_mnist,
)

# Besides __all__, the type aliases PathLike and Resize and the private helpers used through
# this package (_mxnet_home by the doctor, _download by tests, the argument checks) are
# re-exported, so every import of gluon_bn.data keeps working. To replace a helper in a test,
# patch the module that calls it (e.g. gluon_bn.data.sources._download), not this package.
from gluon_bn.data.sources import (
    ENV_VAR,
    FASHION_MNIST,
    MNIST,
    SPECS,
    DataError,
    DataWarning,
    IdxDataset,
    PathLike,
    _download,
    _mxnet_home,
    default_dirs,
    find_data_root,
    mxnet_sources,
    spec_for,
)

__all__ = [
    "DataError",
    "DataWarning",
    "IdxDataset",
    "FASHION_MNIST",
    "MNIST",
    "SPECS",
    "ENV_VAR",
    "PIPELINES",
    "spec_for",
    "read_idx",
    "mxnet_sources",
    "default_dirs",
    "find_data_root",
    "load_arrays",
    "verify_files",
    "identify",
    "ORDER_STATE_KIND",
    "EpochShuffleSampler",
    "D2lBatchIterator",
    "FastBatchIterator",
    "load_data",
    "load_data_fashion_mnist",
    "load_data_mnist",
]
