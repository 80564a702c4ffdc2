"""The regularization study's criterion: the train−test gap at matched fit. No MXNet.

Each run trains one network at one learning rate and records after every epoch, in
prediction mode, its training loss and accuracy on the images it trains on, its accuracy
on a validation split carved from the training images (never trained on) and its test
accuracy. It stops at the first epoch whose training loss is at most the stated fit
threshold: it has *fitted* (:func:`fit_epoch`). A run that never gets there within the
epoch budget, or diverges, is *censored*: it has no gap at matched fit, and the report
names it.

Networks are compared at matched fit: each run's train−test accuracy gap is read at its
fitting epoch (:func:`at_fit`), so that two networks are compared when they fit their
training images equally well, not after unequal training. Each network's learning rate is
chosen the same way, before the test set is read (:func:`choose_fitted_rate`): among the
grid's rates at which every seed fits, the one with the best mean validation accuracy at
the fitting epoch. Dropout on BN LeNet is the positive control (BN LeNet trains with
dropout; plain sigmoid LeNet hardly does): unless its gap is shown smaller, the design is not
shown able to detect a regularizer, and the verdict says so.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from gluon_bn.study.judging import (
    Adjusted,
    Judgement,
    Seeded,
    _compared,
    _said,
    outcome,
    phrase,
    too_few_seeds,
)
from gluon_bn.study.stats import HOLDS, UNCLEAR

NETWORKS = ("plain", "BN", "plain + dropout", "BN + dropout")
CANNOT_DETECT = "the design cannot detect regularization"
Runs = Mapping[float, Sequence[Mapping[str, object]]]  # learning rate -> runs, one per seed


def fit_epoch(run: Mapping[str, object], fit_loss: float) -> Optional[int]:
    """Return the first 1-based epoch whose training loss is at most `fit_loss`, or None.

    Parameters
    ----------
    run : mapping
        ``train_loss``: the prediction-mode training loss after every epoch (None where it
        was not finite); ``diverged``.
    fit_loss : float
        The stated fit threshold.
    """
    if run.get("diverged"):
        return None
    return next(
        (
            i
            for i, v in enumerate(run.get("train_loss") or [], 1)
            if v is not None and v <= fit_loss
        ),
        None,
    )


def at_fit(run: Mapping[str, object], fit_loss: float) -> Optional[Dict[str, float]]:
    """Return a run's numbers at its fitting epoch, or None when it is censored.

    Returns
    -------
    dict or None
        ``epoch``, ``train_loss``, ``train_acc``, ``val_acc``, ``test_acc`` (``curve``) and
        ``gap`` (train − test accuracy) at :func:`fit_epoch`.
    """
    epoch = fit_epoch(run, fit_loss)
    if epoch is None:
        return None
    i = epoch - 1
    train, test = float(run["train_accs"][i]), float(run["curve"][i])
    return {
        "epoch": epoch,
        "train_loss": float(run["train_loss"][i]),
        "train_acc": train,
        "val_acc": float(run["val_accs"][i]),
        "test_acc": test,
        "gap": train - test,
    }


def never_fit(by_rate: Runs, fit_loss: float) -> Dict[float, List[int]]:
    """Return, per rate, the seeds whose run never fitted (rates where all fitted left out)."""
    out = {}
    for rate, runs in by_rate.items():
        seeds = [
            int(r.get("seed", i)) for i, r in enumerate(runs) if fit_epoch(r, fit_loss) is None
        ]
        if seeds:
            out[float(rate)] = seeds
    return out


def choose_fitted_rate(by_rate: Runs, fit_loss: float) -> Tuple[Optional[float], str]:
    """Return the rate with the best mean validation accuracy at fit among those where every
    seed fits, and why (None when no rate qualifies). Ties go to the smaller rate.

    Parameters
    ----------
    by_rate : mapping of float to sequence of run mappings
        The network's runs at every rate of the grid.
    fit_loss : float
    """
    scored = []
    for rate, runs in by_rate.items():
        fits = [at_fit(r, fit_loss) for r in runs]
        if runs and all(fits):
            scored.append((sum(f["val_acc"] for f in fits) / len(fits), -float(rate)))
    if not scored:
        return None, "fits at no rate of the grid on every seed"
    accuracy, rate = max(scored)
    return -rate, f"lr {-rate:g} (mean validation accuracy at fit {accuracy:.3f})"


def gaps_at_fit(runs: Sequence[Mapping[str, object]], fit_loss: float) -> Seeded:
    """Return every run's train−test gap at its fitting epoch, with the seeds (all must fit)."""
    return Seeded(
        [at_fit(r, fit_loss)["gap"] for r in runs],
        [int(r.get("seed", i)) for i, r in enumerate(runs)],
    )


