"""gluon-bn: the Batch Normalization chapter of Dive into Deep Learning in MXNet Gluon.

MXNet loads on first use of a name below, not on ``import gluon_bn``: the command line
chooses MXNet's engine and threads (:mod:`gluon_bn.runtime`) before it loads, and
``gluon-bn doctor`` can report an MXNet that fails to import.
"""

import importlib

__version__ = "0.1.0"

# public name -> (module, attribute or None for the module itself)
_EXPORTS = {
    "mx": ("runtime.loader", "mx"),  # the mxnet module, loaded with the GPU wheel's CUDA runtime
    "batch_norm": ("bn.functional", "batch_norm"),
    "pure_batch_norm": ("bn.functional", "pure_batch_norm"),
    "BatchNorm": ("bn.layer", "BatchNorm"),
    "models": ("models", None),
    "recipes": ("recipes", None),
    "get_recipe": ("recipes", "get_recipe"),
    "RECIPES": ("recipes", "RECIPES"),
    # d2l 1.0.3's offline Fashion-MNIST data module (loads d2l on first use)
    "FashionMNIST": ("data.book", "FashionMNIST"),
    # the names the legacy-nd documents call through `import d2l` (d2l's positional signatures)
    "load_data_fashion_mnist": ("data", "load_data_fashion_mnist"),
    "train_ch5": ("run.training", "train_ch5"),
    "evaluate_accuracy": ("run.training", "evaluate_accuracy"),
    "try_gpu": ("device", "try_gpu"),
    "try_all_gpus": ("device", "try_all_gpus"),
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gluon_bn' has no attribute {name!r}")
    module_name, attribute = _EXPORTS[name]
    module = importlib.import_module(f".{module_name}", __name__)
    return module if attribute is None else getattr(module, attribute)


def __dir__():
    return sorted(__all__)
