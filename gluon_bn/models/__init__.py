"""The networks of the documents: LeNet with and without batch normalization, and document 004's convnet."""

from __future__ import annotations

import warnings
from typing import Any, Mapping, Optional

from gluon_bn.bn.layer import BatchNorm
from gluon_bn.bn.modal import ModeHybridSequential, needs_mode_graphs
from gluon_bn.bn.variants import AffineNoise, PartialBatchNorm
from gluon_bn.recipes import VARIANTS, Recipe
from gluon_bn.runtime import synchronous_engine
from gluon_bn.runtime.loader import mx

nn = mx.gluon.nn
init = mx.init

# "frozen": nn.BatchNorm with gamma and beta fixed at 1 and 0; "mean-only" / "var-only":
# gluon_bn.bn.variants.PartialBatchNorm, which only centres / only scales.
BN_KINDS = ("none", "scratch", "gluon", "frozen", "mean-only", "var-only")
POOLS = ("max", "avg")
BN_POSITIONS = ("before", "after")  # BN before the activation (the documents) or after it
from gluon_bn.options import BN_IMPLS, HYBRIDIZE_MODES  # noqa: E402  (pure data, shared with the run options)


def make_bn(
    kind: str, num_features: int, num_dims: int, options: Optional[Mapping[str, Any]] = None
) -> Optional[mx.gluon.Block]:
    """Return the batch normalization layer of `kind` for a layer's output, or None.

    Parameters
    ----------
    kind : {"none", "scratch", "gluon", "frozen", "mean-only", "var-only"}
        No normalization, :class:`gluon_bn.BatchNorm`, ``mx.gluon.nn.BatchNorm``, the
        latter with gamma and beta frozen at 1 and 0, or
        :class:`gluon_bn.bn.variants.PartialBatchNorm` centring only / scaling only.
    num_features : int
        Channels (4-D) or features (2-D) of the normalised output.
    num_dims : int
        2 or 4.
    options : mapping, optional
        Keywords for the scratch layer (conventions, initialisers). The Gluon layer takes
        only `eps`, `momentum` (in its own form) and the gamma/beta initialisers from it.
    """
    options = dict(options or {})
    if kind == "none":
        return None
    if kind == "scratch":
        return BatchNorm(num_features, num_dims, **options)
    if kind in ("gluon", "frozen"):
        learned = kind == "gluon"
        return nn.BatchNorm(
            momentum=options.get("momentum", 0.9),
            epsilon=options.get("eps", 1e-5),
            gamma_initializer=options.get("gamma_initializer") or "ones",
            beta_initializer=options.get("beta_initializer") or "zeros",
            center=learned,
            scale=learned,
            in_channels=num_features,
        )
    if kind in ("mean-only", "var-only"):
        part = {"mean-only": "mean", "var-only": "variance"}[kind]
        return PartialBatchNorm(
            num_features,
            num_dims,
            part=part,
            eps=options.get("eps", 1e-5),
            momentum=options.get("momentum", 0.9),
        )
    raise ValueError(f"bn must be one of {BN_KINDS}, got {kind!r}")


def _add(net: nn.Sequential, *blocks: Optional[mx.gluon.Block]) -> None:
    net.add(*(b for b in blocks if b is not None))


