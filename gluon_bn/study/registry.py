"""The studies: one frozen dataclass per claim, with its settings. Pure data, no MXNet.

A :class:`Study` says what the documents claim and where, what is measured, the criterion
that turns the numbers into a verdict (:mod:`gluon_bn.study.criteria`), whose LeNet it
trains (a recipe of :mod:`gluon_bn.recipes`), and two :class:`Settings`: the committed
defaults and a ``--quick`` one, the comparisons its verdict reads (:class:`Claimed`) and its
deciding :class:`Scale` (both in :mod:`gluon_bn.study.settings`). ``gluon-bn study --list``
prints this module alone.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from gluon_bn.study.settings import (ACCURACY_MARGIN, SPEED_MARGIN, TEST_SIZE, TRAIN_SIZE, Claimed,
                                     Scale, Settings, percent)
from gluon_bn.study.stats import CONFIDENCE

__all__ = ["STUDIES", "Study", "get_study", "Settings", "Claimed", "Scale", "percent",
           "TRAIN_SIZE", "TEST_SIZE"]

@dataclass(frozen=True)
class Study:
    """One claim of the documents, turned into an experiment with a computed verdict.

    Attributes
    ----------
    name : str
        The command-line name, also the stem of its files.
    claim : str
        What the documents say, in their words where they have them.
    source : str
        Which document and section.
    measurement : str
        What is measured, stated before the study runs.
    criterion : str
        How the numbers decide the verdict (see :mod:`gluon_bn.study.criteria`).
    recipe : str
        Whose LeNet, initialisation and BN conventions are trained (a recipe name).
    document_epochs : int
        Epochs the documents train for (0 when the study does not train to an accuracy).
    defaults, quick : Settings
        The committed settings, and those of ``--quick``.
    grid_kind : {"lr", "batch_size"}, optional
        What ``Settings.grid`` holds.
    ablations : tuple of str
        Names of the separate verdicts (``ablations`` only).
    timed : bool
        Its numbers are times: its runs never run in parallel (``--jobs`` is ignored for it,
        with one line), since runs side by side would time each other.
    comparisons : tuple of Claimed
        The differences the criterion reads, each with its claimed direction and margin.
    deciding : Scale, optional
        The smallest scale at which the verdict is meant.
    """

    name: str
    claim: str
    source: str
    measurement: str
    criterion: str
    recipe: str
    document_epochs: int
    defaults: Settings
    quick: Settings
    grid_kind: Optional[str] = None
    ablations: Tuple[str, ...] = ()
    timed: bool = False
    comparisons: Tuple[Claimed, ...] = ()
    deciding: Optional[Scale] = None

    def stated(self, name: str) -> Claimed:
        """Return the stated comparison called `name`."""
        for claimed in self.comparisons:
            if claimed.name == name:
                return claimed
        raise KeyError(f"study {self.name} states no comparison {name!r}")

    def statement(self) -> str:
        """Return the criterion with its comparisons and margins, as printed before the runs."""
        return (f"{self.criterion}. Comparisons, each a {CONFIDENCE:.0%} t interval of a − b "
                f"paired over the shared seeds (Welch's when the seeds differ): "
                + "; ".join(c.text() + (" (shown, not deciding)" if c.role != "decides" else "")
                            for c in self.comparisons))

    def below_deciding(self, settings: Settings) -> List[str]:
        """Return how `settings` fall short of the deciding scale (empty: at or above it)."""
        return self.deciding.shortfalls(settings) if self.deciding else []

    def deciding_command(self, out: str = "results/studies") -> str:
        """Return the command that runs this study at its deciding scale."""
        d = self.deciding or Scale(self.defaults.fraction, self.defaults.epochs, self.defaults.seeds)
        return self.command(d.seeds, d.epochs, d.fraction, out=out)

    def command(self, seeds: int, epochs: int, fraction: float, *,
                batch_size: Optional[int] = None, grid: Optional[Sequence[float]] = None,
                threads: Optional[int] = None, out: str = "results/studies") -> str:
        """Return the ``gluon-bn study`` command that runs this study with these settings.

        Parameters
        ----------
        seeds, epochs, fraction
            As in :class:`Settings`.
        batch_size, grid : optional
            Named only where they differ from the study's defaults.
        threads : int, optional
            ``--threads``: the OpenMP thread count the numbers depend on.
        out : str
            ``--out``.
        """
        words = [f"gluon-bn study {self.name} --seeds {seeds} --epochs {epochs} "
                 f"--fraction {fraction:g}"]
        if batch_size is not None and batch_size != self.defaults.batch_size:
            words.append(f"--batch-size {batch_size}")
        if grid and tuple(grid) != tuple(self.defaults.grid):
            words.append("--grid " + " ".join(f"{g:g}" for g in grid))
        if threads is not None:
            words.append(f"--threads {threads}")
        return " ".join(words + [f"--out {out}"])

    def settings(self, *, quick: bool = False, seeds: Optional[int] = None,
                 epochs: Optional[int] = None, fraction: Optional[float] = None,
                 batch_size: Optional[int] = None,
                 grid: Optional[Sequence[float]] = None) -> Settings:
        """Return the defaults (or the quick settings) with what the user gave replaced, checked.

        Raises
        ------
        ValueError
            In one line, for settings that cannot run.
        """
        base = self.quick if quick else self.defaults
        given = dict(seeds=seeds, epochs=epochs, fraction=fraction, batch_size=batch_size,
                     grid=None if grid is None else tuple(grid))
        settings = dataclasses.replace(base, **{k: v for k, v in given.items() if v is not None})
        settings.check(self.grid_kind)
        return settings

    def scale_note(self, settings: Settings) -> str:
        """Return the report's first line: how the run's scale compares with the documents'."""
        if not self.document_epochs:
            return (f"Scale: each path is timed on {settings.fraction:g} of an epoch "
                    f"({settings.train_examples} of {TRAIN_SIZE} images) and scaled to a whole epoch.")
        reduced = []
        if settings.fraction < 1:
            reduced.append(f"{percent(settings.fraction)} of the training images "
                           f"({settings.train_examples} of {TRAIN_SIZE})")
        if settings.test_fraction < 1:
            reduced.append(f"{settings.test_examples} of the {TEST_SIZE} test images")
        if settings.epochs < self.document_epochs:
            reduced.append(f"{settings.epochs} epochs where the documents train "
                           f"{self.document_epochs}")
        if not reduced:
            return "Scale: the documents' full training set and epochs."
        return "Scale: smaller than the documents': " + ", ".join(reduced) + "."


