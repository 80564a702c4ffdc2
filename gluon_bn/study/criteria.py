"""The criteria that turn a study's numbers into a verdict: pure functions, no MXNet.

Every verdict is a string that starts with exactly one of ``holds``, ``does not hold`` or
``inconclusive``, followed by a colon and what decided it. Each criterion returns a
:class:`Judgement`: that verdict, one verdict per part when the claim is a conjunction
(its headline names the parts), and the :class:`~gluon_bn.study.stats.Comparison` objects
the verdicts come from. Numbers are one value per run, in seed order; a
:class:`Seeded` sequence carries its seeds too, so that runs of different seeds are
compared unpaired (Welch) instead of paired.

Every comparison is a difference a − b with a t interval (:mod:`gluon_bn.study.stats`,
95 %), a claim and a margin stated in the study (:class:`gluon_bn.study.registry.Claimed`).
With fewer than :data:`MIN_SEEDS` values in any group the verdict is "inconclusive"
whatever the numbers say.

A run *failed to train* (:func:`failure`) when its loss became non-finite (the loop's
divergence), when its final training loss is above ln 10 (what guessing uniformly over the
ten classes scores), or when its final accuracy is at most twice chance; the reports show
such runs whatever the study.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence

from gluon_bn.study import stats
from gluon_bn.study.stats import FAILS, HOLDS, UNCLEAR, Comparison

OUTCOMES = (HOLDS, FAILS, UNCLEAR)
MIN_SEEDS = 3
CHANCE = 0.1            # accuracy of a ten-class guess; a diverged run is counted at chance
LEARNED = 2 * CHANCE    # a run whose final accuracy is at most this has not learned
CHANCE_LOSS = math.log(10)  # cross-entropy of the uniform guess over ten classes


class Seeded(list):
    """A list of per-run values that also knows each run's seed (``seeds``)."""

    def __init__(self, values: Sequence, seeds: Sequence[int]):
        super().__init__(values)
        self.seeds = list(seeds)


def seeds_of(values: Sequence) -> List[int]:
    """Return the seeds of `values`: its own for a :class:`Seeded`, else 0 .. n-1."""
    return list(getattr(values, "seeds", range(len(values))))


@dataclass
class Judgement:
    """A verdict, its parts, and the comparisons they were read from."""

    verdict: str
    parts: Optional[Dict[str, str]] = None
    comparisons: List[Comparison] = field(default_factory=list)


@dataclass(frozen=True)
class Interval:
    """Mean ± sample standard deviation of `n` values (sd 0 for a single value): the tables' cells."""

    mean: float
    sd: float
    n: int

    def text(self, digits: int = 3) -> str:
        """Return ``mean ± sd`` rounded to `digits` decimals."""
        return f"{self.mean:.{digits}f} ± {self.sd:.{digits}f}"


def interval(values: Sequence[float]) -> Interval:
    """Return the :class:`Interval` (mean ± sd) of `values`, a non-empty sequence of numbers."""
    data = [float(v) for v in values]
    if not data:
        raise ValueError("an interval needs at least one value")
    mean = sum(data) / len(data)
    sd = math.sqrt(sum((v - mean) ** 2 for v in data) / (len(data) - 1)) if len(data) > 1 else 0.0
    return Interval(mean, sd, len(data))


def outcome(verdict: str) -> str:
    """Return the outcome a verdict string starts with (one of :data:`OUTCOMES`)."""
    for word in (FAILS, HOLDS, UNCLEAR):
        if verdict.startswith(word):
            return word
    raise ValueError(f"not a verdict: {verdict!r}")


def too_few_seeds(groups: Mapping[str, Sequence]) -> Optional[str]:
    """Return an "inconclusive" verdict when any group has fewer than :data:`MIN_SEEDS` values."""
    if not groups:
        return f"{UNCLEAR}: nothing was measured"
    fewest = min(len(v) for v in groups.values())
    if fewest < MIN_SEEDS:
        name = min(groups, key=lambda k: len(groups[k]))
        return (f"{UNCLEAR}: {fewest} seed(s) for {name}; a verdict needs at least "
                f"{MIN_SEEDS} per configuration")
    return None