def lenet(
    bn: str = "scratch",
    *,
    pool: str = "max",
    flatten: bool = False,
    activation: str = "sigmoid",
    num_classes: int = 10,
    padding: int = 0,
    bn_options: Optional[Mapping[str, Any]] = None,
    bn_position: str = "before",
    bias_before_bn: bool = True,
    dropout: float = 0.0,
    noise: Optional[Mapping[str, float]] = None,
) -> nn.Sequential:
    """Build LeNet as the documents do, with batch normalization after each conv and dense layer.

    Layout (Fashion-MNIST input (N, 1, 28, 28)): conv 6@5x5 -> (N, 6, 24, 24) -> BN ->
    activation -> pool 2 -> (N, 6, 12, 12) -> conv 16@5x5 -> (N, 16, 8, 8) -> BN -> activation
    -> pool 2 -> (N, 16, 4, 4) -> [flatten (N, 256)] -> dense 120 -> BN -> activation ->
    dense 84 -> BN -> activation -> dense `num_classes`.

    Parameters
    ----------
    bn : str
        One of :data:`BN_KINDS`: plain LeNet ("none"), the scratch layer, Gluon's
        ``nn.BatchNorm``, or the variants :func:`make_bn` describes.
    pool : {"max", "avg"}
        Documents 001 and 003 max-pool, documents 000 and 002 average-pool.
    flatten : bool
        An explicit ``nn.Flatten()`` before the first dense layer (document 003); Gluon's
        Dense flattens by itself, so the numbers are the same either way.
    activation : str
        Any ``nn.Activation`` name; the documents use ``"sigmoid"``.
    num_classes : int
        Width of the output layer.
    padding : int
        Zero padding of the first convolution: 0 in every document's BN LeNet, 2 in the
        book's plain LeNet (then conv1 gives (N, 6, 28, 28) and dense 120 sees 400 inputs).
    bn_options : mapping, optional
        Passed to :func:`make_bn`.
    bn_position : {"before", "after"}
        BN between each layer and its activation (the documents), or after the activation.
    bias_before_bn : bool
        False drops the bias of every layer that BN follows (BN's mean removes it anyway).
    dropout : float
        Rate of an ``nn.Dropout`` after the activation of each hidden dense layer (0: none).
    noise : mapping, optional
        Keywords of :class:`gluon_bn.bn.variants.AffineNoise`, added after every BN layer:
        random per-channel shift and scale at every training step.
    """
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    if bn_position not in BN_POSITIONS:
        raise ValueError(f"bn_position must be one of {BN_POSITIONS}, got {bn_position!r}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
    Pool = nn.MaxPool2D if pool == "max" else nn.AvgPool2D
    use_bias = bias_before_bn or bn == "none" or bn_position == "after"

    def stage(layer, channels: int, num_dims: int) -> list:
        """The layer, its BN (and noise), and its activation, in the order asked."""
        norm = [make_bn(bn, channels, num_dims, bn_options)]
        if noise is not None and norm[0] is not None:
            norm.append(AffineNoise(channels, **noise))
        act = [nn.Activation(activation)]
        return [layer] + (norm + act if bn_position == "before" else act + norm)

    net = nn.Sequential()
    _add(
        net,
        *stage(nn.Conv2D(6, kernel_size=5, padding=padding, use_bias=use_bias), 6, 4),
        Pool(pool_size=2, strides=2),
    )
    _add(
        net,
        *stage(nn.Conv2D(16, kernel_size=5, use_bias=use_bias), 16, 4),
        Pool(pool_size=2, strides=2),
    )
    if flatten:
        net.add(nn.Flatten())
    for width in (120, 84):
        _add(
            net,
            *stage(nn.Dense(width, use_bias=use_bias), width, 2),
            nn.Dropout(dropout) if dropout else None,
        )
    net.add(nn.Dense(num_classes))
    return net


class ShiftedNormal(init.Initializer):
    """Draw from a normal distribution with mean `loc` and standard deviation `scale`.

    Document 004 draws every weight and bias from N(0, 0.01^2) and every gamma from N(1, 0.01^2).
    """

    def __init__(self, loc: float = 0.0, scale: float = 0.01):
        super().__init__(loc=loc, scale=scale)
        self.loc, self.scale = loc, scale

    def _init_weight(self, _, arr):
        mx.nd.random.normal(self.loc, self.scale, shape=arr.shape, out=arr)

    _init_bias = _init_gamma = _init_beta = _init_default = _init_weight


def straight_dope_convnet(
    bn: str = "scratch",
    *,
    num_classes: int = 10,
    weight_scale: float = 0.01,
    bn_options: Optional[Mapping[str, Any]] = None,
) -> nn.Sequential:
    """Build document 004's convnet, its parameters drawn as the document draws them.

    Layout (input (N, 1, 28, 28)): conv 20@3x3 -> (N, 20, 26, 26) -> BN -> ReLU -> avg-pool 2
    -> (N, 20, 13, 13) -> conv 50@5x5 -> (N, 50, 9, 9) -> BN -> ReLU -> avg-pool 2 ->
    (N, 50, 4, 4) -> flatten (N, 800) -> dense 128 -> BN -> ReLU -> dense `num_classes`.
    Weights, biases and beta ~ N(0, weight_scale^2), gamma ~ N(1, weight_scale^2), set on
    each parameter so that any initialiser passed to ``initialize`` leaves them alone.

    Parameters
    ----------
    bn : {"none", "scratch", "gluon"}
        Which batch normalization layer.
    num_classes : int
        Width of the output layer.
    weight_scale : float
        Standard deviation of every drawn parameter.
    bn_options : mapping, optional
        Conventions for the scratch layer (document 004's recipe passes first-batch seeding and
        updates in prediction mode).
    """
    drawn = ShiftedNormal(0.0, weight_scale)
    options = dict(bn_options or {})
    options.update(gamma_initializer=ShiftedNormal(1.0, weight_scale), beta_initializer=drawn)

    def conv(channels: int, kernel: int) -> nn.Conv2D:
        return nn.Conv2D(
            channels, kernel_size=kernel, weight_initializer=drawn, bias_initializer=drawn
        )

    net = nn.Sequential()
    _add(
        net,
        conv(20, 3),
        make_bn(bn, 20, 4, options),
        nn.Activation("relu"),
        nn.AvgPool2D(pool_size=2, strides=2),
    )
    _add(
        net,
        conv(50, 5),
        make_bn(bn, 50, 4, options),
        nn.Activation("relu"),
        nn.AvgPool2D(pool_size=2, strides=2),
    )
    net.add(nn.Flatten())
    _add(
        net,
        nn.Dense(128, weight_initializer=drawn, bias_initializer=drawn),
        make_bn(bn, 128, 2, options),
        nn.Activation("relu"),
    )
    net.add(nn.Dense(num_classes, weight_initializer=drawn, bias_initializer=drawn))
    return net


def check_hybridize_mode(mode: str) -> None:
    """Raise ValueError unless `mode` is one of :data:`HYBRIDIZE_MODES`."""
    if mode not in HYBRIDIZE_MODES:
        raise ValueError(f"hybridize must be one of {HYBRIDIZE_MODES}, got {mode!r}")


def hybridize_network(net: nn.Sequential, mode: str) -> mx.gluon.Block:
    """Return `net` compiled as `mode` says; the parameters stay the same objects.

    Parameters
    ----------
    net : nn.Sequential
        Built by :func:`lenet` or :func:`straight_dope_convnet`, initialised or not.
    mode : {"none", "layers", "graph"}
        ``"none"``: `net` as it is (imperative). ``"layers"``: ``net.hybridize()``, as the
        documents do: every hybridizable layer becomes its own compiled graph.
        ``"graph"``: every run of consecutive hybridizable layers is moved into one
        ``HybridSequential`` compiled with static memory and shapes
        (``static_alloc=True, static_shape=True``): one graph for a whole Gluon LeNet or
        native scratch LeNet (a :class:`gluon_bn.bn.modal.ModeHybridSequential`, one graph
        per mode, when it holds the native layer), and the segments between the faithful
        or fast scratch layers (which stay Blocks, their own kernels hybridized).
        A graph holding the native layer gets ``static_shape`` only under NaiveEngine:
        ``static_shape`` bulks operators into engine segments that list a mutable input
        (the layer's moving statistics) as read, not written (MXNet 1.9.1,
        ``src/imperative/imperative_utils.h:971``), so under the threaded engine a read of
        them could overtake the step that writes them; NaiveEngine runs each operator
        before the call returns.

    Returns
    -------
    gluon.Block
        `net` itself for "none" and "layers"; for "graph" a new ``nn.Sequential`` of the
        segments (or one ``HybridSequential``), so parameter names in saved files gain the
        segment index.
    """
    check_hybridize_mode(mode)
    if mode == "none":
        return net
    if mode == "layers":
        with warnings.catch_warnings():  # MXNet's advice to use HybridSequential: see "graph"
            warnings.filterwarnings("ignore", message="All children of this Sequential")
            net.hybridize()
        return net
    segments: list = []  # HybridSequential runs and the non-hybrid blocks between them
    # The native scratch layer is compiled once per mode (gluon_bn.bn.modal); Gluon's is not.
    modes = needs_mode_graphs(net)
    Segment = ModeHybridSequential if modes else nn.HybridSequential
    for block in net._children.values():
        if isinstance(block, mx.gluon.HybridBlock):
            if not segments or not isinstance(segments[-1], nn.HybridSequential):
                segments.append(Segment(prefix=""))
            segments[-1].add(block)
        else:
            block.hybridize()  # the scratch layer's per-mode kernels
            segments.append(block)
    for segment in segments:
        if isinstance(segment, nn.HybridSequential):
            segment.hybridize(static_alloc=True, static_shape=not modes or synchronous_engine())
    if len(segments) == 1:
        return segments[0]
    graph = nn.Sequential(prefix="")
    graph.add(*segments)
    return graph


def find_bn(net: mx.gluon.Block) -> Optional[mx.gluon.Block]:
    """Return the first batch normalization layer (scratch or Gluon) in `net`, depth first."""
    for block in net._children.values():
        if isinstance(block, (BatchNorm, nn.BatchNorm)):
            return block
        found = find_bn(block)
        if found is not None:
            return found
    return None


def count_parameters(net: mx.gluon.Block, trainable_only: bool = True) -> int:
    """Return the number of scalars in `net`'s parameters (initialised or with known shape)."""
    total = 0
    for param in net.collect_params().values():
        if trainable_only and param.grad_req == "null":
            continue
        size = 1
        for dim in param.shape:
            size *= dim
        total += size
    return total


# ---------------------------------------------------------------- from a recipe
def make_initializer(name: str) -> mx.init.Initializer:
    """Return the MXNet initialiser a recipe names.

    ``"xavier"``: ``init.Xavier()`` (uniform, documents 001/002); ``"normal-0.01"``:
    ``init.Normal(0.01)`` (document 003); ``"default"``: ``init.Uniform()`` (MXNet's default,
    document 000); ``"straight-dope"``: the network draws its own parameters, so this only
    fills what it leaves (nothing).
    """
    table = {
        "xavier": mx.init.Xavier,
        "normal-0.01": lambda: mx.init.Normal(0.01),
        "default": mx.init.Uniform,
        "straight-dope": mx.init.Uniform,
    }
    if name not in table:
        raise ValueError(f"unknown initializer {name!r}; known: {', '.join(table)}")
    return table[name]()


def build_net(recipe: "Recipe", variant: str, *, bn_impl: str = "faithful") -> nn.Sequential:
    """Build the recipe's network for `variant` ("scratch", "gluon" or "plain").

    Parameters
    ----------
    recipe : Recipe
        Which document.
    variant : {"scratch", "gluon", "plain"}
        The scratch layer with the document's conventions, Gluon's ``nn.BatchNorm`` with the
        matching momentum and eps, or no batch normalization.
    bn_impl : {"faithful", "fast", "native"}
        The scratch layer's implementation (:class:`gluon_bn.bn.layer.BatchNorm`'s `impl`).
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    conv = recipe.conventions
    if variant == "scratch":
        kind, options = "scratch", conv.layer_options()
        if bn_impl not in BN_IMPLS:
            raise ValueError(f"bn_impl must be one of {BN_IMPLS}, got {bn_impl!r}")
        options["impl"] = bn_impl
    elif variant == "gluon":
        kind, options = "gluon", {"momentum": conv.gluon_momentum(), "eps": conv.eps}
    else:
        kind, options = "none", {}
    if recipe.network == "straight-dope":
        return straight_dope_convnet(kind, bn_options=options)
    return lenet(kind, pool=recipe.pool, flatten=recipe.flatten, bn_options=options)


# d2l 1.0's model classes (document 000) subclass d2l.Classifier, so they load d2l: only on use.
_BOOK_MODELS = ("LeNet", "BNLeNetScratch", "BNLeNet")


def __getattr__(name: str):
    if name in _BOOK_MODELS:
        from gluon_bn.models import book

        return getattr(book, name)
    raise AttributeError(f"module 'gluon_bn.models' has no attribute {name!r}")
