"""Import MXNet once, with a message that says how to install it when it is missing."""

from __future__ import annotations

import ctypes
import glob
import importlib.metadata
import os
import sys

from gluon_bn.runtime.settings import RECORDED

_INSTALL_HINT = (
    "gluon_bn needs Apache MXNet 1.9.1, which comes through one of two extras "
    "(they both provide the module `mxnet`; install exactly one):\n"
    "    pip install 'gluon-bn[cpu]'     # CPU wheel, mxnet==1.9.1\n"
    "    pip install 'gluon-bn[cu112]'   # CUDA 11.2 wheel plus the nvidia-*-cu11 runtime\n"
    "From a checkout: pip install -e '.[cpu,test]'. MXNet 1.9.1 also needs numpy<1.24."
)


def _preload_cuda_runtime() -> None:
    """Load the pip-installed CUDA 11 libraries so that libmxnet.so finds them by soname.

    The `nvidia-*-cu11` wheels put their shared objects under site-packages/nvidia/*/lib,
    which is not on the loader's search path; loading them first with RTLD_GLOBAL makes
    the later dlopen of libmxnet.so resolve them. Does nothing for the CPU wheel.
    """
    try:
        importlib.metadata.distribution("mxnet-cu112")
    except importlib.metadata.PackageNotFoundError:
        return
    for site in sys.path:
        libs = sorted(glob.glob(os.path.join(site, "nvidia", "*", "lib", "lib*.so*")))
        # Runtime and BLAS first: cuDNN and cuSOLVER depend on them.
        libs.sort(key=lambda p: (0 if "cuda_runtime" in p or "cublas" in p else 1, p))
        for path in libs:
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            except OSError:
                pass  # a library this MXNet does not need; MXNet itself reports what is missing


def import_mxnet():
    """Return the `mxnet` module, or raise ImportError that names the extras to install."""
    _preload_cuda_runtime()
    try:
        import mxnet
    except ImportError as err:
        raise ImportError(f"{_INSTALL_HINT}\n(the import failed with: {err})") from err
    except AttributeError as err:  # numpy >= 1.24 removed np.bool, which mxnet 1.9.1 uses
        raise ImportError(
            f"mxnet 1.9.1 does not work with numpy {_numpy_version()}: "
            f"pip install 'numpy<1.24'\n(the import failed with: {err})"
        ) from err
    return mxnet


def _numpy_version() -> str:
    try:
        return importlib.metadata.version("numpy")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


# What MXNet loads with; if something imported it earlier, what the environment says now.
LOADED_WITH = {key: os.environ.get(key) for key in RECORDED}
mx = import_mxnet()
