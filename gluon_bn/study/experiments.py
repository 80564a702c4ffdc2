"""The experiments behind the studies: one configuration trained and measured with one seed.

Everything is the package's own: LeNet from :func:`gluon_bn.models.lenet` (with the
variants the claims need as its options), the data from :mod:`gluon_bn.data`'s fast
pipeline, training by :func:`gluon_bn.run.training.train_ch5`, document 000's loop through
:func:`gluon_bn.run.reproduce.run_variant`, timings from :mod:`gluon_bn.bench.bench` (see
:mod:`gluon_bn.study.speed`). A run whose loss diverges (``TrainingDiverged``) is recorded
as diverged, with its accuracies None and its remaining epochs at chance in the curve.
"""

from __future__ import annotations

import io
import sys
from typing import Callable, Dict, Optional, TextIO, Tuple

from gluon_bn import data as gdata
from gluon_bn.bn.variants import recompute_statistics, statistics_of
from gluon_bn.models import hybridize_network, lenet
from gluon_bn.options import RunOptions
from gluon_bn.recipes import get_recipe
from gluon_bn.records import HELD_OUT_ACCURACY
from gluon_bn.run.reproduce import run_variant
from gluon_bn.run.training import (
    TrainingDiverged,
    evaluate_accuracy,
    prepare_network,
    seed_everything,
    train_ch5,
)
from gluon_bn.runtime.loader import mx
from gluon_bn.study.judging import CHANCE
from gluon_bn.study.registry import Settings, Study
from gluon_bn.study.study_record import Configuration

autograd = mx.autograd
EVAL_BATCH = 256  # batch size of the evaluation passes that do not depend on it


