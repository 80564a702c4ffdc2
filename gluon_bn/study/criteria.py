"""The criteria that turn a study's numbers into a verdict: pure functions, no MXNet.

Every verdict is a string that starts with exactly one of ``holds``, ``does not hold`` or
``inconclusive``, followed by a colon and what decided it. Each criterion returns a
:class:`Judgement`: that verdict, one verdict per part when the claim is a conjunction
(its headline names the parts), and the :class:`~gluon_bn.study.comparison.Comparison` objects
the verdicts come from. Numbers are one value per run, in seed order; a
:class:`Seeded` sequence carries its seeds too, so that runs of different seeds are
compared unpaired (Welch) instead of paired.

Every comparison is a difference a − b with a t interval (:mod:`gluon_bn.study.stats`,
95 %), or an exact sign test over the seeds, with a claim and a margin stated in the study
(:class:`gluon_bn.study.registry.Claimed`). With fewer than :data:`MIN_SEEDS` values in any
group the verdict is "inconclusive" whatever the numbers say. A directional claim shown by
less than its margin reads "holds, below the margin" (:data:`NEGLIGIBLE`): it holds, and it
is named; a conjunction with such a part reads so too.

Multiplicity: a study's deciding comparisons are one family. :func:`with_holm` judges a
study twice, first to collect every deciding comparison's p-value, then with their Holm
adjustment (:func:`family_p`) handed to each criterion (its ``holm`` argument), so that a
comparison whose adjusted p is above :data:`~gluon_bn.study.stats.FAMILY_LEVEL` cannot hold
and every verdict is composed from the adjusted outcomes.

A run *failed to train* (:func:`failure`) when its loss became non-finite (the loop's
divergence), when its final training loss is above ln 10 (what guessing uniformly over the
ten classes scores), or when its final accuracy is at most twice chance; the reports show
such runs whatever the study. The learning-rate study flags its runs by its own stated
rules (:func:`flagged`): *diverged* (:func:`divergence`: a non-finite loss, or a final loss
above 2 ln 10 after rising above it) or *stuck* (:func:`stuck`: best test accuracy at most
twice chance); a run *trains* (:func:`trains`) when it did not diverge and its test
accuracy reached :data:`TRAINS_AT`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Dict, Mapping, Optional, Sequence

# The criteria of faster (epochs to a fixed accuracy, reaching), the ablations (each network
# at its best rate, ablated), batch-noise (one network, its statistics, noise) and
# regularization (the gap at matched fit, fitted) live in their own modules; named here too.
from gluon_bn.study.ablated import choose_rate, tuned_ablation, untrained  # noqa: F401
from gluon_bn.study.comparison import sign_compare
from gluon_bn.study.fitted import choose_fitted_rate, fit_epoch, regularization  # noqa: F401
from gluon_bn.study.judging import (
    DIVERGED_LOSS,
    LEARNED,
    TRAINS_AT,
    Adjusted,
    Judgement,
    Seeded,
    _compared,
    _holm,
    _said,
    accuracies,
    combine,
    conjunction,
    outcome,
    seeds_of,
    too_few_seeds,
)
from gluon_bn.study.noise import batch_noise, batch_stats_at  # noqa: F401
from gluon_bn.study.reaching import epochs_to, faster, first_epoch_reaching  # noqa: F401
from gluon_bn.study.stats import HOLDS, UNCLEAR


def divergence(run: Mapping[str, object]) -> Optional[str]:
    """Return why a run diverged, or None: a non-finite loss, or a loss that exploded and stayed.

    A run starts near ln 10 (an untrained network's loss), so an epoch's mean loss above
    2 ln 10 (:data:`DIVERGED_LOSS`) has risen above it; the run diverged when its final loss
    is still there.

    Parameters
    ----------
    run : mapping
        ``diverged`` (the loop raised on a non-finite loss), ``diverged_at`` and ``loss``
        (the training loss of every finished epoch, None where it was not finite).
    """
    if run.get("diverged"):
        return f"diverged: the loop stopped on a non-finite loss ({run.get('diverged_at', 'epoch unknown')})"
    losses = list(run.get("loss") or [])
    bad = next((i for i, v in enumerate(losses, 1) if v is None or not math.isfinite(v)), None)
    if bad is not None:
        return f"diverged: loss not finite at epoch {bad}"
    if losses and losses[-1] > DIVERGED_LOSS:
        since = len(losses)  # the first epoch of the last stretch above the line
        while since > 1 and losses[since - 2] > DIVERGED_LOSS:
            since -= 1
        return (
            f"diverged: loss above 2 ln 10 = {DIVERGED_LOSS:.3f} from epoch {since} to the "
            f"end (final {losses[-1]:.3g})"
        )
    return None


def best_accuracy(run: Mapping[str, object]) -> Optional[float]:
    """Return a run's best test accuracy over its epochs (``curve``; else ``final_acc``; else None)."""
    curve = [float(v) for v in run.get("curve") or [] if v is not None]
    if curve:
        return max(curve)
    final = run.get("final_acc")
    return None if final is None else float(final)


def stuck(run: Mapping[str, object]) -> Optional[str]:
    """Return why a run is stuck on the starting plateau, or None: it did not diverge and its
    best test accuracy is at most twice chance (:data:`LEARNED`)."""
    if divergence(run):
        return None
    best = best_accuracy(run)
    if best is not None and best <= LEARNED:
        return f"stuck: best test accuracy {best:.3f} at most twice chance ({LEARNED:g})"
    return None


def flagged(run: Mapping[str, object]) -> Optional[str]:
    """Return a learning-rate run's flag and why (``"diverged: ..."``, ``"stuck: ..."``), or None."""
    return divergence(run) or stuck(run)


def trains(run: Mapping[str, object], target: float = TRAINS_AT) -> bool:
    """Return whether a run trains: it did not diverge and its test accuracy reached `target`."""
    best = best_accuracy(run)
    return divergence(run) is None and best is not None and best >= target


def largest_training_rates(
    grid: Sequence[float], runs: Sequence[Sequence[Mapping[str, object]]]
) -> Dict[int, Optional[float]]:
    """Return, per seed, the largest rate of `grid` at which that seed's run trains (None: none).

    Parameters
    ----------
    grid : sequence of float
        The learning rates.
    runs : sequence (one per rate of `grid`) of sequences of run mappings
        Each run with its ``seed`` (else its position is its seed).
    """
    largest: Dict[int, Optional[float]] = {}
    for rate, at_rate in zip(grid, runs):
        for position, run in enumerate(at_rate):
            seed = int(run.get("seed", position))
            largest.setdefault(seed, None)
            if trains(run) and (largest[seed] is None or rate > largest[seed]):
                largest[seed] = rate
    return largest


def log2_rate(rate: Optional[float], grid: Sequence[float]) -> float:
    """Return log2 of `rate`; None (no rate of `grid` trains) counts one rung below its bottom.

    A rung is the step from the grid's lowest rate to the next (a factor of 2 on a grid of
    one rate).
    """
    low = min(grid)
    if rate is not None:
        return math.log2(rate)
    higher = sorted(g for g in grid if g > low)
    rung = math.log2(higher[0] / low) if higher else 1.0
    return math.log2(low) - rung


def learning_rate(
    grid: Sequence[float],
    plain: Sequence[Sequence[Mapping[str, object]]],
    bn: Sequence[Sequence[Mapping[str, object]]],
    claimed,
    others,
    *,
    holm: Adjusted = None,
) -> Judgement:
    """Verdict on "BN allows a larger learning rate" from a sweep: the per-seed largest training rate.

    Parameters
    ----------
    grid : sequence of float
        The learning rates.
    plain, bn : sequence (one per rate) of sequences (one per seed) of run mappings
        Each with ``seed``, ``curve`` (test accuracy per epoch), ``loss`` (training loss per
        finished epoch), ``final_acc`` and ``diverged``.
    claimed : Claimed
        The deciding comparison: per seed, log2(BN's largest training rate) − log2(plain's),
        claimed positive, by the exact sign test (ties against the claim).
    others : Claimed
        BN − plain final test accuracy (a diverged run at chance) at every rate, shown.
    holm : mapping of str to float, optional
        The study's Holm-adjusted p-values by comparison name (:func:`with_holm`).

    A run trains when it did not diverge and reached :data:`TRAINS_AT` (:func:`trains`); a
    seed on which a network trains at no rate counts one rung below the grid
    (:func:`log2_rate`). The verdict is the sign test's, after Holm: holds at p ≤ 0.05, does
    not hold when the mirrored test (difference ≤ 0 on significantly many seeds) does, else
    inconclusive; inconclusive too when a network still trains at the grid's top rate on
    some seed (its largest rate is then not known), or with fewer than 3 seeds.
    """
    few = too_few_seeds(
        {
            f"{name} at lr {lr:g}": v
            for name, runs in (("plain", plain), ("bn", bn))
            for lr, v in zip(grid, runs)
        }
    )
    if few:
        return Judgement(few)
    order = sorted(range(len(grid)), key=lambda i: grid[i])  # increasing rates
    grid = [grid[i] for i in order]
    runs = {"BN": [bn[i] for i in order], "plain": [plain[i] for i in order]}

    def final(at_rate) -> Seeded:
        return accuracies(
            Seeded(
                [r.get("final_acc") for r in at_rate],
                [int(r.get("seed", i)) for i, r in enumerate(at_rate)],
            )
        )

    shown = [
        _compared(others, final(b), final(p), name=f"lr {lr:g}", holm=holm)
        for lr, p, b in zip(grid, runs["plain"], runs["BN"])
    ]
    largest = {net: largest_training_rates(grid, by_rate) for net, by_rate in runs.items()}
    seeds = sorted(set(largest["BN"]) & set(largest["plain"]))
    differences = [
        log2_rate(largest["BN"][s], grid) - log2_rate(largest["plain"][s], grid) for s in seeds
    ]
    deciding = _holm(
        sign_compare(
            claimed.name,
            claimed.label,
            differences,
            claimed.claim,
            claimed.margin,
            role=claimed.role,
        ),
        holm,
    )
    at_top = {net: [s for s in seeds if by[s] == grid[-1]] for net, by in largest.items()}
    censored = [
        f"{net} LeNet on seed(s) {', '.join(map(str, at))}" for net, at in at_top.items() if at
    ]
    if censored:
        deciding = dataclasses.replace(
            deciding,
            outcome=UNCLEAR,
            reason=(
                f"{deciding.reason}; but the grid is too narrow: {' and '.join(censored)} "
                f"still trains at its top rate {grid[-1]:g}, so its largest rate is not known"
            ),
        )

    def rate(value: Optional[float]) -> str:
        return "none" if value is None else f"{value:g}"

    per_seed = ", ".join(
        f"seed {s} {rate(largest['BN'][s])}/{rate(largest['plain'][s])}" for s in seeds
    )
    below = (
        f" (none: below the grid, counted one rung below it, at lr "
        f"{2 ** log2_rate(None, grid):.2g})"
        if any(largest[net][s] is None for net in largest for s in seeds)
        else ""
    )
    counts = "; ".join(
        f"lr {lr:g} "
        + ", ".join(
            f"{net} {sum(divergence(r) is not None for r in at)}/{sum(stuck(r) is not None for r in at)}"
            for net, at in (("plain", p), ("BN", b))
        )
        for lr, p, b in zip(grid, runs["plain"], runs["BN"])
    )
    verdict = (
        f"{deciding.outcome}: {deciding.text(2)}; largest rate that trains (test accuracy "
        f"≥ {TRAINS_AT:g} without diverging), BN/plain: {per_seed}{below}; runs "
        f"diverged/stuck of {len(seeds)} per rate: {counts}"
    )
    return Judgement(verdict, comparisons=[deciding] + shown)


def covariate_shift(
    plain: Sequence[float],
    bn: Sequence[float],
    noisy: Sequence[float],
    helps,
    above,
    keeps,
    *,
    holm: Adjusted = None,
) -> Judgement:
    """Verdict on "reducing internal covariate shift does not explain BN's benefit".

    Parameters
    ----------
    plain, bn, noisy : sequence of float
        Per seed, the final held-out accuracy of plain LeNet, BN LeNet, and BN LeNet with
        random time-varying shift and scale injected after every BN layer in training.
    helps, above, keeps : Claimed
        BN − plain (the benefit; inconclusive unless it holds), noisy − plain, and noisy −
        the per-seed midpoint of BN and plain.
    holm : mapping of str to float, optional
        The study's Holm-adjusted p-values by comparison name (:func:`with_holm`).
    """
    few = too_few_seeds({"plain": plain, "bn": bn, "noisy": noisy})
    if few:
        return Judgement(few)
    p, b, n = accuracies(plain), accuracies(bn), accuracies(noisy)
    benefit = _compared(helps, b, p, holm=holm)
    midpoint = Seeded([(x + y) / 2 for x, y in zip(b, p)], seeds_of(b))
    comparisons = [
        benefit,
        _compared(above, n, p, holm=holm),
        _compared(keeps, n, midpoint, holm=holm),
    ]
    if outcome(benefit.outcome) != HOLDS:
        return Judgement(
            f"{UNCLEAR}: BN is not shown above plain, so there is no benefit to "
            f"explain: {benefit.text()}",
            comparisons=comparisons,
        )
    parts = {c.name: _said(c) for c in comparisons[1:]}
    return Judgement(combine(parts), parts, comparisons)


def compiled_speed(
    times: Mapping[str, tuple],
    python_share: Sequence[float],
    faster_claim,
    interpreted,
    shown: Optional[Mapping[str, tuple]] = None,
    *,
    holm: Adjusted = None,
) -> Judgement:
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
    holm : mapping of str to float, optional
        The study's Holm-adjusted p-values by comparison name (:func:`with_holm`).
    """
    few = too_few_seeds(
        {**{f"path {k}": min(v, key=len) for k, v in times.items()}, "profile": python_share}
    )
    if few:
        return Judgement(few)
    speed = [
        _compared(
            faster_claim,
            [math.log(t) for t in scratch],
            [math.log(t) for t in builtin],
            name=f"faster, {path}",
            unit="rounds",
            holm=holm,
        )
        for path, (scratch, builtin) in times.items()
    ]
    share = _compared(interpreted, python_share, (), reference=0.5, unit="rounds", holm=holm)
    beside = [
        _compared(
            c,
            [math.log(t) for t in a],
            [math.log(t) for t in b],
            name=name,
            unit="rounds",
            holm=holm,
        )
        for name, (c, a, b) in (shown or {}).items()
    ]
    paths = {
        c.name: f"{c.outcome}: {c.brief(2)}, ratio {math.exp(c.diff.estimate):.2f}x "
        f"({math.exp(c.diff.lower):.2f}x to {math.exp(c.diff.upper):.2f}x)"
        for c in speed
    }
    parts = {
        "faster": f"{conjunction(paths)}: {faster_claim.label} (claim {faster_claim.claim}, "
        f"margin ±{faster_claim.margin:.3g}): " + "; ".join(f"{k}: {v}" for k, v in paths.items()),
        "because interpreted": _said(share, 2),
    }
    return Judgement(combine(parts), parts, speed + [share] + beside)


def ablation(
    full: Sequence[float], ablated: Sequence[float], claimed, *, holm: Adjusted = None
) -> Judgement:
    """Verdict on one ablation: full BN − ablated accuracy as `claimed` states (``bias``:
    equivalent, "is redundant"; the others: greater, "BN needs it"); `holm` as for the other
    criteria (the family is every ablation of the study)."""
    few = too_few_seeds({"full": full, "ablated": ablated})
    if few:
        return Judgement(few)
    comparison = _compared(claimed, accuracies(full), accuracies(ablated), holm=holm)
    return Judgement(_said(comparison), comparisons=[comparison])