def conjunction(parts: Mapping[str, str]) -> str:
    """Return the outcome of a conjunction: holds if all parts hold, fails if any fails."""
    outcomes = [outcome(v) for v in parts.values()]
    if all(o == HOLDS for o in outcomes):
        return HOLDS
    return FAILS if FAILS in outcomes else UNCLEAR


def combine(parts: Mapping[str, str]) -> str:
    """Return the headline of a conjunction: its outcome, then each part's outcome by name.

    Parameters
    ----------
    parts : mapping of str to str
        A name (loop, ablation, part of the claim) to its verdict.
    """
    return (f"{conjunction(parts)}: "
            + "; ".join(f"{name}: {outcome(verdict)}" for name, verdict in parts.items()))


def accuracies(values: Sequence[Optional[float]]) -> List[float]:
    """Return accuracies with a diverged run (None) counted at chance, :data:`CHANCE`."""
    kept = [CHANCE if v is None else float(v) for v in values]
    return Seeded(kept, values.seeds) if isinstance(values, Seeded) else kept


def failure(run: Mapping[str, object]) -> Optional[str]:
    """Return why a training run failed to train, or None: defined against chance.

    Parameters
    ----------
    run : mapping
        A run of a study record: ``diverged``, ``loss`` (per epoch, None where it was not
        finite) and ``final_acc``, as far as the run has them.
    """
    if run.get("diverged"):
        return f"loss not finite or exploding ({run.get('diverged_at', 'diverged')})"
    losses = run.get("loss") or []
    if any(v is None or not math.isfinite(v) for v in losses):
        return "loss not finite"
    if losses and losses[-1] > CHANCE_LOSS:
        return f"final loss {losses[-1]:.3g} above ln 10 = {CHANCE_LOSS:.3f} (uniform guessing)"
    acc = run.get("final_acc")
    if acc is not None and acc <= LEARNED:
        return f"final accuracy {acc:.3f} at most twice chance ({LEARNED:g})"
    return None


def _compared(claimed, a: Sequence[float], b: Sequence[float], *, name: Optional[str] = None,
              role: Optional[str] = None, reference: Optional[float] = None,
              unit: str = "seeds") -> Comparison:
    """Compare a − b (or a against `reference`) as `claimed` (a registry ``Claimed``) states."""
    if reference is not None:
        diff = stats.one_sample(list(a), reference, unit=unit)
    elif unit != "seeds":
        diff = stats.paired(list(a), list(b), unit=unit)
    else:
        diff = stats.difference(list(a), list(b), seeds_of(a), seeds_of(b))
    return stats.compare(name or claimed.name, claimed.label, diff, claimed.claim,
                         claimed.margin, role=role or claimed.role)


def _said(comparison: Comparison, digits: int = 3) -> str:
    return f"{comparison.outcome}: {comparison.text(digits)}"


# --------------------------------------------------------------------------- faster

def first_epoch_reaching(curve: Sequence[float], target: float) -> Optional[int]:
    """Return the first 1-based epoch whose accuracy in `curve` is at least `target`, or None."""
    return next((i for i, value in enumerate(curve, 1) if value >= target), None)


def faster(plain: Sequence[Sequence[float]], bn: Sequence[Sequence[float]], claimed,
           plain_failed: Sequence[str] = ()) -> Judgement:
    """Verdict on "BN reaches plain LeNet's final accuracy in fewer epochs" (one loop).

    Parameters
    ----------
    plain, bn : sequence of sequences of float
        Per seed (same order in both), the held-out accuracy after every epoch.
    claimed : Claimed
        The stated comparison (BN − plain epochs, claimed less, its margin in epochs).
    plain_failed : sequence of str
        Why plain runs failed to train (:func:`failure`), one entry per failed run.

    The target of seed s is plain LeNet's last accuracy with seed s; each network's number is
    the first epoch it reaches that target (a BN run that never does counts as one epoch past
    the end). Inconclusive when a plain run failed to train.
    """
    few = too_few_seeds({"plain": plain, "bn": bn})
    if few:
        return Judgement(few)
    if plain_failed:
        return Judgement(f"{UNCLEAR}: {len(plain_failed)} of {len(plain)} plain runs failed to "
                         f"train ({plain_failed[0]}), so there is no accuracy to reach sooner")
    targets = [curve[-1] for curve in plain]
    epochs = len(plain[0])
    plain_at = [first_epoch_reaching(c, t) for c, t in zip(plain, targets)]
    reached = [first_epoch_reaching(c, t) for c, t in zip(bn, targets)]
    bn_at = [epochs + 1 if e is None else e for e in reached]
    comparison = _compared(claimed, Seeded(bn_at, seeds_of(bn)), Seeded(plain_at, seeds_of(plain)))
    never = sum(e is None for e in reached)
    return Judgement(f"{_said(comparison, 1)}; plain's final accuracy {interval(targets).text()}"
                     + (f" ({never} BN run(s) never reach it)" if never else ""),
                     comparisons=[comparison])


