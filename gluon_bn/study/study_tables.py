"""The tables a study's report shows beside its configurations: the numbers its criterion read. No MXNet.

batch-noise: the test accuracy of its one network per seed by the statistics it normalises
with. regularization: every network at every rate at matched fit (how many seeds fitted,
in how many epochs, the validation accuracy that chose the rate, the gap), the chosen rates
marked. Records of an earlier design (:func:`gluon_bn.study.judges.earlier_design`) have none.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence

from gluon_bn.study import judging
from gluon_bn.study.fitted import NETWORKS, at_fit, choose_fitted_rate
from gluon_bn.study.judges import earlier_design, regularization_networks
from gluon_bn.study.noise import batch_stats_at
from gluon_bn.study.study_record import StudyRecord


def _mean_sd(values: Sequence[float], digits: int = 3) -> str:
    return judging.interval(values).text(digits) if len(values) > 1 else f"{values[0]:.{digits}f}"


def _seeds(values: Sequence[Optional[float]], digits: int = 3) -> str:
    return ", ".join("—" if v is None else f"{v:.{digits}f}" for v in values)


def _batch_noise(record: StudyRecord) -> List[str]:
    (config,) = record.configurations
    sizes = sorted(int(b) for b in config.settings["eval_batch_sizes"])
    whole = judging.accuracies([r.get("population_acc") for r in config.runs])
    rows = [
        (f"batch statistics, evaluation batch {b}", list(batch_stats_at(config.runs, b)))
        for b in sizes
    ]
    rows += [
        (
            "moving averages (prediction mode)",
            judging.accuracies([r.get("moving_acc") for r in config.runs]),
        ),
        ("whole-data statistics (prediction mode)", whole),
    ]
    lines = [
        "**Test accuracy by the statistics used** (one network per seed, evaluated every "
        "way; a diverged run at chance):",
        "",
        "| statistics | test accuracy | whole data − it | per seed |",
        "|---|---|---|---|",
    ]
    for name, values in rows:
        lines.append(
            f"| {name} | {_mean_sd(values)} | "
            f"{_mean_sd([w - v for w, v in zip(whole, values)])} | {_seeds(values)} |"
        )
    return lines + [""]


def _regularization(record: StudyRecord) -> List[str]:
    networks = regularization_networks(record.configurations)
    fit = float(record.configurations[0].settings["fit_loss"])
    lines = [
        f"**At matched fit** (each run at its first epoch with prediction-mode training "
        f"loss ≤ {fit:g}; a network's rate is the one marked, chosen by validation "
        f"accuracy at fit among the rates at which every seed fits):",
        "",
        "| network | lr | fitted | epochs to fit | validation acc at fit | train acc at "
        "fit | test acc at fit | gap at fit | gap per seed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for net in (n for n in NETWORKS if n in networks):
        chosen, _ = choose_fitted_rate(networks[net], fit)
        for rate, runs in sorted(networks[net].items()):
            fits = [at_fit(r, fit) for r in runs]
            done = [f for f in fits if f]

            def column(key: str, digits: int = 3) -> str:
                return _mean_sd([f[key] for f in done], digits) if done else "—"

            lines.append(
                f"| {net} | {rate:g}{' (chosen)' if rate == chosen else ''} | "
                f"{len(done)} of {len(runs)} | {column('epoch', 1)} | {column('val_acc')} | "
                f"{column('train_acc')} | {column('test_acc')} | {column('gap')} | "
                f"{_seeds([f['gap'] if f else None for f in fits])} |"
            )
    return lines + [""]


TABLES: Dict[str, Callable[[StudyRecord], List[str]]] = {
    "batch-noise": _batch_noise,
    "regularization": _regularization,
}


def study_tables(record: StudyRecord) -> List[str]:
    """Return the Markdown lines of `record`'s own tables (none for most studies)."""
    if record.study not in TABLES or earlier_design(record.study, record.configurations):
        return []
    return TABLES[record.study](record)