def _censored_text(networks: Mapping[str, Runs], fit_loss: float) -> str:
    """Every run that never fitted, by network and rate ("" when none)."""
    parts = [
        f"{net} lr {rate:g} on {len(seeds)} of {len(by_rate[rate])} seeds"
        + (f" ({', '.join(map(str, seeds))})" if len(seeds) < len(by_rate[rate]) else "")
        for net, by_rate in networks.items()
        for rate, seeds in sorted(never_fit(by_rate, fit_loss).items())
    ]
    return (
        (f"runs that never reached training loss ≤ {fit_loss:g} (censored): " + "; ".join(parts))
        if parts
        else f"every run reached training loss ≤ {fit_loss:g}"
    )


def regularization(
    networks: Mapping[str, Runs],
    fit_loss: float,
    claimed,
    control,
    shown=None,
    *,
    holm: Adjusted = None,
) -> Judgement:
    """Verdict on "BN regularizes": at matched fit, BN LeNet's train−test gap is below plain's.

    Parameters
    ----------
    networks : mapping of str to (mapping of float to sequence of run mappings)
        :data:`NETWORKS` to their runs by learning rate; each run with ``seed``,
        ``train_loss``, ``train_accs``, ``val_accs``, ``curve`` (test accuracy) per epoch and
        ``diverged``.
    fit_loss : float
        The stated fit threshold of the prediction-mode training loss.
    claimed : Claimed
        BN − plain gap at matched fit, claimed less.
    control : Claimed
        BN + dropout − BN gap at matched fit, claimed less: the positive control.
    shown : Claimed, optional
        Plain + dropout − plain gap, shown beside the verdict when plain + dropout fits.
    holm : mapping of str to float, optional
        The study's Holm-adjusted p-values by comparison name.
    """
    few = too_few_seeds(
        {
            f"{net} lr {rate:g}": runs
            for net, by_rate in networks.items()
            for rate, runs in by_rate.items()
        }
    )
    if few:
        return Judgement(few)
    chosen = {net: choose_fitted_rate(by_rate, fit_loss) for net, by_rate in networks.items()}
    rates = "chosen rates: " + "; ".join(f"{net} {why}" for net, (_, why) in chosen.items())
    censored = _censored_text(networks, fit_loss)
    gaps = {
        net: gaps_at_fit(networks[net][rate], fit_loss)
        for net, (rate, _) in chosen.items()
        if rate is not None
    }
    pairs = (
        ("gap", claimed, "BN", "plain"),
        ("control", control, "BN + dropout", "BN"),
        ("shown", shown, "plain + dropout", "plain"),
    )
    made = {
        key: _compared(c, gaps[a], gaps[b], holm=holm)
        for key, c, a, b in pairs
        if c is not None and a in gaps and b in gaps
    }
    comparisons = [made[k] for k in ("gap", "control", "shown") if k in made]
    where = (
        f"at matched fit (each run at its first epoch with prediction-mode training loss "
        f"≤ {fit_loss:g}); {rates}; {censored}"
    )
    if "gap" not in made:
        missing = "; ".join(
            f"{net} LeNet {chosen[net][1]}" for net in ("plain", "BN") if net not in gaps
        )
        return Judgement(
            f"{UNCLEAR}: {missing} (a gap at matched fit needs every seed to fit); {where}",
            comparisons=comparisons,
        )
    parts = {"gap": _said(made["gap"])}
    if "control" not in made:
        parts["dropout control"] = f"{UNCLEAR}: BN + dropout LeNet {chosen['BN + dropout'][1]}"
    else:
        parts["dropout control"] = _said(made["control"])
    if outcome(parts["dropout control"]) != HOLDS:
        return Judgement(
            f"{UNCLEAR}: {CANNOT_DETECT}: dropout's gap is not shown smaller "
            f"(the positive control {phrase(parts['dropout control'])}), so a "
            f"gap the design does not show smaller says nothing; gap: "
            f"{parts['gap']}; {where}",
            parts,
            comparisons,
        )
    return Judgement(
        f"{made['gap'].outcome}: {made['gap'].text()}; the dropout control "
        f"{phrase(parts['dropout control'])}; {where}",
        parts,
        comparisons,
    )
