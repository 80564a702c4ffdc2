"""The scratch layer as one compiled C++ operator: ``impl="native"``.

MXNet 1.9 fuses elementwise operators only on the GPU, so on the CPU any batch
normalization written in MXNet operators (:mod:`gluon_bn.bn.fast` included) makes a pass
over the activations for each step of its formula. ``csrc/batch_norm.cc`` writes the same
mathematics as :func:`gluon_bn.bn.functional.batch_norm` in plain loops: three passes
forward (sum, centred squares, write Y) and two backward (two sums, write dX), no
temporaries the size of the input. It is registered through MXNet's extension API
(``mx.library.load``) as ``gluon_bn_batch_norm``, an ordinary operator with its own
gradient, and it is the whole layer: training and prediction, and the moving statistics,
which it updates in place as mutable inputs (MXNet's auxiliary states, as for its own
BatchNorm). So a hybridized network compiles it into its graph like any other operator,
and a training step costs one call per layer, with nothing left to Python.

The mode is an attribute of the call: MXNet hands an extension operator no ``is_train``
flag, so a compiled graph holds the operator for one mode, and the layer keeps one graph
per mode (:mod:`gluon_bn.bn.modal`).

MXNet hands an extension operator plain arrays and takes plain ones back, where its own
BatchNorm keeps oneDNN's blocked layout for the layers after it; the layer gives its output
that layout again through an exact identity (:func:`blocked_layout`, where
:func:`hands_on_blocked` says it pays).

The library is compiled on first use with the C++ compiler found on the machine (``$CXX``,
else ``c++`` or ``g++``) against the headers MXNet's wheel ships, and cached under
``$GLUON_BN_CACHE`` (default ``~/.cache/gluon_bn``), keyed by the source, the MXNet version
and the command. It runs on the CPU in float32 and float64. Its sums run in SIMD lanes of
the input's type, added into float64 per-channel totals, so its numbers agree with the
faithful layer's to float32 rounding, not bit for bit: it is an option, never a default.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import List, Optional

import numpy as np

from gluon_bn.bn.dialect import as_kind, as_legacy, is_numpy_array
from gluon_bn.bn.functional import check_conventions
from gluon_bn.bn.functional import check_input as check_batch
from gluon_bn.runtime.loader import mx

nd, autograd = mx.nd, mx.autograd

OP_NAME = "gluon_bn_batch_norm"
SOURCE = Path(__file__).parent / "csrc" / "batch_norm.cc"
# -fopenmp: the `omp simd` loops and the passes' threads, on libgomp, the OpenMP runtime
# MXNet's wheel itself links (so one thread pool, and MXNet's thread count); no
# -march=native, so a cached library runs on any x86-64 CPU.
CXX_FLAGS = ("-shared", "-fPIC", "-std=c++17", "-O3", "-fopenmp")


class NativeUnavailable(RuntimeError):
    """The native operator cannot be built or loaded here; the message says why and what to do."""


def cache_dir() -> Path:
    """Return where compiled libraries are kept: ``native/`` under :func:`gluon_bn.cache.cache_root`."""
    from gluon_bn.cache import cache_root

    return cache_root() / "native"


def find_compiler() -> Optional[str]:
    """Return the C++ compiler to use (``$CXX``, else ``c++`` or ``g++`` on the PATH), or None."""
    if os.environ.get("CXX"):
        return os.environ["CXX"]
    return shutil.which("c++") or shutil.which("g++")


def _mxnet_sources() -> Path:
    """The directory of MXNet's wheel that holds ``include/mxnet/lib_api.h`` and ``src/lib_api.cc``."""
    root = Path(mx.__file__).parent
    if (
        not (root / "include" / "mxnet" / "lib_api.h").is_file()
        or not (root / "src" / "lib_api.cc").is_file()
    ):
        raise NativeUnavailable(
            f"impl='native' needs MXNet's extension headers, which this MXNet ({mx.__version__},"
            f" {root}) does not ship (include/mxnet/lib_api.h, src/lib_api.cc); install the "
            "mxnet 1.9.1 wheel from PyPI, or use impl='fast'"
        )
    return root


def compile_command(compiler: str, output: Path) -> List[str]:
    """Return the command that compiles the operator library into `output`."""
    mxnet = _mxnet_sources()
    return [
        *shlex.split(compiler),
        *CXX_FLAGS,
        "-I",
        str(mxnet / "include"),
        str(SOURCE),
        str(mxnet / "src" / "lib_api.cc"),
        "-o",
        str(output),
    ]