class Experiment:
    """Measures the configurations of one study; the data set is read once, here.

    Parameters
    ----------
    study : Study
        Which study (its recipe gives LeNet's pooling, initialisation and BN conventions).
    settings : Settings
        Seeds, epochs, data fraction, batch size, learning rate, grid, parameters.
    ctx : Context, optional
        Default CPU.
    file : text stream, optional
        Where notes go; the loops' own epoch lines are kept out of it.
    """

    def __init__(
        self, study: Study, settings: Settings, ctx=None, *, file: Optional[TextIO] = None
    ):
        self.study, self.settings = study, settings
        self.recipe = get_recipe(study.recipe)
        self.ctx = ctx or mx.cpu()
        self.file = file or sys.stdout
        self._arrays = None

    # ------------------------------------------------------------------ data
    def arrays(self):
        """Return the training and test images and labels kept by the settings (read once)."""
        if self._arrays is None:
            train_x, train_y, test_x, test_y = gdata.load_arrays(gdata.FASHION_MNIST, None)
            n, m = self.settings.train_examples, self.settings.test_examples
            self._arrays = (train_x[:n], train_y[:n], test_x[:m], test_y[:m])
        return self._arrays

    def batches(self, batch_size: int, *, train: bool, seed: Optional[int] = None):
        """Return the fast pipeline's iterator over the training (shuffled when seeded) or test images."""
        train_x, train_y, test_x, test_y = self.arrays()
        x, y = (train_x, train_y) if train else (test_x, test_y)
        return gdata.FastBatchIterator(x, y, batch_size, shuffle=seed is not None, seed=seed)

    # ------------------------------------------------------------------ networks and training
    def network(self, options: Dict[str, object]):
        """Return this recipe's LeNet with `options` (bn kind and variants), initialised on ctx."""
        return self._prepared(options, None)[0]

    def trainable(
        self, options: Dict[str, object], lr: Optional[float] = None
    ) -> Tuple[object, object, object]:
        """Return a network of `options` initialised on ctx, its static graph and its trainer.

        The network is this recipe's LeNet with the options' BN kind and variants, made ready
        by :func:`gluon_bn.run.training.prepare_network` (initialised before it is compiled);
        the trainer's rate is `lr` as the recipe scales it (default the recipe's).
        """
        net, trainer = self._prepared(options, lr)
        return net, hybridize_network(net, "graph"), trainer

    def _prepared(self, options: Dict[str, object], lr: Optional[float]) -> Tuple[object, object]:
        recipe, conv = self.recipe, self.recipe.conventions
        kind = str(options.get("bn", "gluon"))
        activation = dict(self.settings.params).get("activation", "sigmoid")  # the documents'
        net = lenet(
            kind,
            pool=recipe.pool,
            flatten=recipe.flatten,
            activation=str(activation),
            bn_options={"momentum": conv.gluon_momentum(), "eps": conv.eps},
            bn_position=str(options.get("bn_position", "before")),
            bias_before_bn=bool(options.get("bias_before_bn", True)),
            dropout=float(options.get("dropout", 0.0)),
            noise=options.get("noise"),
        )
        variant = "plain" if kind == "none" else "gluon"
        rate = None if lr is None else recipe.trainer_learning_rate(lr)
        return prepare_network(recipe, variant, net=net, ctx=self.ctx, learning_rate=rate)

    def train(
        self, options: Dict[str, object], seed: int, *, lr: float, batch_size: int
    ) -> Tuple[object, object, dict]:
        """Train a network of `options` with train_ch5; return (net, compiled net, outcome).

        The outcome holds ``curve`` (test accuracy per epoch), ``loss``, ``final_acc``,
        ``train_seconds``, ``diverged`` and, if so, ``diverged_at``.
        """
        seed_everything(seed)
        net, compiled, trainer = self.trainable(options, lr)
        history = []
        outcome = guarded(
            lambda: train_ch5(
                compiled,
                self.batches(batch_size, train=True, seed=seed),
                self.batches(EVAL_BATCH, train=False),
                batch_size,
                trainer,
                self.ctx,
                self.settings.epochs,
                file=io.StringIO(),
                sync_every_batch=False,
                on_epoch_end=history.append,
                progress=False,
            ),
            history,
            self.settings.epochs,
            "test_acc",
        )
        return net, compiled, outcome

    def accuracy(
        self, net, batch_size: int, *, train: bool = False, training_mode: bool = False
    ) -> float:
        """Return `net`'s accuracy on the kept test (or training) images in batches of `batch_size`.

        With `training_mode`, each batch is normalised by its own statistics (Gluon's
        training mode, outside autograd's recording); the moving statistics this updates
        are restored afterwards.
        """
        data = self.batches(batch_size, train=train)
        if not training_mode:
            return evaluate_accuracy(data, net, self.ctx)
        saved = [
            (p, p.data(self.ctx).copy())
            for layer in _layers(net)
            for p in (statistics_of(layer) or ())
        ]
        with autograd.train_mode():
            value = evaluate_accuracy(data, net, self.ctx)
        for param, value_before in saved:
            param.set_data(value_before)
        return value

    # ------------------------------------------------------------------ measuring
    def measure(self, config: Configuration, seed: int) -> dict:
        """Train and measure `config` with `seed`; return its numbers (without the seed)."""
        return MEASURES[self.study.name](self, config, seed)


def guarded(train: Callable[[], object], history: list, epochs: int, metric: str) -> dict:
    """Run `train` (which appends epoch records to `history`); a divergence becomes data.

    Returns
    -------
    dict
        ``curve`` (`metric` per epoch; after a divergence the remaining epochs at chance),
        ``loss``, ``final_acc`` (None if diverged), ``train_seconds``, ``diverged`` and
        ``diverged_at`` (the loop's message) when it diverged.
    """
    diverged = None
    try:
        train()
    except TrainingDiverged as err:
        diverged = f"epoch {err.epoch}" + (f", batch {err.batch}" if err.batch else "")
    curve = [getattr(h, metric) for h in history]
    outcome = {
        "curve": curve + [CHANCE] * (epochs - len(curve)) if diverged else curve,
        "loss": [h.loss if hasattr(h, "loss") else h.train_loss for h in history],
        "final_acc": None if diverged or not curve else curve[-1],
        "train_seconds": sum(getattr(h, "train_seconds", h.seconds) for h in history),
        "diverged": diverged is not None,
    }
    if diverged:
        outcome["diverged_at"] = diverged
    return outcome


