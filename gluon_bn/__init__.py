"""gluon-bn: the Batch Normalization chapter of Dive into Deep Learning in MXNet Gluon."""
from ._mxnet import mx  # noqa: F401  (fails with install instructions when MXNet is missing)
from .functional import batch_norm, pure_batch_norm
from .layers import BatchNorm
from . import models, recipes
from .recipes import get_recipe, RECIPES

__version__ = "0.1.0"
__all__ = ["batch_norm", "pure_batch_norm", "BatchNorm", "models", "recipes", "get_recipe",
           "RECIPES", "__version__"]