# --------------------------------------------------------------------------- learning rate

def learning_rate(grid: Sequence[float], plain: Sequence[Sequence[Optional[float]]],
                  bn: Sequence[Sequence[Optional[float]]], plain_failed: Sequence[int],
                  bn_failed: Sequence[int], claimed, others) -> Judgement:
    """Verdict on "BN allows a larger learning rate" from a sweep.

    Parameters
    ----------
    grid : sequence of float
        The learning rates, increasing.
    plain, bn : sequence (one per rate) of sequences (one per seed) of float or None
        Final held-out accuracy; None for a diverged run (counted at chance).
    plain_failed, bn_failed : sequence of int
        Per rate, how many runs failed to train (:func:`failure`).
    claimed, others : Claimed
        The deciding comparison (BN − plain accuracy at BN's largest training rate) and the
        one shown at every other rate.

    A network *trains* at a rate when none of its runs there failed. Holds when BN's
    largest training rate is above plain's and the deciding comparison holds; does not hold
    when it is not above, or the comparison fails. Inconclusive with fewer than 3 seeds,
    when a network trains at no rate, or when a network still trains at the top rate.
    """
    few = too_few_seeds({f"{name} at lr {lr:g}": v for name, runs in (("plain", plain), ("bn", bn))
                         for lr, v in zip(grid, runs)})
    if few:
        return Judgement(few)
    largest = {}
    for name, failed in (("plain", plain_failed), ("BN", bn_failed)):
        ok = [lr for lr, f in zip(grid, failed) if not f]
        largest[name] = max(ok) if ok else None
    top = largest["BN"]
    comparisons = [_compared(claimed if lr == top else others, accuracies(b), accuracies(p),
                             name=f"lr {lr:g}")
                   for lr, p, b in zip(grid, plain, bn)]
    failed_text = ", ".join(f"{lr:g}: {p}/{b}" for lr, p, b in
                            zip(grid, plain_failed, bn_failed) if p or b)
    counts = (f"runs that failed to train (plain/BN of {len(plain[0])}) at lr "
              f"{failed_text or 'none'}")
    for name, rate in largest.items():
        if rate is None:
            return Judgement(f"{UNCLEAR}: {name} LeNet trains (no run failed) at no rate of "
                             f"the grid; {counts}", comparisons=comparisons)
        if rate == grid[-1]:
            return Judgement(f"{UNCLEAR}: the grid is too narrow: {name} LeNet still trains at "
                             f"its top rate {grid[-1]:g}; {counts}", comparisons=comparisons)
    deciding = comparisons[list(grid).index(top)]
    numbers = (f"largest rate that trains: BN {top:g}, plain {largest['plain']:g}; at lr "
               f"{top:g}: {deciding.text()}; {counts}")
    if top <= largest["plain"]:
        return Judgement(f"{FAILS}: {numbers}", comparisons=comparisons)
    return Judgement(f"{deciding.outcome}: {numbers}", comparisons=comparisons)


# --------------------------------------------------------------------------- batch noise