def build(directory: Optional[Path] = None) -> Path:
    """Compile the operator library unless a matching one is cached; return its path.

    Parameters
    ----------
    directory : Path, optional
        Where to keep it (default :func:`cache_dir`).

    Raises
    ------
    NativeUnavailable
        No compiler, no MXNet headers, or the compiler failed (its output is in the message).
    """
    compiler = find_compiler()
    if compiler is None:
        raise NativeUnavailable(
            "impl='native' compiles a small C++ library on first use and found no C++ compiler"
            " (set CXX, or install one: `sudo apt-get install g++` on Debian/Ubuntu); "
            "impl='fast' needs none"
        )
    directory = Path(directory) if directory is not None else cache_dir()
    key = hashlib.sha256()
    key.update(SOURCE.read_bytes())
    key.update(f"{mx.__version__}\0{' '.join(compile_command(compiler, Path('out')))}".encode())
    target = directory / f"lib{OP_NAME}-{key.hexdigest()[:16]}.so"
    if target.is_file():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    # Compile beside the target and rename, so that a concurrent run never loads half a file.
    fd, partial = tempfile.mkstemp(suffix=".so", dir=directory)
    os.close(fd)
    try:
        done = subprocess.run(
            compile_command(compiler, Path(partial)), capture_output=True, text=True
        )
        if done.returncode != 0:
            raise NativeUnavailable(
                f"compiling {SOURCE.name} with {compiler} failed (exit {done.returncode}); "
                f"impl='fast' needs no compiler. The compiler said:\n{done.stderr[-4000:]}"
            )
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return target


@functools.lru_cache(maxsize=1)
def load() -> Path:
    """Build (if needed) and load the operator into this process, once; return the library.

    After this, ``mx.nd.gluon_bn_batch_norm`` and ``mx.sym.gluon_bn_batch_norm`` exist.
    A failure is not cached: the next call tries again.
    """
    library = build()
    if not hasattr(nd, OP_NAME):
        try:
            mx.library.load(str(library), verbose=False)
        except mx.base.MXNetError as err:  # e.g. a library built for another MXNet
            said = str(err).strip().splitlines()[-1]  # its last line says why
            raise NativeUnavailable(
                f"MXNet could not load {library} ({said}); delete it to rebuild, or use impl='fast'"
            ) from err
    return library


def unavailable_reason() -> Optional[str]:
    """Return why ``impl='native'`` cannot run here, or None when it can."""
    try:
        load()
    except NativeUnavailable as err:
        return str(err)
    return None


def check_input(X) -> None:
    """Raise TypeError, with the way out, for input the operator cannot take (device, dtype)."""
    if X.context.device_type != "cpu":
        raise TypeError(
            f"impl='native' runs on the CPU only, got input on {X.context}; use "
            "impl='fast' or 'faithful' on a GPU"
        )
    if np.dtype(X.dtype) not in (np.float32, np.float64):
        raise TypeError(
            f"impl='native' computes in float32 or float64, got {np.dtype(X.dtype)};"
            " use impl='faithful' for other dtypes"
        )


def layer_step(
    F,
    X,
    gamma,
    beta,
    moving_mean,
    moving_var,
    seeded=None,
    *,
    training: bool,
    eps: float,
    momentum: float,
    momentum_on: str,
    normalize_by: str,
    update_in_prediction: bool,
):
    """One call of the operator: return Y; the moving statistics are updated in place.

    Parameters
    ----------
    F : module
        ``mx.nd`` or ``mx.sym`` (legacy arrays or symbols throughout).
    X, gamma, beta, moving_mean, moving_var
        As in :func:`gluon_bn.bn.functional.batch_norm`; the moving statistics are
        written in training, and in prediction with `update_in_prediction`.
    seeded : NDArray or Symbol, optional
        Shape (1,): while 0 the batch statistics replace the moving ones; set to 1 by the
        first update (document 004's first batch).
    training : bool
        Normalise with the batch statistics (and update), or with the moving ones.
    eps, momentum, momentum_on, normalize_by, update_in_prediction
        The conventions of :mod:`gluon_bn.bn.functional`.
    """
    extra = [] if seeded is None else [seeded]
    out = getattr(F, OP_NAME)(
        X,
        gamma,
        beta,
        moving_mean,
        moving_var,
        *extra,
        training=int(training),
        eps=eps,
        momentum=momentum,
        momentum_on=momentum_on,
        normalize_by=normalize_by,
        update_in_prediction=int(update_in_prediction),
        first_batch=int(seeded is not None),
    )
    return out[0]  # the other outputs, the statistics Y was normalised with, are for backward


