"""Document 000's models as d2l 1.0 ``d2l.Classifier`` subclasses, for the book's own loop.

The book (d2l 1.0, MXNet numpy API) defines LeNet in its LeNet section and two batch-normalised
LeNets in its BN section; they train with ``d2l.Trainer(...).fit(model, data)``. These classes
keep the book's signature ``(lr=0.1, num_classes=10)`` and build their layers with
:func:`gluon_bn.models.lenet`, so ``BNLeNetScratch`` runs :class:`gluon_bn.BatchNorm` with
document 000's conventions (momentum 0.1 weighing the batch statistic, moving variance
starting at 1, eps 1e-5) and works on MXNet 1.9.1, where the document's own layer does not
(its ``gluon.Parameter`` attributes are not collected there).

Build them in numpy mode (``npx.set_np()``), as the book does: d2l's ``Classifier`` computes
its loss and accuracy with numpy-API operators. The moving statistics are Parameters, so
``d2l.Trainer(num_gpus=1)`` moves them with the model (``collect_params().reset_ctx``).
"""

from __future__ import annotations

from d2l import mxnet as d2l

from gluon_bn.models import lenet
from gluon_bn.recipes import get_recipe
from gluon_bn.runtime.loader import mx

__all__ = ["LeNet", "BNLeNetScratch", "BNLeNet"]


def _document_conventions() -> dict:
    """Return the scratch layer's keywords as document 000 sets them (the d2l-1.0 recipe)."""
    return get_recipe("d2l-1.0").conventions.layer_options()


class LeNet(d2l.Classifier):
    """The book's plain LeNet (its LeNet section): padded first convolution, Xavier weights.

    Layout: conv 6@5x5 pad 2 -> (N, 6, 28, 28) -> sigmoid -> avg-pool -> conv 16@5x5 ->
    (N, 16, 10, 10) -> sigmoid -> avg-pool -> (N, 16, 5, 5) -> dense 120 -> dense 84 ->
    dense `num_classes`, sigmoid between the dense layers.

    Parameters
    ----------
    lr : float
        Plain SGD's learning rate (``configure_optimizers``).
    num_classes : int
        Width of the output layer.
    """

    def __init__(self, lr: float = 0.1, num_classes: int = 10):
        super().__init__()
        self.save_hyperparameters()
        self.net = lenet("none", pool="avg", padding=2, num_classes=num_classes)
        self.net.initialize(mx.init.Xavier())


class BNLeNetScratch(d2l.Classifier):
    """Document 000's LeNet with :class:`gluon_bn.BatchNorm` after every conv and dense layer.

    Parameters
    ----------
    lr : float
        Plain SGD's learning rate.
    num_classes : int
        Width of the output layer.
    impl : {"faithful", "fast", "native"}
        The scratch layer's implementation (:class:`gluon_bn.bn.layer.BatchNorm`'s `impl`).
    """

    def __init__(self, lr: float = 0.1, num_classes: int = 10, *, impl: str = "faithful"):
        super().__init__()
        self.save_hyperparameters()
        self.net = lenet(
            "scratch",
            pool="avg",
            num_classes=num_classes,
            bn_options={**_document_conventions(), "impl": impl},
        )
        self.initialize()  # MXNet's default initialiser, as the document


class BNLeNet(d2l.Classifier):
    """Document 000's LeNet with Gluon's built-in ``nn.BatchNorm`` (momentum 0.9 in its form).

    Parameters
    ----------
    lr : float
        Plain SGD's learning rate.
    num_classes : int
        Width of the output layer.
    """

    def __init__(self, lr: float = 0.1, num_classes: int = 10):
        super().__init__()
        self.save_hyperparameters()
        conventions = get_recipe("d2l-1.0").conventions
        self.net = lenet(
            "gluon",
            pool="avg",
            num_classes=num_classes,
            bn_options={"momentum": conventions.gluon_momentum(), "eps": conventions.eps},
        )
        self.initialize()