def batch_noise(batch_sizes: Sequence[int], moving: Sequence[Sequence[float]],
                batch_stats: Sequence[Sequence[float]], population: Sequence[Sequence[float]],
                noisy, shrinks, whole) -> Judgement:
    """Verdict on "batch statistics are noisy, so prediction uses fixed (whole-data) statistics".

    Parameters
    ----------
    batch_sizes : sequence of int
        The training batch sizes, increasing.
    moving, batch_stats, population : sequence (one per batch size) of sequences (one per seed)
        Held-out accuracy in prediction mode with the moving averages; in training mode
        (each test batch normalised by its own statistics, batches of the training size);
        in prediction mode with statistics recomputed over the whole training set.
    noisy, shrinks, whole : Claimed
        The three parts' comparisons (see the study's criterion).
    """
    few = too_few_seeds({f"{kind} at batch {b}": v for kind, runs in
                         (("moving", moving), ("batch", batch_stats), ("population", population))
                         for b, v in zip(batch_sizes, runs)})
    if few:
        return Judgement(few)
    small, large = batch_sizes[0], batch_sizes[-1]
    loss = _compared(noisy, moving[0], batch_stats[0], name=f"noisy (batch {small})")
    gaps = [Seeded([m - s for m, s in zip(moving[i], batch_stats[i])], seeds_of(moving[i]))
            for i in (0, -1)]
    shrink = _compared(shrinks, gaps[0], gaps[1], name=f"shrinks (batch {small} vs {large})")
    wholes = [_compared(whole, p, m, name=f"whole data (batch {b})")
              for b, p, m in zip(batch_sizes, population, moving)]
    whole_parts = {c.name: f"{c.outcome}: {c.brief()}" for c in wholes}
    parts = {"noisy": _said(loss), "shrinks": _said(shrink),
             "whole data": f"{conjunction(whole_parts)}: {whole.label} (claim {whole.claim}, "
                           f"margin ±{whole.margin:g}): "
                           + "; ".join(f"{k}: {v}" for k, v in whole_parts.items())}
    return Judgement(combine(parts), parts, [loss, shrink] + wholes)


# --------------------------------------------------------------------------- regularization

def regularization(plain_train: Sequence[float], plain_test: Sequence[float],
                   bn_train: Sequence[float], bn_test: Sequence[float], claimed,
                   references: Mapping[str, tuple] = None, fitted: float = 0.9) -> Judgement:
    """Verdict on "BN regularizes": its train–test gap is smaller than plain LeNet's.

    Parameters
    ----------
    plain_train, plain_test, bn_train, bn_test : sequence of float
        Per seed, the final accuracy on the training examples (prediction mode) and on the
        test set.
    claimed : Claimed
        BN − plain gap, claimed less, its margin.
    references : mapping of str to (Claimed, gaps a, gaps b), optional
        Comparisons shown beside it (dropout's effect on each network's gap).
    fitted : float
        Every run must reach this training accuracy: a network that has not fitted its
        training set has a small gap for the wrong reason.
    """
    few = too_few_seeds({"plain": plain_train, "bn": bn_train})
    if few:
        return Judgement(few)
    comparison = _compared(claimed, gaps(bn_train, bn_test), gaps(plain_train, plain_test))
    shown = [_compared(c, a, b, name=name) for name, (c, a, b) in (references or {}).items()]
    fits = {"plain": plain_train, "BN": bn_train}
    numbers = (f"{comparison.text()} (training accuracy BN {interval(bn_train).text()}, plain "
               f"{interval(plain_train).text()})")
    short = [name for name, fit in fits.items() if min(fit) < fitted]
    if short:
        return Judgement(f"{UNCLEAR}: {numbers}; {' and '.join(short)} LeNet did not fit its "
                         f"training examples in every run (below {fitted})",
                         comparisons=[comparison] + shown)
    return Judgement(f"{comparison.outcome}: {numbers}", comparisons=[comparison] + shown)


def gaps(train: Sequence[float], test: Sequence[float]) -> Seeded:
    """Return train − test per run (seeds kept)."""
    return Seeded([a - b for a, b in zip(train, test)], seeds_of(train))


# --------------------------------------------------------------------------- covariate shift

