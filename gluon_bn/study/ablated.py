"""The ablations' criterion: every network at its best learning rate, and the bias identity. No MXNet.

Each run of an ablated network (and of the full BN network it is compared with) chose its
learning rate on a validation split carved from the training images (:func:`choose_rate`:
the rate of the grid with the best final validation accuracy among those that train), was
trained again at that rate on every training image and measured on the test set. A
network that trains at no rate of the grid *fails to train*: its ablation is inconclusive,
never support for the claim (a network that does not train shows nothing about the part
it lacks). The bias before BN is not trained at all: its redundancy is an identity, checked
numerically and stated as a fact (:func:`bias_fact`).
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence, Tuple

from gluon_bn.study.judging import (
    MIN_SEEDS,
    Adjusted,
    Judgement,
    Seeded,
    _compared,
    _said,
    failure,
    too_few_seeds,
)
from gluon_bn.study.stats import UNCLEAR

FAILS_TO_TRAIN = "fails to train"  # how a verdict names a network that trains at no rate
# each part's verdict on runs of the earlier design (the study's verdict says how to re-run)
EARLIER_PART = f"{UNCLEAR}: runs of the earlier design, not read (see the verdict)"


def choose_rate(validation: Sequence[Mapping[str, object]]) -> Tuple[Optional[float], str]:
    """Return the rate with the best final validation accuracy among those that train, and why.

    Parameters
    ----------
    validation : sequence of mappings
        One per rate of the grid: ``lr``, ``final_acc`` (on the validation split), ``loss``
        and ``diverged``, as a training run keeps them.

    Returns
    -------
    (rate, why)
        The rate (None when none trains: each failed by
        :func:`gluon_bn.study.judging.failure`) and a phrase: what was chosen, or why each
        rate failed. Ties go to the smaller rate.
    """
    trained = [
        (float(v["final_acc"]), -float(v["lr"]))
        for v in validation
        if failure(v) is None and v.get("final_acc") is not None
    ]
    if not trained:
        return None, "; ".join(
            f"lr {float(v['lr']):g}: {failure(v) or 'no accuracy'}" for v in validation
        )
    accuracy, rate = max(trained)
    return -rate, f"lr {-rate:g} (validation accuracy {accuracy:.3f})"


def untrained(run: Mapping[str, object]) -> Optional[str]:
    """Return why a tuned run does not count, or None: no rate trained, or its final run failed."""
    if run.get("untrainable"):
        return str(run["untrainable"])
    why = failure(run)
    if why and run.get("chosen_lr") is not None:
        return f"at its chosen rate {float(run['chosen_lr']):g}: {why}"
    return why


def previous_design(runs: Sequence[Mapping[str, object]], command: str) -> Optional[str]:
    """Return the verdict of runs made before each network chose its rate (None: today's design).

    Runs of the earlier design (every network at lr 1.0, no validation split, the bias
    ablation trained) have no ``chosen_lr``; they are not re-judged by today's criterion.
    """
    if all("chosen_lr" in run for run in runs):
        return None
    return (
        f"{UNCLEAR}: these runs were made at the earlier design (every network at lr 1.0, "
        f"no learning rate chosen on a validation split, the bias trained as an ablation), "
        f"which today's criterion does not read; re-run at the new design: `{command}`"
    )


def tuned_ablation(
    full: Sequence[Mapping[str, object]],
    ablated: Sequence[Mapping[str, object]],
    claimed,
    *,
    holm: Adjusted = None,
) -> Judgement:
    """Verdict on one ablation with both networks at their chosen rates.

    Parameters
    ----------
    full, ablated : sequence of run mappings
        Per seed: ``seed``, ``final_acc`` (test), ``chosen_lr``, and ``untrainable`` when no
        rate of the grid trained (:func:`untrained`).
    claimed : Claimed
        Full BN − ablated final test accuracy, claimed greater.
    holm : mapping of str to float, optional
        The study's Holm-adjusted p-values by comparison name.

    When either network fails to train on some seed, the verdict is inconclusive ("fails to
    train") and the difference over the seeds both trained is only shown (not deciding).
    """
    few = too_few_seeds({"full BN": full, "ablated": ablated})
    if few:
        return Judgement(few)
    runs = {
        "full BN": {int(r.get("seed", i)): r for i, r in enumerate(full)},
        "ablated": {int(r.get("seed", i)): r for i, r in enumerate(ablated)},
    }
    seeds = sorted(set(runs["full BN"]) & set(runs["ablated"]))
    failed = {
        net: {s: why for s in seeds for why in [untrained(by[s])] if why}
        for net, by in runs.items()
    }
    kept = [s for s in seeds if not any(s in f for f in failed.values())]

    def rate(run: Mapping[str, object]) -> str:
        return "none" if run.get("chosen_lr") is None else f"{float(run['chosen_lr']):g}"

    rates = "chosen rates full/ablated: " + ", ".join(
        f"seed {s} {rate(runs['full BN'][s])}/{rate(runs['ablated'][s])}" for s in seeds
    )

    def accuracy(net: str) -> Seeded:
        return Seeded([float(runs[net][s]["final_acc"]) for s in kept], kept)

    if any(failed.values()):
        shown = (
            [
                _compared(
                    claimed, accuracy("full BN"), accuracy("ablated"), role="reference", holm=holm
                )
            ]
            if len(kept) >= MIN_SEEDS
            else []
        )
        who = "; ".join(
            f"the {'full BN' if net == 'full BN' else 'ablated'} network on "
            f"{len(f)} of {len(seeds)} seeds (seed {s}: {why})"
            for net, f in failed.items()
            if f
            for s, why in [next(iter(f.items()))]
        )
        return Judgement(
            f"{UNCLEAR}: {FAILS_TO_TRAIN}: {who}, trained at no rate of the grid "
            f"or not at its chosen one; a network that does not train is no "
            f"evidence about the part it lacks, so this is not counted for the "
            f"claim; {rates}",
            comparisons=shown,
        )
    comparison = _compared(claimed, accuracy("full BN"), accuracy("ablated"), holm=holm)
    return Judgement(f"{_said(comparison)}; {rates}", comparisons=[comparison])


def bias_fact(runs: Sequence[Mapping[str, object]], tolerance: float) -> Optional[str]:
    """Return the report's sentence on the bias identity from its check runs (None: no runs).

    Parameters
    ----------
    runs : sequence of mappings
        One per seed: ``layers`` (BN layers checked), ``training_change`` (largest change of
        a BN layer's training-mode output when a constant is added per channel to its
        input, relative to the output's scale), ``constant_gradient`` (largest gradient of
        the loss with respect to that constant, relative to the gradient with respect to
        beta), ``prediction_change`` (the same change in prediction mode once each layer's
        moving statistics have settled on its input), ``steps`` (those settling steps).
    tolerance : float
        The stated float tolerance (:data:`gluon_bn.study.registry.BIAS_TOLERANCE`).
    """
    runs = [r for r in runs if r.get("training_change") is not None]
    if not runs:
        return None
    worst = {
        key: max(float(r[key]) for r in runs)
        for key in ("training_change", "constant_gradient", "prediction_change")
    }
    held = all(v <= tolerance for v in worst.values())
    float32 = max(
        (
            float(r["training_change_float32"])
            for r in runs
            if r.get("training_change_float32") is not None
        ),
        default=None,
    )
    return (
        f"Checked, a fact and not a verdict: the bias before BN "
        f"{'is redundant' if held else 'is NOT shown redundant'}. Adding a constant per "
        f"channel to the input of each of BN LeNet's "
        f"{runs[0].get('layers')} nn.BatchNorm layers (on a real batch of training "
        f"images, {len(runs)} seed(s)) changes its training-mode output by at most "
        f"{worst['training_change']:.1e} of the output's scale, the loss's gradient with "
        f"respect to the constant is at most {worst['constant_gradient']:.1e} of its "
        f"gradient with respect to beta, and once {runs[0].get('steps')} training steps "
        f"on the same inputs have settled the moving statistics, the prediction-mode "
        f"outputs differ by at most "
        f"{worst['prediction_change']:.1e}, all in float64"
        + (
            f" (in float32, the precision training uses, the training-mode change is up "
            f"to {float32:.1e}: rounding over a channel's values)"
            if float32
            else ""
        )
        + ": "
        + (
            f"within the float tolerance {tolerance:g} the study states, so a bias the "
            f"layer follows changes nothing and receives no gradient."
            if held
            else f"beyond the float tolerance {tolerance:g} the study states, so the identity "
            f"is not confirmed at that tolerance."
        )
    )
