"""One frozen recipe per source document: provenance, conventions, training set-up, printed numbers.

A recipe is pure data: this module imports neither MXNet nor the models, so listing the
recipes (``gluon-bn list``, ``--help``) stays instant. :func:`gluon_bn.models.build_net` and
:func:`gluon_bn.models.make_initializer` turn a recipe into a network and an initialiser;
the training loops and the reports read the rest. Numbers a document printed
are stored as it printed them, so that reports can put them beside ours; numbers the lesson
printed elsewhere (:class:`PublishedRuns`, with their source) show how far published runs scatter.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

from gluon_bn.printed import EpochLine, PrintedRun, PublishedRuns

TRAIN_SIZE, TEST_SIZE = 60000, 10000  # Fashion-MNIST's (and MNIST's) training and test sets
VARIANTS = ("scratch", "gluon", "plain")
# The documents' training loops: d2l's MXNet ``train_ch5`` (documents 001-004, reproduced as
# :func:`gluon_bn.run.training.train_ch5`) and d2l 1.0's ``d2l.Trainer`` (document 000).
LOOPS = ("train_ch5", "d2l.Trainer")
# The data sets' names in prose, by the names --dataset and the records use.
DATASET_NAMES = {"fashion-mnist": "Fashion-MNIST", "mnist": "MNIST"}


@dataclass(frozen=True)
class Conventions:
    """How a document's batch normalization differs from MXNet's operator, each named.

    Attributes
    ----------
    momentum : float
        The number the document passes.
    momentum_on : {"moving", "batch"}
        Which side of the moving average `momentum` weighs (see :mod:`gluon_bn.bn.functional`).
    eps : float
        Added to the variance (or the standard deviation, with ``normalize_by="std_eps"``).
    moving_var_init : float
        Starting moving variance: 1 or 0.
    moving_init : {"fixed", "first_batch"}
        Whether the first batch seeds the moving statistics.
    normalize_by : {"sqrt_var_eps", "std_eps"}
        The denominator of the normalization.
    update_in_prediction : bool
        Whether prediction mode updates the moving statistics too.
    """

    momentum: float = 0.9
    momentum_on: str = "moving"
    eps: float = 1e-5
    moving_var_init: float = 1.0
    moving_init: str = "fixed"
    normalize_by: str = "sqrt_var_eps"
    update_in_prediction: bool = False

    def layer_options(self) -> Dict[str, object]:
        """Return the keywords of :class:`gluon_bn.BatchNorm` for these conventions."""
        return dataclasses.asdict(self)

    def gluon_momentum(self) -> float:
        """Return the momentum that Gluon's ``nn.BatchNorm`` (MXNet's form) needs to match."""
        return self.momentum if self.momentum_on == "moving" else 1.0 - self.momentum


@dataclass(frozen=True)
class Recipe:
    """A document, frozen: where it comes from, its conventions, its set-up and its numbers.

    Attributes
    ----------
    name : str
        The name to look it up by (``gluon-bn reproduce NAME``).
    title, source_file, section, dialect : str
        Provenance: what the document is, which file of ``shared/seeds`` and which section.
    conventions : Conventions
        The scratch layer's conventions, as the document writes them.
    network : {"lenet", "straight-dope"}
        Which builder of :mod:`gluon_bn.models`.
    pool : {"max", "avg"}
        LeNet's pooling.
    flatten : bool
        An explicit Flatten before the first dense layer.
    initializer : str
        A name understood by :func:`make_initializer`.
    plain_initializer : str, optional
        The plain LeNet's initialiser where the document's source initialises it otherwise
        (default: `initializer`).
    learning_rate, batch_size, num_epochs : float, int, int
        Plain SGD's step, the batch, the epochs.
    loop : {"train_ch5", "d2l.Trainer"}
        The document's training loop (see :data:`LOOPS`).
    loss_reduction : {"mean", "sum"}
        ``"mean"``: the gradient of the batch-mean loss (``trainer.step(batch_size)`` on the
        summed loss, as train_ch5). ``"sum"``: the gradient of the summed loss (document 004's
        hand-written SGD), run as a learning rate multiplied by the batch size.
    dataset : {"fashion-mnist", "mnist"}
        What the document trained on.
    printed : tuple of PrintedRun
        The numbers the document printed.
    printed_gamma_beta : tuple, optional
        The first BN layer's learned gamma and beta, where printed.
    assumptions : tuple of str
        What the document leaves out and we had to decide, and why.
    alternatives : dict
        Other conventions the document could be read with (name -> Conventions).
    published_elsewhere : dict
        Other published runs of the same lesson (name -> PublishedRuns), e.g. the upstream
        edition of the book a document transcribes. Only numbers with a stated source.
    """

    name: str
    title: str
    source_file: str
    section: str
    dialect: str
    conventions: Conventions
    network: str = "lenet"
    pool: str = "max"
    flatten: bool = False
    initializer: str = "xavier"
    plain_initializer: Optional[str] = None
    learning_rate: float = 1.0
    batch_size: int = 256
    num_epochs: int = 5
    loop: str = "train_ch5"
    loss_reduction: str = "mean"
    dataset: str = "fashion-mnist"
    printed: Tuple[PrintedRun, ...] = ()
    printed_gamma_beta: Optional[Tuple[Tuple[float, ...], Tuple[float, ...]]] = None
    claim: str = ""
    assumptions: Tuple[str, ...] = ()
    alternatives: Dict[str, Conventions] = field(default_factory=dict)
    published_elsewhere: Dict[str, PublishedRuns] = field(default_factory=dict)

    def with_alternative(self, name: str) -> "Recipe":
        """Return this recipe with the conventions of alternative `name`."""
        if name not in self.alternatives:
            known = ", ".join(self.alternatives) or "none"
            raise ValueError(f"recipe {self.name!r} has no alternative {name!r} (it has: {known})")
        return dataclasses.replace(
            self, name=f"{self.name}:{name}", conventions=self.alternatives[name]
        )

    def printed_run(self, variant: str) -> Optional[PrintedRun]:
        """Return what the document printed for `variant`, or None."""
        return next((run for run in self.printed if run.variant == variant), None)

    def initializer_for(self, variant: str) -> str:
        """Return the initialiser name for `variant` ("plain" may differ, see `plain_initializer`)."""
        if variant == "plain" and self.plain_initializer:
            return self.plain_initializer
        return self.initializer

    def trainer_learning_rate(self, learning_rate: Optional[float] = None) -> float:
        """Return the learning rate to give ``gluon.Trainer`` when train_ch5 steps by the batch size."""
        lr = self.learning_rate if learning_rate is None else learning_rate
        return lr * self.batch_size if self.loss_reduction == "sum" else lr

    def describe_dataset(self, dataset: str) -> str:
        """Return what a run on `dataset` trained on, naming the stand-in for the document's data.

        E.g. "run on MNIST", or "run on Fashion-MNIST as a stand-in for MNIST (the document's
        data)" when `dataset` is not the document's.

        Parameters
        ----------
        dataset : {"fashion-mnist", "mnist"}
            What the run trained on.
        """
        ours, theirs = (DATASET_NAMES.get(d, d) for d in (dataset, self.dataset))
        if dataset == self.dataset:
            return f"run on {ours}"
        return f"run on {ours} as a stand-in for {theirs} (the document's data)"


def _lines(*rows: Tuple[float, ...]) -> Tuple[EpochLine, ...]:
    return tuple(EpochLine(i + 1, *row) for i, row in enumerate(rows))


D2L_10 = Recipe(
    name="d2l-1.0",
    title="Dive into Deep Learning 1.0, Batch Normalization (MXNet numpy API)",
    source_file="000_32df65c4343fecbf.txt",
    section="8.5 Batch Normalization: implementation from scratch, LeNet, concise implementation",
    dialect="d2l 1.0, mxnet.np/npx, d2l.Classifier",
    conventions=Conventions(momentum=0.1, momentum_on="batch", moving_var_init=1.0),
    pool="avg",
    initializer="default",
    plain_initializer="xavier",
    learning_rate=0.1,
    batch_size=128,
    num_epochs=10,
    loop="d2l.Trainer",
    claim="Batch normalization trains faster than plain LeNet: the same accuracy in fewer epochs.",
    assumptions=(
        "The document shows the networks but not the training call; the chapter trains with "
        "d2l.Trainer(max_epochs=10, num_gpus=1).fit(model, d2l.FashionMNIST(batch_size=128)) "
        "at learning rate 0.1, which is the default loop here, in numpy mode "
        "(gluon_bn.FashionMNIST stands in for d2l.FashionMNIST offline). --loop train_ch5 "
        "trains the same networks with the nd-API loop of the other documents instead.",
        "In the d2l.Trainer loop, plain LeNet is the book's own (its LeNet section): first "
        "convolution padded by 2, activations in the layers, Xavier weights.",
        "The networks call self.initialize() with no initialiser, so MXNet's default "
        "(uniform on [-0.07, 0.07]) draws the weights.",
        "d2l.Classifier minimises the batch-mean loss with plain SGD; train_ch5's summed "
        "loss with trainer.step(batch_size) gives the same gradients.",
        "In the train_ch5 loop, plain LeNet (for the claim) is the BN LeNet without BN, "
        "initialised with Xavier as the book's LeNet section does; with MXNet's default uniform draws at lr 0.1 the sigmoid LeNet stays at chance "
        "for all 10 epochs (measured), which would make the claim trivially true.",
        "The document printed no numbers, only curves: the claim is what we check.",
    ),
)

D2L_EN = Recipe(
    name="d2l-en",
    title="Dive into Deep Learning (English, 2019), Batch Normalization (MXNet nd API)",
    source_file="001_baf934a867b59657.txt",
    section="Batch Normalization: from scratch, LeNet with Batch Norm, Batch Norm in Gluon",
    dialect="d2l 0.x, mxnet.nd, d2l.train_ch5",
    conventions=Conventions(momentum=0.9, momentum_on="moving", moving_var_init=0.0),
    pool="max",
    initializer="xavier",
    learning_rate=1.0,
    batch_size=256,
    num_epochs=5,
    printed=(
        PrintedRun(
            "scratch",
            "gpu(0)",
            _lines(
                (0.6847, 0.752, 0.792, 3.7),
                (0.4129, 0.850, 0.855, 3.6),
                (0.3586, 0.870, 0.866, 3.6),
                (0.3320, 0.879, 0.874, 3.5),
                (0.3108, 0.888, 0.864, 3.5),
            ),
        ),
        PrintedRun(
            "gluon",
            "gpu(0)",
            _lines(
                (0.6533, 0.768, 0.802, 2.3),
                (0.4023, 0.854, 0.876, 2.4),
                (0.3536, 0.872, 0.863, 2.4),
                (0.3251, 0.883, 0.885, 2.4),
                (0.3070, 0.889, 0.871, 2.3),
            ),
        ),
    ),
    printed_gamma_beta=(
        (1.7873654, 0.61735505, 1.7933072, 1.687522, 1.5147648, 1.6866305),
        (0.91468376, 0.50423574, -0.01995357, 0.7233319, -0.65631443, -1.8838943),
    ),
    assumptions=("The document ran on an unnamed GPU; we run on CPU, so times differ.",),
)

D2L_017 = Recipe(
    name="d2l-0.17",
    title="Dive into Deep Learning 0.17 (PyTorch), 7.5 Batch Normalization, reproduced in MXNet",
    source_file="002_e852e6b8b47aeaf0.txt",
    section="7.5.3 Implementation from Scratch, 7.5.4 Applying BN in LeNet, concise implementation",
    dialect="d2l 0.17, PyTorch, d2l.train_ch6 (Colab notebook)",
    conventions=Conventions(momentum=0.9, momentum_on="moving", moving_var_init=1.0),
    pool="avg",
    flatten=True,
    initializer="xavier",
    learning_rate=1.0,
    batch_size=256,
    num_epochs=10,
    printed=(
        PrintedRun(
            "scratch",
            "cuda:0",
            (EpochLine(10, 0.267, 0.901, 0.786),),
            examples_per_sec=21544.3,
            note="only the final epoch was printed",
        ),
        PrintedRun(
            "gluon",
            "cuda:0",
            (EpochLine(10, 0.268, 0.902, 0.853),),
            examples_per_sec=33000.3,
            note="built-in layer was PyTorch's nn.BatchNorm2d/1d; ours is nn.BatchNorm",
        ),
    ),
    assumptions=(
        "Reproduced in MXNet: train_ch6's xavier_uniform weights become init.Xavier() "
        "(the same uniform bound); PyTorch's default bias draws become zeros.",
        "The built-in variant in the document is PyTorch's BatchNorm, whose running variance "
        "uses the unbiased batch variance; MXNet's nn.BatchNorm uses the biased one.",
        "train_ch6 reports examples/sec over training time only; ours is reported the same way.",
    ),
)

D2L_ZH = Recipe(
    name="d2l-zh",
    title="动手学深度学习 (d2l-zh), 批量归一化 (MXNet nd API)",
    source_file="003_a35f7be6518f7b29.txt",
    section="批量归一化: 从零实现, 使用批量归一化层的LeNet",
    dialect="d2lzh, mxnet.nd, d2l.train_ch5",
    conventions=Conventions(momentum=0.9, momentum_on="batch", moving_var_init=0.0),
    pool="max",
    flatten=True,
    initializer="normal-0.01",
    learning_rate=0.9,
    batch_size=256,
    num_epochs=5,
    printed=(
        PrintedRun(
            "scratch",
            "cpu(0)",
            _lines(
                (0.8537, 0.681, 0.808, 57.2),
                (0.4769, 0.828, 0.842, 53.3),
                (0.3950, 0.857, 0.871, 50.4),
                (0.3598, 0.871, 0.880, 48.5),
                (0.3388, 0.877, 0.880, 48.1),
            ),
        ),
    ),
    assumptions=(
        "As written, the document updates moving = (1 - momentum) * moving + momentum * batch "
        "with momentum 0.9, so the moving statistics follow the latest batch closely. Upstream "
        "d2l-zh uses MXNet's form (momentum weighs the moving statistic); the alternative "
        "'upstream' runs that.",
        "The document trains only the scratch variant; the Gluon variant uses nn.BatchNorm "
        "with the same set-up.",
    ),
    alternatives={"upstream": Conventions(momentum=0.9, momentum_on="moving", moving_var_init=0.0)},
    published_elsewhere={
        "upstream": PublishedRuns(
            source="the upstream d2l-zh book (the MXNet edition document 003 transcribes), its "
            "printed last epoch as quoted in this project's issue 14; not in the five "
            "documents, and not checked against a copy of the book here. Its set-up is the "
            "book's, which may differ from 003 as written in more than the momentum form "
            "(003 trains at lr 0.9 from Normal(0.01) weights)",
            runs=(
                PrintedRun("scratch", "not stated", (EpochLine(5, 0.3051, 0.890, 0.870),)),
                PrintedRun("gluon", "not stated", (EpochLine(5, 0.3071, 0.889, 0.881),)),
            ),
        )
    },
)

STRAIGHT_DOPE = Recipe(
    name="straight-dope",
    title="The Straight Dope (gluon.mxnet.io), Batch Normalization from scratch",
    source_file="004_bad4ad6cabfe7056.txt",
    section="chapter04 convolutional neural networks: cnn-batch-norm-scratch",
    dialect="MXNet nd, hand-written network, parameters and SGD",
    conventions=Conventions(
        momentum=0.9,
        momentum_on="moving",
        moving_var_init=0.0,
        moving_init="first_batch",
        update_in_prediction=True,
    ),
    network="straight-dope",
    initializer="straight-dope",
    learning_rate=0.001,
    batch_size=64,
    num_epochs=1,
    loss_reduction="sum",
    dataset="mnist",
    printed=(
        PrintedRun(
            "scratch",
            "gpu(0)",
            (EpochLine(1, 0.06240094275482456, 0.9881667, 0.989),),
            note="loss is a 0.99/0.01 running average of batch-mean losses; train and "
            "test accuracy come from passes after training that also update the "
            "moving statistics (test first, then train)",
        ),
    ),
    assumptions=(
        "The document's SGD steps by lr * gradient of the summed batch loss with lr 0.001; "
        "train_ch5 divides by the batch size, so the trainer gets 0.001 * 64.",
        "Its moving statistics live in dicts keyed by layer name; here they belong to each "
        "layer (first batch seeds them, prediction mode keeps updating them).",
        "It trained on MNIST digits; where MNIST cannot be downloaded the recipe runs on "
        "Fashion-MNIST, and reports say so.",
        "moving_var_init does not matter here: the first batch replaces the starting values.",
    ),
)

RECIPES: Dict[str, Recipe] = {r.name: r for r in (D2L_10, D2L_EN, D2L_017, D2L_ZH, STRAIGHT_DOPE)}


def get_recipe(name: str) -> Recipe:
    """Return the recipe called `name`, optionally ``NAME:ALTERNATIVE`` (e.g. ``d2l-zh:upstream``).

    Raises
    ------
    KeyError
        With the known names, when `name` is not one.
    """
    base, _, alternative = name.partition(":")
    if base not in RECIPES:
        raise KeyError(f"unknown recipe {name!r}; known recipes: {', '.join(RECIPES)}")
    recipe = RECIPES[base]
    return recipe.with_alternative(alternative) if alternative else recipe