def covariate_shift(plain: Sequence[float], bn: Sequence[float], noisy: Sequence[float],
                    helps, above, keeps) -> Judgement:
    """Verdict on "reducing internal covariate shift does not explain BN's benefit".

    Parameters
    ----------
    plain, bn, noisy : sequence of float
        Per seed, the final held-out accuracy of plain LeNet, BN LeNet, and BN LeNet with
        random time-varying shift and scale injected after every BN layer in training.
    helps, above, keeps : Claimed
        BN − plain (the benefit; inconclusive unless it holds), noisy − plain, and noisy −
        the per-seed midpoint of BN and plain.
    """
    few = too_few_seeds({"plain": plain, "bn": bn, "noisy": noisy})
    if few:
        return Judgement(few)
    p, b, n = accuracies(plain), accuracies(bn), accuracies(noisy)
    benefit = _compared(helps, b, p)
    midpoint = Seeded([(x + y) / 2 for x, y in zip(b, p)], seeds_of(b))
    comparisons = [benefit, _compared(above, n, p), _compared(keeps, n, midpoint)]
    if benefit.outcome != HOLDS:
        return Judgement(f"{UNCLEAR}: BN is not shown above plain, so there is no benefit to "
                         f"explain: {benefit.text()}", comparisons=comparisons)
    parts = {c.name: _said(c) for c in comparisons[1:]}
    return Judgement(combine(parts), parts, comparisons)


# --------------------------------------------------------------------------- compiled speed

def compiled_speed(times: Mapping[str, tuple], python_share: Sequence[float], faster_claim,
                   interpreted, shown: Optional[Mapping[str, tuple]] = None) -> Judgement:
    """Verdict on "the built-in layer is much faster because it is compiled, not Python".

    Parameters
    ----------
    times : mapping of str to (sequence of float, sequence of float)
        Per path (pipeline and loop), per round: the scratch layer's seconds per epoch and
        the built-in layer's.
    python_share : sequence of float
        Per round, the share of the faithful scratch layer's forward and backward time spent
        outside MXNet's operators (Python and the framework around them).
    faster_claim, interpreted : Claimed
        ln(scratch / built-in) per path, claimed positive; share − 0.5, claimed positive.
    shown : mapping of str to (Claimed, sequence of float, sequence of float), optional
        Comparisons of seconds per epoch shown beside the verdict, as ln(a / b) paired by
        round (the native scratch layer against the built-in one).
    """
    few = too_few_seeds({**{f"path {k}": min(v, key=len) for k, v in times.items()},
                         "profile": python_share})
    if few:
        return Judgement(few)
    speed = [_compared(faster_claim, [math.log(t) for t in scratch], [math.log(t) for t in builtin],
                       name=f"faster, {path}", unit="rounds")
             for path, (scratch, builtin) in times.items()]
    share = _compared(interpreted, python_share, (), reference=0.5, unit="rounds")
    beside = [_compared(c, [math.log(t) for t in a], [math.log(t) for t in b], name=name,
                        unit="rounds") for name, (c, a, b) in (shown or {}).items()]
    paths = {c.name: f"{c.outcome}: {c.brief(2)}, ratio {math.exp(c.diff.estimate):.2f}x "
                     f"({math.exp(c.diff.lower):.2f}x to {math.exp(c.diff.upper):.2f}x)"
             for c in speed}
    parts = {"faster": f"{conjunction(paths)}: {faster_claim.label} (claim {faster_claim.claim}, "
                       f"margin ±{faster_claim.margin:.3g}): "
                       + "; ".join(f"{k}: {v}" for k, v in paths.items()),
             "because interpreted": _said(share, 2)}
    return Judgement(combine(parts), parts, speed + [share] + beside)


# --------------------------------------------------------------------------- ablations

def ablation(full: Sequence[float], ablated: Sequence[float], claimed) -> Judgement:
    """Verdict on one ablation: full BN − ablated accuracy as `claimed` states (``bias``:
    equivalent, "is redundant"; the others: greater, "BN needs it")."""
    few = too_few_seeds({"full": full, "ablated": ablated})
    if few:
        return Judgement(few)
    comparison = _compared(claimed, accuracies(full), accuracies(ablated))
    return Judgement(_said(comparison), comparisons=[comparison])