def _layers(net):
    """Every block of `net`, depth first (the BN layers among them)."""
    for block in net._children.values():
        yield block
        yield from _layers(block)


# --------------------------------------------------------------------------- per study


def _faster(exp: Experiment, config: Configuration, seed: int) -> dict:
    """Document 000's networks in one of its loops, as ``gluon-bn reproduce d2l-1.0`` runs them,
    but with d2l.Trainer's held-out accuracy counted over the examples (``held_out``)."""
    s, loop, variant = exp.settings, config.settings["loop"], config.settings["variant"]
    options = RunOptions(
        variants=(variant,),
        seeds=(seed,),
        epochs=s.epochs,
        lr=s.lr,
        batch_size=s.batch_size,
        bn_impl="fast",
        loop=loop,
        pipeline="fast" if loop == "train_ch5" else "d2l",
        dataset="fashion-mnist",
        limit=s.train_examples,
        test_limit=s.test_examples,
    )
    run = options.resolve(exp.recipe, dataset="fashion-mnist")
    history = []
    # the board's val_acc averages per-batch accuracies; the study counts correct / examples
    outcome = guarded(
        lambda: run_variant(
            run,
            variant,
            seed,
            exp.ctx,
            file=io.StringIO(),
            on_epoch_end=history.append,
            progress=False,
            val_acc="counted",
        ),
        history,
        s.epochs,
        HELD_OUT_ACCURACY[loop],
    )
    return {**outcome, "held_out": "counted"}


def _trained(exp: Experiment, config: Configuration, seed: int) -> dict:
    """Train the configuration's network at the settings' (or its own) learning rate."""
    settings = config.settings
    _, _, outcome = exp.train(
        settings,
        seed,
        lr=float(settings.get("lr", exp.settings.lr)),
        batch_size=int(settings.get("batch_size", exp.settings.batch_size)),
    )
    return outcome


def _batch_noise(exp: Experiment, config: Configuration, seed: int) -> dict:
    """Train one BN LeNet as the documents do; test it with batch statistics at every
    evaluation batch size, with its moving averages, and with whole-data statistics."""
    s = exp.settings
    net, compiled, outcome = exp.train(config.settings, seed, lr=s.lr, batch_size=s.batch_size)
    if outcome["diverged"]:
        return {**outcome, "moving_acc": None, "batch_stats_acc": None, "population_acc": None}
    moving = exp.accuracy(compiled, EVAL_BATCH)  # prediction mode: each example on its own
    batch_stats = {
        str(int(b)): _own_statistics(exp, compiled, int(b), seed)
        for b in config.settings["eval_batch_sizes"]
    }
    recompute_statistics(net, [X for X, _ in exp.batches(EVAL_BATCH, train=True)], exp.ctx)
    population = exp.accuracy(compiled, EVAL_BATCH)
    return {
        **outcome,
        "moving_acc": moving,
        "batch_stats_acc": batch_stats,
        "population_acc": population,
    }


def _own_statistics(exp: Experiment, net, size: int, seed: int) -> float:
    """Return the test accuracy with each batch of `size` normalised by its own statistics.

    The test images are shuffled by `seed`, so each batch is a random draw; Gluon's training
    mode outside autograd's recording uses the batch's statistics, and the moving
    statistics it updates are restored afterwards.
    """
    saved = [
        (p, p.data(exp.ctx).copy()) for layer in _layers(net) for p in (statistics_of(layer) or ())
    ]
    with autograd.train_mode():
        value = evaluate_accuracy(exp.batches(size, train=False, seed=seed), net, exp.ctx)
    for param, before in saved:
        param.set_data(before)
    return value


