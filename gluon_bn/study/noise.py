"""The batch-noise study's criterion: one network, its test accuracy by the statistics it uses. No MXNet.

Per seed one BN LeNet is trained as the documents train it and then evaluated several
ways, so that the numbers differ only in the statistics each BN layer normalises with:
batch statistics (each test batch its own mean and variance) at several evaluation batch
sizes, the moving averages, and statistics recomputed over the whole training set. Batch
statistics and whole-data statistics are computed from the final network, so neither lags
behind the training as the moving averages do; "noisy" and "shrinks" read only them, and
the moving averages meet the whole-data statistics in the third part, "whole data".
"""

from __future__ import annotations

from typing import Mapping, Sequence

from gluon_bn.study.judging import (
    Adjusted,
    Judgement,
    Seeded,
    _compared,
    _said,
    accuracies,
    combine,
    too_few_seeds,
)
from gluon_bn.study.stats import UNCLEAR


def batch_stats_at(runs: Sequence[Mapping[str, object]], size: int) -> Seeded:
    """Return the batch-statistics accuracy of every run at evaluation batch `size`, with seeds.

    Parameters
    ----------
    runs : sequence of run mappings
        Each with ``seed`` and ``batch_stats_acc``, a mapping from the evaluation batch size
        (as a string, as JSON keeps it) to the test accuracy; a diverged run has None there
        and counts at chance (:func:`gluon_bn.study.judging.accuracies`).
    size : int
    """
    values = [(run.get("batch_stats_acc") or {}).get(str(int(size))) for run in runs]
    return accuracies(Seeded(values, [int(r.get("seed", i)) for i, r in enumerate(runs)]))


def batch_noise(
    sizes: Sequence[int],
    batch_stats: Sequence[Sequence[float]],
    moving: Sequence[float],
    population: Sequence[float],
    noisy,
    shrinks,
    whole,
    cost=None,
    *,
    holm: Adjusted = None,
) -> Judgement:
    """Verdict on "batch statistics are noisy, so prediction uses fixed (whole-data) statistics".

    Parameters
    ----------
    sizes : sequence of int
        The evaluation batch sizes, increasing (at least two).
    batch_stats : sequence (one per size) of sequences (one per seed) of float
        Test accuracy with each test batch normalised by its own statistics.
    moving, population : sequence of float
        Per seed, the test accuracy in prediction mode with the moving averages, and with
        statistics recomputed over the whole training set.
    noisy, shrinks, whole : Claimed
        Whole-data − batch statistics at the smallest size; batch statistics at the largest
        size − at the smallest; whole-data − moving averages (see the study's criterion).
    cost : Claimed, optional
        Whole-data − batch statistics at every size, shown beside the verdict.
    holm : mapping of str to float, optional
        The study's Holm-adjusted p-values by comparison name.
    """
    few = too_few_seeds(
        {
            **{f"batch statistics at {b}": v for b, v in zip(sizes, batch_stats)},
            "moving averages": moving,
            "whole data": population,
        }
    )
    if few:
        return Judgement(few)
    if len(sizes) < 2:
        return Judgement(
            f"{UNCLEAR}: one evaluation batch size ({sizes[0]}); whether the "
            f"noise shrinks needs at least two"
        )
    small, large = sizes[0], sizes[-1]
    deciding = [
        _compared(noisy, population, batch_stats[0], name=f"noisy (batch {small})", holm=holm),
        _compared(
            shrinks,
            batch_stats[-1],
            batch_stats[0],
            name=f"shrinks (batch {large} vs {small})",
            holm=holm,
        ),
        _compared(whole, population, moving, holm=holm),
    ]
    shown = (
        [
            _compared(cost, population, values, name=f"cost (batch {size})", holm=holm)
            for size, values in zip(sizes, batch_stats)
        ]
        if cost is not None
        else []
    )
    parts = {name: _said(c) for name, c in zip(("noisy", "shrinks", "whole data"), deciding)}
    return Judgement(combine(parts), parts, deciding + shown)
