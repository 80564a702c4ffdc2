"""The criteria that turn a study's numbers into a verdict: pure functions, no MXNet.

Every verdict is a string that starts with exactly one of ``holds``, ``does not hold`` or
``inconclusive``, followed by a colon and the numbers that decided it. The functions take
plain numbers (one value per seed), so each criterion can be checked on made-up numbers.

Two quantities are compared by their intervals, mean ± sample standard deviation over the
seeds (:func:`interval`): one is *above* the other when its lower bound (mean − sd) lies
above the other's upper bound (mean + sd); *below* the other way round; otherwise they
*overlap*. With fewer than :data:`MIN_SEEDS` values in any group the verdict is
"inconclusive" whatever the numbers say.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, List, Mapping, Optional, Sequence

HOLDS, FAILS, UNCLEAR = "holds", "does not hold", "inconclusive"
OUTCOMES = (HOLDS, FAILS, UNCLEAR)
MIN_SEEDS = 3
CHANCE = 0.1          # accuracy of a ten-class guess; a diverged run is counted at chance
LEARNED = 2 * CHANCE  # a network whose accuracy stays below this has not learned
EQUIVALENT = 0.01     # accuracy differences below this count as "the same" (ablations)


@dataclass(frozen=True)
class Interval:
    """Mean ± sample standard deviation of `n` values (sd 0 for a single value)."""

    mean: float
    sd: float
    n: int

    @property
    def lower(self) -> float:
        """mean − sd."""
        return self.mean - self.sd

    @property
    def upper(self) -> float:
        """mean + sd."""
        return self.mean + self.sd

    def text(self, digits: int = 3) -> str:
        """Return ``mean ± sd`` rounded to `digits` decimals."""
        return f"{self.mean:.{digits}f} ± {self.sd:.{digits}f}"


def interval(values: Iterable[float]) -> Interval:
    """Return the :class:`Interval` of `values` (a non-empty sequence of finite numbers).

    Parameters
    ----------
    values : iterable of float
        One number per seed.
    """
    data = [float(v) for v in values]
    if not data:
        raise ValueError("an interval needs at least one value")
    mean = sum(data) / len(data)
    sd = math.sqrt(sum((v - mean) ** 2 for v in data) / (len(data) - 1)) if len(data) > 1 else 0.0
    return Interval(mean, sd, len(data))


def compare(a: Interval, b: Interval) -> str:
    """Return "above", "below" or "overlap": where interval `a` lies relative to `b`."""
    if a.lower > b.upper:
        return "above"
    if a.upper < b.lower:
        return "below"
    return "overlap"


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


def combine(parts: Mapping[str, str]) -> str:
    """Return one verdict for a conjunction of claims: holds if all hold, fails if any fails.

    Parameters
    ----------
    parts : mapping of str to str
        A name (loop, ablation) to its verdict.
    """
    outcomes = {name: outcome(v) for name, v in parts.items()}
    if all(o == HOLDS for o in outcomes.values()):
        word = HOLDS
    elif any(o == FAILS for o in outcomes.values()):
        word = FAILS
    else:
        word = UNCLEAR
    return f"{word}: " + "; ".join(f"{name}: {verdict}" for name, verdict in parts.items())


def accuracies(values: Sequence[Optional[float]]) -> List[float]:
    """Return accuracies with a diverged run (None) counted at chance, :data:`CHANCE`."""
    return [CHANCE if v is None else float(v) for v in values]


# --------------------------------------------------------------------------- faster

def first_epoch_reaching(curve: Sequence[float], target: float) -> Optional[int]:
    """Return the first 1-based epoch whose accuracy in `curve` is at least `target`, or None."""
    return next((i for i, value in enumerate(curve, 1) if value >= target), None)


def faster(plain: Sequence[Sequence[float]], bn: Sequence[Sequence[float]]) -> str:
    """Verdict on "BN reaches plain LeNet's final accuracy in fewer epochs" (one loop).

    Parameters
    ----------
    plain, bn : sequence of sequences of float
        Per seed (same order in both), the held-out accuracy after every epoch.

    The target of seed s is plain LeNet's last accuracy with seed s; each network's number is
    the first epoch it reaches that target (a BN run that never does counts as one epoch past
    the end). Holds when BN's upper bound lies below plain's lower bound; does not hold when
    BN's lower bound is at or above plain's upper bound; inconclusive otherwise, or when
    plain LeNet has not learned (its last accuracy below twice chance).
    """
    few = too_few_seeds({"plain": plain, "bn": bn})
    if few:
        return few
    targets = [curve[-1] for curve in plain]
    final = interval(targets)
    if final.lower < LEARNED:
        return (f"{UNCLEAR}: plain LeNet ends at accuracy {final.text()}, not clearly above "
                f"chance ({CHANCE}), so there is no accuracy to reach sooner at this scale")
    epochs = len(plain[0])
    plain_at = interval([first_epoch_reaching(c, t) for c, t in zip(plain, targets)])
    reached = [first_epoch_reaching(c, t) for c, t in zip(bn, targets)]
    bn_at = interval([epochs + 1 if e is None else e for e in reached])
    never = sum(e is None for e in reached)
    numbers = (f"plain LeNet's final accuracy {final.text()} is reached at epoch "
               f"{plain_at.text(1)} by plain LeNet and {bn_at.text(1)} by BN LeNet"
               + (f" ({never} BN run(s) never reach it)" if never else ""))
    if bn_at.upper < plain_at.lower:
        return f"{HOLDS}: {numbers}"
    if bn_at.lower >= plain_at.upper:
        return f"{FAILS}: {numbers}"
    return f"{UNCLEAR}: {numbers}; the intervals overlap"


# --------------------------------------------------------------------------- learning rate

def trains_at(values: Sequence[Optional[float]]) -> bool:
    """Whether a network trains at a learning rate: no seed diverged and mean − sd above twice chance."""
    return all(v is not None for v in values) and interval(values).lower > LEARNED


def learning_rate(grid: Sequence[float], plain: Sequence[Sequence[Optional[float]]],
                  bn: Sequence[Sequence[Optional[float]]]) -> str:
    """Verdict on "BN allows a larger learning rate" (higher rates without failing) from a sweep.

    Parameters
    ----------
    grid : sequence of float
        The learning rates, increasing.
    plain, bn : sequence (one per rate) of sequences (one per seed) of float or None
        Final held-out accuracy; None for a diverged run (counted at chance).

    A network *trains* at a rate when no seed diverged and its mean − sd lies above twice
    chance (:func:`trains_at`). Holds when BN's largest training rate is above plain
    LeNet's and, there, BN's lower bound is above plain's upper bound; does not hold when
    BN's largest training rate is not above plain's. Inconclusive with fewer than 3 seeds,
    when a network trains at no rate, or when the grid is too narrow (a network still
    trains at its top rate).
    """
    few = too_few_seeds({f"{name} at lr {lr:g}": v for name, runs in (("plain", plain), ("bn", bn))
                         for lr, v in zip(grid, runs)})
    if few:
        return few
    largest = {}
    for name, runs in (("plain", plain), ("BN", bn)):
        ok = [lr for lr, v in zip(grid, runs) if trains_at(v)]
        if not ok:
            return (f"{UNCLEAR}: {name} LeNet trains (every seed, mean − sd above {LEARNED}) at "
                    f"no rate of the grid")
        if grid[-1] in ok:
            return (f"{UNCLEAR}: the grid is too narrow: {name} LeNet still trains at its top "
                    f"rate {grid[-1]:g}")
        largest[name] = max(ok)
    at = grid.index(largest["BN"])
    bn_there, plain_there = interval(accuracies(bn[at])), interval(accuracies(plain[at]))
    numbers = (f"largest rate that trains: BN {largest['BN']:g}, plain {largest['plain']:g}; at "
               f"lr {largest['BN']:g} BN reaches {bn_there.text()}, plain {plain_there.text()}")
    if largest["BN"] <= largest["plain"]:
        return f"{FAILS}: {numbers}"
    if compare(bn_there, plain_there) == "above":
        return f"{HOLDS}: {numbers}"
    return f"{UNCLEAR}: {numbers}; the intervals overlap"


# --------------------------------------------------------------------------- batch noise

def batch_noise(batch_sizes: Sequence[int], moving: Sequence[Sequence[float]],
                batch_stats: Sequence[Sequence[float]],
                population: Sequence[Sequence[float]]) -> str:
    """Verdict on "batch statistics are noisy, so prediction uses fixed (whole-data) statistics".

    Parameters
    ----------
    batch_sizes : sequence of int
        The training batch sizes, increasing.
    moving, batch_stats, population : sequence (one per batch size) of sequences (one per seed)
        Held-out accuracy in prediction mode with the moving averages; in training mode
        (each test batch normalised by its own statistics, batches of the training size);
        in prediction mode with statistics recomputed over the whole training set.

    Holds when (a) at the smallest batch size, batch statistics lose accuracy against the
    moving averages (intervals separated), (b) that loss is larger than at the largest batch
    size, and (c) the whole-data statistics are nowhere below the moving averages. Does not
    hold when any of the three is contradicted (the opposite separation); inconclusive when
    an interval comparison overlaps.
    """
    few = too_few_seeds({f"{kind} at batch {b}": v for kind, runs in
                         (("moving", moving), ("batch", batch_stats), ("population", population))
                         for b, v in zip(batch_sizes, runs)})
    if few:
        return few
    small, large = batch_sizes[0], batch_sizes[-1]
    gaps = [interval([m - s for m, s in zip(moving[i], batch_stats[i])]) for i in (0, -1)]
    loss = compare(interval(moving[0]), interval(batch_stats[0]))
    shrinks = compare(gaps[0], gaps[1])
    worse = [b for b, p, m in zip(batch_sizes, population, moving)
             if compare(interval(p), interval(m)) == "below"]
    numbers = (f"at batch {small} batch statistics give {interval(batch_stats[0]).text()} against "
               f"{interval(moving[0]).text()} with moving averages (gap {gaps[0].text()}; at batch "
               f"{large}: {gaps[1].text()}); whole-data statistics "
               + (f"fall below the moving averages at batch {', '.join(map(str, worse))}"
                  if worse else "are nowhere below the moving averages"))
    if loss == "above" and shrinks == "above" and not worse:
        return f"{HOLDS}: {numbers}"
    if loss == "below" or shrinks == "below" or worse:
        return f"{FAILS}: {numbers}"
    return f"{UNCLEAR}: {numbers}; an interval comparison overlaps"


# --------------------------------------------------------------------------- regularization

def regularization(plain_train: Sequence[float], plain_test: Sequence[float],
                   bn_train: Sequence[float], bn_test: Sequence[float],
                   fitted: float = 0.9) -> str:
    """Verdict on "BN regularizes": its train–test gap is smaller than plain LeNet's.

    Parameters
    ----------
    plain_train, plain_test, bn_train, bn_test : sequence of float
        Per seed, the final accuracy on the training examples (prediction mode) and on the
        test set.
    fitted : float
        Both networks must reach this mean training accuracy: a network that has not fitted
        its training set has a small gap for the wrong reason.

    Holds when BN's gap (train − test) lies below plain's; does not hold when it lies above;
    inconclusive when the intervals overlap or a network has not fitted.
    """
    few = too_few_seeds({"plain": plain_train, "bn": bn_train})
    if few:
        return few
    gap_plain = interval([a - b for a, b in zip(plain_train, plain_test)])
    gap_bn = interval([a - b for a, b in zip(bn_train, bn_test)])
    fits = {"plain": interval(plain_train), "BN": interval(bn_train)}
    numbers = (f"train−test gap: BN {gap_bn.text()}, plain {gap_plain.text()} (training accuracy "
               f"BN {fits['BN'].text()}, plain {fits['plain'].text()})")
    short = [name for name, fit in fits.items() if fit.mean < fitted]
    if short:
        return (f"{UNCLEAR}: {numbers}; {' and '.join(short)} LeNet did not fit its training "
                f"examples (mean below {fitted})")
    side = compare(gap_bn, gap_plain)
    if side == "below":
        return f"{HOLDS}: {numbers}"
    if side == "above":
        return f"{FAILS}: {numbers}"
    return f"{UNCLEAR}: {numbers}; the intervals overlap"


# --------------------------------------------------------------------------- covariate shift

def covariate_shift(plain: Sequence[float], bn: Sequence[float], noisy: Sequence[float]) -> str:
    """Verdict on "reducing internal covariate shift does not explain BN's benefit".

    Parameters
    ----------
    plain, bn, noisy : sequence of float
        Per seed, the final held-out accuracy of plain LeNet, BN LeNet, and BN LeNet with
        random time-varying shift and scale injected after every BN layer in training.

    Holds when the noisy network stays clearly above plain LeNet and closer to BN's mean than
    to plain's (BN's benefit survives a shift it does not remove). Does not hold when the
    noisy network is not clearly above plain and closer to plain's mean. Inconclusive when
    BN itself is not clearly above plain, or in between.
    """
    few = too_few_seeds({"plain": plain, "bn": bn, "noisy": noisy})
    if few:
        return few
    p, b, n = interval(accuracies(plain)), interval(accuracies(bn)), interval(accuracies(noisy))
    numbers = f"accuracy: BN {b.text()}, noisy BN {n.text()}, plain {p.text()}"
    if compare(b, p) != "above":
        return f"{UNCLEAR}: {numbers}; BN is not clearly above plain, so there is no benefit to explain"
    closer_to_bn = abs(b.mean - n.mean) < abs(n.mean - p.mean)
    if compare(n, p) == "above" and closer_to_bn:
        return f"{HOLDS}: {numbers}"
    if compare(n, p) != "above" and not closer_to_bn:
        return f"{FAILS}: {numbers}"
    return f"{UNCLEAR}: {numbers}"


# --------------------------------------------------------------------------- compiled speed

def compiled_speed(ratios: Mapping[str, Sequence[float]], python_share: Sequence[float]) -> str:
    """Verdict on "the built-in layer is much faster because it is compiled, not Python".

    Parameters
    ----------
    ratios : mapping of str to sequence of float
        Per path (pipeline and loop), per round: the scratch layer's time over the built-in
        layer's.
    python_share : sequence of float
        Per round, the share of the faithful scratch layer's forward and backward time spent
        outside MXNet's operators (Python and the framework around them).

    Holds when the scratch layer is slower on every path (every ratio's lower bound above
    1) and most of its time is Python (share's lower bound above 0.5). Does not hold when it
    is not slower on some path (upper bound at most 1) or most of its time is in operators
    (share's upper bound below 0.5). Inconclusive otherwise.
    """
    few = too_few_seeds({**{f"path {k}": v for k, v in ratios.items()}, "profile": python_share})
    if few:
        return few
    spans = {path: interval(v) for path, v in ratios.items()}
    share = interval(python_share)
    numbers = (", ".join(f"{path}: scratch/built-in {s.text(2)}x" for path, s in spans.items())
               + f"; share of the scratch layer's time outside operators {share.text(2)}")
    if any(s.upper <= 1 for s in spans.values()) or share.upper < 0.5:
        return f"{FAILS}: {numbers}"
    if all(s.lower > 1 for s in spans.values()) and share.lower > 0.5:
        return f"{HOLDS}: {numbers}"
    return f"{UNCLEAR}: {numbers}"


# --------------------------------------------------------------------------- ablations

def matters(full: Sequence[float], ablated: Sequence[float], what: str) -> str:
    """Verdict on "BN needs `what`": the full layer's accuracy lies above the ablated one's.

    Does not hold when the ablated network is clearly better, or the means differ by less
    than :data:`EQUIVALENT` with overlapping intervals; inconclusive otherwise.
    """
    few = too_few_seeds({"full": full, "ablated": ablated})
    if few:
        return few
    f, a = interval(accuracies(full)), interval(accuracies(ablated))
    numbers = f"accuracy with {f.text()}, without {a.text()}"
    side = compare(f, a)
    if side == "above":
        return f"{HOLDS}: {what} matters: {numbers}"
    if side == "below" or abs(f.mean - a.mean) < EQUIVALENT:
        return f"{FAILS}: {what} does not matter here: {numbers}"
    return f"{UNCLEAR}: {numbers}; the intervals overlap"


def redundant(full: Sequence[float], ablated: Sequence[float], what: str) -> str:
    """Verdict on "`what` is redundant": removing it changes accuracy by less than EQUIVALENT.

    Holds when the intervals overlap and the means differ by less than :data:`EQUIVALENT`;
    does not hold when the intervals are separated; inconclusive otherwise.
    """
    few = too_few_seeds({"full": full, "ablated": ablated})
    if few:
        return few
    f, a = interval(accuracies(full)), interval(accuracies(ablated))
    numbers = f"accuracy with {what} {f.text()}, without {a.text()}"
    if compare(f, a) != "overlap":
        return f"{FAILS}: {numbers}"
    if abs(f.mean - a.mean) < EQUIVALENT:
        return f"{HOLDS}: {numbers}"
    return f"{UNCLEAR}: {numbers}; the means differ by {abs(f.mean - a.mean):.3f}"