def _regularization(exp: Experiment, config: Configuration, seed: int) -> dict:
    """Train one network at one rate until it fits its training images (or the epoch budget).

    The kept training images lose their last ``validation`` share to a validation split,
    never trained on. After every epoch, in prediction mode: the training loss and accuracy
    on the images trained on (``train_loss``, ``train_accs``), the validation accuracy
    (``val_accs``) and the test accuracy (``curve``). Training stops at the first epoch whose
    training loss is at most ``fit_loss`` (``fit_epoch``; None: censored).
    """
    s, options = exp.settings, config.settings
    train_x, train_y, _, _ = exp.arrays()
    held = max(1, round(len(train_y) * float(options["validation"])))
    fit_x, fit_y, val_x, val_y = train_x[:-held], train_y[:-held], train_x[-held:], train_y[-held:]
    seed_everything(seed)
    net, compiled, trainer = exp.trainable(options, float(options["lr"]))
    train_iter = gdata.FastBatchIterator(fit_x, fit_y, s.batch_size, shuffle=True, seed=seed)
    test_iter = exp.batches(EVAL_BATCH, train=False)
    history, kept = [], {"train_loss": [], "train_accs": [], "val_accs": []}
    fit = float(options["fit_loss"])

    def train() -> None:
        for epoch in range(1, s.epochs + 1):
            train_ch5(
                compiled,
                train_iter,
                test_iter,
                s.batch_size,
                trainer,
                exp.ctx,
                epoch,
                start_epoch=epoch - 1,
                file=io.StringIO(),
                sync_every_batch=False,
                on_epoch_end=history.append,
                progress=False,
            )
            loss, accuracy = loss_and_accuracy(compiled, fit_x, fit_y, exp.ctx)
            kept["train_loss"].append(loss)
            kept["train_accs"].append(accuracy)
            kept["val_accs"].append(loss_and_accuracy(compiled, val_x, val_y, exp.ctx)[1])
            if loss <= fit:
                return

    outcome = guarded(train, history, s.epochs, "test_acc")
    losses = kept["train_loss"]
    fitted = next((i for i, v in enumerate(losses, 1) if v <= fit), None)
    last = {"train_acc": None, "val_acc": None, "gap": None}
    if not outcome["diverged"] and losses:
        last = {
            "train_acc": kept["train_accs"][-1],
            "val_acc": kept["val_accs"][-1],
            "gap": kept["train_accs"][-1] - outcome["final_acc"],
        }
    return {**outcome, **kept, **last, "fit_epoch": None if outcome["diverged"] else fitted}


def loss_and_accuracy(net, images, labels, ctx) -> Tuple[float, float]:
    """Return `net`'s mean softmax cross-entropy and accuracy on `images`, in prediction mode."""
    loss_fn = mx.gluon.loss.SoftmaxCrossEntropyLoss()
    total, correct = 0.0, 0.0
    for X, y in gdata.FastBatchIterator(images, labels, EVAL_BATCH, shuffle=False):
        X, y = X.as_in_context(ctx), y.as_in_context(ctx)
        out = net(X)
        total += loss_fn(out, y).sum().asscalar()
        correct += (out.argmax(axis=1) == y.astype("float32")).sum().asscalar()
    return total / len(labels), correct / len(labels)


def _speed(exp: Experiment, config: Configuration, seed: int) -> dict:
    from gluon_bn.study.speed import measure_speed

    return measure_speed(exp, config, seed)


def _ablation(exp: Experiment, config: Configuration, seed: int) -> dict:
    """Each network at its best rate of the grid, chosen on a validation split; or the bias identity."""
    from gluon_bn.study.ablation_runs import measure_ablation

    return measure_ablation(exp, config, seed)


MEASURES: Dict[str, Callable[[Experiment, Configuration, int], dict]] = {
    "faster": _faster,
    "learning-rate": _trained,
    "batch-noise": _batch_noise,
    "regularization": _regularization,
    "covariate-shift": _trained,
    "compiled-speed": _speed,
    "ablations": _ablation,
}