# oneDNN's blocked layouts group channels by this many (8 float32 lanes of AVX2; 16 on
# AVX-512, of which 8 divides every multiple).
CHANNEL_BLOCK = 8


@functools.lru_cache(maxsize=None)
def _onednn() -> bool:
    return bool(mx.runtime.Features().is_enabled("MKLDNN"))


def hands_on_blocked(num_features: int, num_dims: int, dtype) -> bool:
    """Return whether the layer passes its output through :func:`blocked_layout`.

    MXNet's own BatchNorm keeps the oneDNN layout of its input, so a convolution's blocked
    output (channels in groups of :data:`CHANNEL_BLOCK`) stays blocked through the
    activation and pooling after it. An extension operator cannot: MXNet hands it plain
    arrays and takes plain arrays back (``src/c_api/c_api.cc``, ``Reorder2Default`` at
    lines 154-158; outputs at 991), and oneDNN pools a plain array far more slowly. So the
    layer hands blocked-sized, 4-D, float32 output back in a blocked layout, where MXNet
    has oneDNN.

    Parameters
    ----------
    num_features : int
        Channels of the layer.
    num_dims : int
        2 or 4.
    dtype
        The layer's parameter type (oneDNN convolves float32 only).
    """
    return (
        num_dims == 4
        and num_features % CHANNEL_BLOCK == 0
        and np.dtype(dtype) == np.float32
        and _onednn()
    )


def blocked_layout(F, Y, num_features: int, dtype="float32", ctx=None):
    """Return `Y`'s values, unchanged, in the memory layout oneDNN's convolutions choose.

    A 1x1 convolution with the identity as its weight, a constant of the graph: each output
    value is its input times 1 plus the other channels times 0, so it is exact for finite
    values (a NaN or infinity reaches every channel of its pixel), and so is its gradient,
    the same sum transposed. The weight needs no gradient, and MXNet computes none.

    Parameters
    ----------
    F : module
        ``mx.nd`` or ``mx.sym``.
    Y : NDArray or Symbol
        Shape (N, C, H, W).
    num_features : int
        C.
    dtype
        `Y`'s type (in float64 MXNet convolves without oneDNN: same values, no gain).
    ctx : Context, optional
        `Y`'s device, for ``mx.nd`` (a graph places its constants itself).
    """
    eye = F.eye(num_features, dtype=np.dtype(dtype).name, **({} if ctx is None else {"ctx": ctx}))
    weight = F.reshape(eye, shape=(num_features, num_features, 1, 1))
    return F.Convolution(Y, weight, kernel=(1, 1), num_filter=num_features, no_bias=True)


def batch_norm(
    X,
    gamma,
    beta,
    moving_mean,
    moving_var,
    eps: float = 1e-5,
    momentum: float = 0.9,
    *,
    momentum_on: str = "moving",
    normalize_by: str = "sqrt_var_eps",
    update_in_prediction: bool = False,
    seeded=None,
):
    """Native twin of :func:`gluon_bn.bn.functional.batch_norm`: same arguments and results.

    Arguments and results are those of :func:`gluon_bn.bn.fast.batch_norm`; `X` must be on
    the CPU, in float32 or float64. The operator updates copies of the moving statistics
    (and of `seeded`), which are returned; the caller's arrays are left alone.

    Raises
    ------
    NativeUnavailable
        The operator cannot be built here (no C++ compiler, for one); the message says why.
    """
    load()
    check_batch(X)
    check_input(X)
    check_conventions(momentum_on, normalize_by)
    numpy_api = is_numpy_array(X)
    given = (moving_mean, moving_var)
    X, gamma, beta, moving_mean, moving_var, seeded = (
        as_legacy(a) for a in (X, gamma, beta, moving_mean, moving_var, seeded)
    )
    training = autograd.is_training()
    updates = training or update_in_prediction
    if updates:
        with autograd.pause():
            moving_mean, moving_var = moving_mean.copy(), moving_var.copy()
            seeded = seeded.copy() if seeded is not None else None
    Y = layer_step(
        nd,
        X,
        gamma,
        beta,
        moving_mean,
        moving_var,
        seeded,
        training=training,
        eps=eps,
        momentum=momentum,
        momentum_on=momentum_on,
        normalize_by=normalize_by,
        update_in_prediction=update_in_prediction,
    )
    if not updates:
        return (as_kind(Y, numpy_api), *given)
    return tuple(as_kind(a, numpy_api) for a in (Y, moving_mean, moving_var))
