"""The faster study's criterion: epochs to a held-out accuracy fixed before the runs. No MXNet.

Per run, the number is the first epoch whose held-out accuracy reaches the study's target
(:data:`gluon_bn.study.registry.FASTER_TARGET`); a run that never reaches it within its
epochs is *censored*: it counts as "after the last epoch" (one more than the epochs). The
outcome is discrete and censored, so no mean and no t interval: per seed the difference
BN − plain of those epochs is read by the exact one-sided sign test (ties, and so two
censored runs, against the claim), as the learning-rate study reads its rates.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence

from gluon_bn.study.comparison import sign_compare
from gluon_bn.study.judging import Adjusted, Judgement, _holm, seeds_of, too_few_seeds
from gluon_bn.study.stats import UNCLEAR


def first_epoch_reaching(curve: Sequence[Optional[float]], target: float) -> Optional[int]:
    """Return the first 1-based epoch whose accuracy in `curve` is at least `target`, or None."""
    return next(
        (i for i, value in enumerate(curve, 1) if value is not None and value >= target), None
    )


def epochs_to(curve: Sequence[Optional[float]], target: float, epochs: int) -> int:
    """Return the first epoch reaching `target`, or ``epochs + 1`` (after the last: censored)."""
    reached = first_epoch_reaching(curve[:epochs], target)
    return epochs + 1 if reached is None else reached


def faster(
    plain: Sequence[Sequence[float]],
    bn: Sequence[Sequence[float]],
    claimed,
    target: float,
    *,
    epochs: Optional[int] = None,
    holm: Adjusted = None,
) -> Judgement:
    """Verdict on "BN LeNet reaches the same accuracy in fewer epochs" (one loop).

    Parameters
    ----------
    plain, bn : sequence of sequences of float
        Per seed, the held-out accuracy after every epoch (a :class:`Seeded` carries the
        seeds; else positions are seeds). Runs are paired by seed; only shared seeds count.
    claimed : Claimed
        BN − plain epochs to `target`, claimed less, by the sign test; margin in epochs.
    target : float
        The held-out accuracy, fixed before the runs.
    epochs : int, optional
        Epochs trained (default: the longest curve); a run that never reaches `target`
        counts as ``epochs + 1``.
    holm : mapping of str to float, optional
        The study's Holm-adjusted p-values by comparison name.
    """
    by_plain = dict(zip(seeds_of(plain), plain))
    by_bn = dict(zip(seeds_of(bn), bn))
    seeds = sorted(set(by_plain) & set(by_bn))
    few = too_few_seeds({"shared seeds of plain and BN": seeds})
    if few:
        return Judgement(few)
    epochs = epochs or max(len(c) for c in list(plain) + list(bn))
    at: Dict[str, Dict[int, int]] = {
        net: {s: epochs_to(runs[s], target, epochs) for s in seeds}
        for net, runs in (("plain", by_plain), ("BN", by_bn))
    }
    differences = [at["BN"][s] - at["plain"][s] for s in seeds]
    comparison = _holm(
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

    def epoch(value: int) -> str:
        return f"after {epochs}" if value > epochs else str(value)

    per_seed = ", ".join(f"seed {s} {epoch(at['BN'][s])}/{epoch(at['plain'][s])}" for s in seeds)
    reached = "; ".join(
        f"{net} reaches it on {sum(v <= epochs for v in at[net].values())} of {len(seeds)} seeds"
        for net in ("BN", "plain")
    )
    return Judgement(
        f"{comparison.outcome}: {comparison.text(1)}; epoch at which held-out "
        f"accuracy first reaches {target:g}, BN/plain: {per_seed} (never within "
        f"{epochs} epochs counts as after epoch {epochs}); {reached}",
        comparisons=[comparison],
    )


def previous_design(runs: Sequence[Mapping[str, object]], loop: str, command: str) -> Optional[str]:
    """Return the verdict of a d2l.Trainer loop's runs whose held-out accuracy was averaged per
    batch (made before the study counted it; None: counted, or the train_ch5 loop, which
    always counted)."""
    if loop != "d2l.Trainer" or all(run.get("held_out") == "counted" for run in runs):
        return None
    return (
        f"{UNCLEAR}: these d2l.Trainer runs kept the board's held-out accuracy, a mean of "
        f"per-batch accuracies, not a count over the examples; re-run at the new design: "
        f"`{command}`"
    )