def _params(**values: object) -> Tuple[Tuple[str, object], ...]:
    return tuple(sorted(values.items()))


_TINY = dict(seeds=1, epochs=1, fraction=0.02, test_fraction=0.05)  # the quick runs' scale

STUDIES: Dict[str, Study] = {s.name: s for s in (
    Study(
        name="faster",
        claim="BN LeNet trains noticeably faster than vanilla LeNet: the same accuracy in "
              "fewer epochs",
        source="d2l 1.0 (document 000), 8.5 Batch Normalization",
        measurement="in both loops the documents use (train_ch5, and d2l.Trainer as document "
                    "000 calls it), the first epoch at which plain LeNet and BN LeNet "
                    "(nn.BatchNorm) reach plain LeNet's final held-out accuracy, seed by seed",
        criterion="per loop, the difference BN − plain of that epoch (a BN run that never "
                  "reaches it counts one epoch past the end) is claimed negative: holds if its "
                  "interval lies below 0, does not hold if it lies within the margin or above "
                  "0, else inconclusive; inconclusive too when a plain run failed to train "
                  "(then there is no accuracy to reach sooner). Overall: holds if it holds in "
                  "both loops, does not hold if it fails in one, else inconclusive",
        recipe="d2l-1.0", document_epochs=10,
        comparisons=tuple(Claimed(loop, "BN − plain, first epoch at plain's final accuracy",
                                  "less", 1.0) for loop in ("train_ch5", "d2l.Trainer")),
        deciding=Scale(1.0, 10, 5, "the documents' training set and epochs: on half of it "
                                   "plain LeNet is still climbing at epoch 10"),
        defaults=Settings(seeds=3, epochs=10, fraction=0.5, test_fraction=0.25, batch_size=128,
                          lr=0.1),
        quick=Settings(**_TINY, batch_size=128, lr=0.1)),
    Study(
        name="learning-rate",
        claim="BN is what allows the larger learning rate (the BN paper's headline: higher "
              "learning rates without divergence)",
        source="d2l 0.17 (document 002), 7.5.4 Applying Batch Normalization in LeNet",
        measurement="test accuracy per epoch and training loss per epoch of plain and BN LeNet "
                    "(nn.BatchNorm) over a log grid of learning rates wide enough that both "
                    "fail at its top, all training and test images, the documents' 10 epochs. "
                    "Each run is flagged 'diverged' (its loss became non-finite, or its final "
                    "loss is above 2 ln 10, far worse than a uniform guess, after rising above "
                    "it) or 'stuck' (not diverged, and its best test accuracy is at most twice "
                    "chance: the starting plateau)",
        criterion="stated before the runs: a run trains when it did not diverge and its test "
                  "accuracy reached 0.7 within the 10 epochs; per seed, each network's largest "
                  "training rate is the largest rate of the grid at which that seed's run "
                  "trains (0 rungs when none does); the claim is judged on the per-seed "
                  "difference log2(BN's largest rate) − log2(plain's), claimed positive, by an "
                  "exact one-sided sign test with ties counted against the claim: holds if "
                  "p ≤ 0.05 after Holm over the study's family, does not hold if the mirrored "
                  "test (difference ≤ 0 on significantly many seeds) does, else inconclusive; "
                  "inconclusive too when a network still trains at the top of the grid on some "
                  "seed. The accuracy difference at each rate is shown, not deciding",
        recipe="d2l-0.17", document_epochs=10, grid_kind="lr",
        comparisons=(Claimed("largest training rate", "BN − plain, log2 of the largest rate "
                             "that trains", "greater", 0.0),
                     Claimed("at the other rates", "BN − plain, final test accuracy",
                             "greater", ACCURACY_MARGIN, role="reference")),
        deciding=Scale(1.0, 10, 6, "the documents' 10 epochs on the whole training set, where "
                                   "plain LeNet leaves its chance plateau at its best rate"),
        defaults=Settings(seeds=6, epochs=10, fraction=1.0, test_fraction=1.0, batch_size=256,
                          grid=(0.3, 1.0, 3.0, 10.0, 30.0, 100.0)),
        quick=Settings(**_TINY, batch_size=256, grid=(0.3, 3.0, 30.0))),
    Study(
        name="batch-noise",
        claim="BN estimates mean and variance on each minibatch, so they are noisy; prediction "
              "uses fixed statistics: 'after training, we use the entire dataset to compute "
              "stable estimates' (the code keeps moving averages instead)",
        source="d2l 0.17 (document 002), 7.5.2 and 7.5.2.3",
        measurement="BN LeNet (nn.BatchNorm) trained at several batch sizes (learning rate "
                    "scaled with the batch, 1.0 at 256); test accuracy in training mode (each "
                    "test batch normalised by its own statistics, batches of the training "
                    "size), in prediction mode with the moving averages, and in prediction "
                    "mode with statistics recomputed over the whole training subset, these "
                    "two one example at a time",
        criterion="three parts, each its own verdict: 'noisy' (moving − batch-statistics "
                  "accuracy at the smallest batch, claimed positive), 'shrinks' (that loss at "
                  "the smallest batch minus the loss at the largest, per seed, claimed "
                  "positive), 'whole data' (whole-data − moving-average accuracy, claimed not "
                  "below −margin at every batch size: it holds when it holds at every batch, "
                  "fails when it fails at one); overall: holds if all three hold, does not "
                  "hold if one fails, else inconclusive",
        recipe="d2l-0.17", document_epochs=10, grid_kind="batch_size",
        comparisons=(Claimed("noisy", "moving averages − batch statistics, test accuracy at "
                                      "the smallest batch", "greater", ACCURACY_MARGIN),
                     Claimed("shrinks", "(moving − batch statistics) at the smallest batch − "
                                        "at the largest", "greater", ACCURACY_MARGIN),
                     Claimed("whole data", "whole-data − moving-average statistics, test "
                                           "accuracy, per batch size", "noninferior",
                             ACCURACY_MARGIN)),
        deciding=Scale(0.2, 10, 5, "the documents' 10 epochs, so the moving averages have "
                                   "settled; the batch sizes, not the data, set the noise"),
        defaults=Settings(seeds=3, epochs=3, fraction=0.2, test_fraction=0.2, batch_size=256,
                          grid=(8, 16, 64, 256)),
        quick=Settings(**_TINY, batch_size=256, grid=(16, 256))),
    Study(
        name="regularization",
        claim="BN's primary beneficial side effect is regularization",
        source="d2l 0.17 (document 002), 7.5 summary",
        measurement="train−test accuracy gap (training accuracy measured in prediction mode "
                    "on the training images after training) of plain and BN LeNet, each with "
                    "and without dropout after the hidden dense layers, trained long on a "
                    "small training set",
        criterion="the gap difference BN − plain is claimed negative: holds if its interval "
                  "lies below 0, does not hold if it lies within the margin or above 0, else "
                  "inconclusive; inconclusive too when a run of plain or BN LeNet has not "
                  "fitted its training images (training accuracy below 0.9). Dropout's effect "
                  "on each network's gap is shown beside it, the reference regularizer",
        recipe="d2l-0.17", document_epochs=10,
        comparisons=(Claimed("gap", "BN − plain, train−test gap", "less", ACCURACY_MARGIN),
                     Claimed("dropout, plain", "plain + dropout − plain, train−test gap",
                             "less", ACCURACY_MARGIN, role="reference"),
                     Claimed("dropout, BN", "BN + dropout − BN, train−test gap", "less",
                             ACCURACY_MARGIN, role="reference")),
        deciding=Scale(0.05, 60, 5, "the small training set trained long is the design (so "
                                    "both networks fit it); five seeds for the interval"),
        defaults=Settings(seeds=3, epochs=60, fraction=0.05, test_fraction=0.5, batch_size=64,
                          lr=0.3, params=_params(dropout=0.5, activation="relu")),
        quick=Settings(**_TINY, batch_size=64, lr=0.3,
                       params=_params(dropout=0.5, activation="relu"))),
    Study(
        name="covariate-shift",
        claim="reducing internal covariate shift 'seems not to be a valid explanation' of "
              "BN's effect",
        source="d2l 0.17 (document 002), 7.5 summary, after Santurkar et al. (2018)",
        measurement="final test accuracy of plain LeNet, BN LeNet, and BN LeNet with a random "
                    "per-channel shift and scale drawn anew at every training step after every "
                    "BN layer (shift uniform in ±shift, scale log-uniform in [1/spread, spread])",
        criterion="first BN − plain accuracy must lie above 0 (else inconclusive: no benefit "
                  "to explain); then two parts: 'above plain' (noisy BN − plain, claimed "
                  "positive) and 'keeps most' (noisy BN − the midpoint of BN and plain, per "
                  "seed, claimed positive: the noisy network keeps more than half of BN's "
                  "benefit); overall: holds if both hold, does not hold if one fails, else "
                  "inconclusive",
        recipe="d2l-0.17", document_epochs=10,
        comparisons=(Claimed("BN helps", "BN − plain, final test accuracy", "greater",
                             ACCURACY_MARGIN),
                     Claimed("above plain", "noisy BN − plain, final test accuracy", "greater",
                             ACCURACY_MARGIN),
                     Claimed("keeps most", "noisy BN − (BN + plain) / 2, final test accuracy",
                             "greater", ACCURACY_MARGIN)),
        deciding=Scale(1.0, 10, 5, "the documents' training set and epochs: at 40 % and 5 "
                                   "epochs plain LeNet is still climbing"),
        defaults=Settings(seeds=3, epochs=5, fraction=0.4, test_fraction=0.5, batch_size=256,
                          params=_params(shift=1.0, spread=2.0)),
        quick=Settings(**_TINY, batch_size=256, params=_params(shift=1.0, spread=2.0))),
    Study(
        name="compiled-speed",
        claim="the built-in layer runs much faster than the scratch one because it is compiled "
              "C++/CUDA rather than interpreted Python",
        source="d2l-en (document 001) and d2l 0.17 (document 002), concise implementation",
        measurement="seconds per epoch of LeNet with the scratch layer (faithful and fast, "
                    "imperative and hybridized) and with nn.BatchNorm, on both pipelines in "
                    "train_ch5 (gluon_bn.bench.bench) and in d2l.Trainer, in alternating rounds, "
                    "with our C++ scratch layer (--bn-impl native) beside nn.BatchNorm in one "
                    "static graph each; "
                    "and, from MXNet's profiler, the share of the faithful scratch layer's "
                    "forward and backward time spent outside MXNet's operators (Python)",
        criterion="two parts, each its own verdict: 'faster' (per path, ln(scratch seconds / "
                  "built-in seconds) paired by round, claimed positive; holds if it holds on "
                  "every path, does not hold if it fails on one) and 'because interpreted' "
                  "(the share of the scratch layer's time outside MXNet's operators minus 0.5, "
                  "one-sample over the rounds, claimed positive: most of the time is Python); "
                  "overall: holds if both hold, does not hold if one fails, else inconclusive",
        recipe="d2l-en", document_epochs=0, timed=True,
        comparisons=(Claimed("faster", "ln(scratch s / built-in s) per epoch, per path",
                             "greater", SPEED_MARGIN),
                     Claimed("because interpreted", "share of the time outside operators − 0.5",
                             "greater", 0.1),
                     Claimed("native", "ln(native scratch s / built-in s) per epoch, both in one "
                                       "static graph (train_ch5, fast pipeline)",
                             "equivalent", SPEED_MARGIN, role="reference")),
        deciding=Scale(0.05, 2, 3, "times of whole epochs vary little across rounds; the "
                                   "committed scale"),
        defaults=Settings(seeds=3, epochs=2, fraction=0.05, test_fraction=0.05, batch_size=256),
        quick=Settings(seeds=1, epochs=2, fraction=0.005, test_fraction=0.02, batch_size=256)),
    Study(
        name="ablations",
        claim="what readers of the section ask: the bias before BN is redundant; BN needs its "
              "learned gamma and beta; it needs both centring and scaling; it belongs before "
              "the activation",
        source="d2l 0.17 (document 002), 7.5.2-7.5.3, and the section's discussion",
        measurement="final test accuracy of BN LeNet (nn.BatchNorm) beside: no bias in the "
                    "layers BN follows; gamma and beta frozen at 1 and 0; mean-only BN; "
                    "variance-only BN; BN after the activation",
        criterion="per ablation, full BN − ablated accuracy: for 'bias' claimed equivalent "
                  "(holds if its interval lies within the margin, does not hold if it lies "
                  "wholly beyond it); for the others claimed positive (holds if the interval "
                  "lies above 0, does not hold if it lies within the margin or below 0); else "
                  "inconclusive. Overall: holds if every ablation holds, does not hold if one "
                  "fails, else inconclusive",
        recipe="d2l-0.17", document_epochs=10,
        comparisons=(Claimed("bias", "full BN − no bias before BN, final test accuracy",
                             "equivalent", ACCURACY_MARGIN),) + tuple(
            Claimed(name, f"full BN − {what}, final test accuracy", "greater", ACCURACY_MARGIN)
            for name, what in (("frozen-gamma-beta", "gamma, beta frozen"),
                               ("mean-only", "mean-only BN"), ("variance-only", "variance-only BN"),
                               ("after-activation", "BN after activation"))),
        deciding=Scale(1.0, 10, 5, "the documents' training set and epochs"),
        defaults=Settings(seeds=3, epochs=5, fraction=0.25, test_fraction=0.5, batch_size=256),
        quick=Settings(**_TINY, batch_size=256),
        ablations=("bias", "frozen-gamma-beta", "mean-only", "variance-only", "after-activation")),
)}


def get_study(name: str) -> Study:
    """Return the study called `name`.

    Raises
    ------
    KeyError
        Naming the valid studies, when `name` is not one.
    """
    if name not in STUDIES:
        raise KeyError(f"unknown study {name!r}; the studies are: {', '.join(STUDIES)} (or all)")
    return STUDIES[name]
