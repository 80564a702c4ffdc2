"""A study record as figures: ``NAME.png`` (the numbers, ± sd over seeds) and
``NAME-intervals.png`` (a forest plot of the comparisons the verdict reads). No MXNet until
drawing (matplotlib, Agg)."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence

from gluon_bn.study import criteria
from gluon_bn.study.plans import ACCURACY_KEYS, DISPLAYS, LABELS
from gluon_bn.study.record import Configuration, StudyRecord

OUTCOME_COLOURS = {criteria.HOLDS: "tab:green", criteria.FAILS: "tab:red",
                   criteria.UNCLEAR: "tab:grey"}


def numbers(config: Configuration, key: str) -> List[float]:
    """Return `key` over the seeds; accuracies of diverged runs at chance, other gaps left out."""
    values = config.values(key)
    if key in ACCURACY_KEYS and any(run.get("diverged") for run in config.runs):
        return criteria.accuracies(values)
    return [float(v) for v in values if v is not None]


def plot(record: StudyRecord, path: Path) -> None:
    """Draw ``NAME.png``: the study's numbers with error bars (± sd over seeds)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    display = DISPLAYS[record.study]
    configs = record.configurations
    if display.plot == "curves":
        groups = _group(configs, display.panels)
        fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 3.8), squeeze=False)
        for ax, (title, members) in zip(axes[0], groups.items()):
            for config in members:
                curves = [c for c in config.values("curve") if c]
                length = min(len(c) for c in curves)
                spans = [criteria.interval([c[i] for c in curves]) for i in range(length)]
                ax.errorbar(range(1, length + 1), [s.mean for s in spans],
                            yerr=[s.sd for s in spans], marker="o", ms=3, capsize=3,
                            label=config.name)
            ax.set(xlabel="epoch", ylabel=display.ylabel, title=title)
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
    elif display.plot == "sweep":
        fig, ax = plt.subplots(figsize=(6.5, 4))
        # (label, configurations, metric) per line: one per value of `series`, else per accuracy
        lines = ([(label, members, display.metrics[0])
                  for label, members in _group(configs, display.series).items()]
                 if display.series else
                 [(LABELS[m], configs, m) for m in display.metrics if m in ACCURACY_KEYS])
        for label, members, metric in lines:
            xs = [c.settings[display.x] for c in members]
            spans = [criteria.interval(numbers(c, metric)) for c in members]
            ax.errorbar(xs, [s.mean for s in spans], yerr=[s.sd for s in spans], marker="o",
                        capsize=3, label=label)
        ax.set(xscale="log", xlabel=display.x.replace("_", " "), ylabel=display.ylabel)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    else:
        metrics = [m for m in display.bars if any(numbers(c, m) for c in configs)]
        fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics) + 1.5,
                                                           0.4 * len(configs) + 1.5), squeeze=False)
        for ax, metric in zip(axes[0], metrics):
            shown = [c for c in configs if numbers(c, metric)]
            spans = [criteria.interval(numbers(c, metric)) for c in shown]
            ax.barh([c.name for c in shown], [s.mean for s in spans],
                    xerr=[s.sd for s in spans], capsize=3, color="tab:blue", alpha=0.8)
            ax.invert_yaxis()
            ax.set_xlabel(LABELS.get(metric, metric))
            ax.grid(alpha=0.3, axis="x")
    fig.suptitle(f"{record.study}: {criteria.outcome(record.verdict)} "
                 f"({record.options['seeds']} seed(s), ± sd; the verdict reads "
                 f"{record.study}-intervals.png)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _group(configs: Sequence[Configuration], key: Optional[str]) -> Dict[str, List[Configuration]]:
    """Configurations by the value of setting `key` (one group of all when None), in order."""
    groups: Dict[str, List[Configuration]] = {}
    for config in configs:
        groups.setdefault(str(config.settings.get(key, "")) if key else "", []).append(config)
    return groups


def forest(record: StudyRecord, path: Path) -> None:
    """Draw ``NAME-intervals.png``: one line per comparison, its interval, the margin shaded.

    Each row is a difference a − b with its two-sided t interval (the record's confidence
    level) and its estimate; the band ±margin around 0 is shaded, 0 is a line. Rows are
    coloured by their outcome; reference rows (shown, not deciding) are drawn hollow.
    Comparisons are grouped by their margin, one panel per unit (accuracy, epochs, ...).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = record.comparisons
    panels: Dict[str, list] = {}
    for row in rows:
        panels.setdefault(_unit(row), []).append(row)
    if not rows:
        panels = {"no comparison (too few seeds)": []}
    fig, axes = plt.subplots(len(panels), 1, squeeze=False,
                             figsize=(8, sum(0.45 * max(1, len(p)) + 1.1 for p in panels.values())),
                             gridspec_kw={"height_ratios": [max(1, len(p)) for p in panels.values()]})
    for ax, (unit, members) in zip(axes[:, 0], panels.items()):
        if members:
            margin = members[0]["margin"]
            ax.axvspan(-margin, margin, color="tab:blue", alpha=0.15, linewidth=0)
            labels = {str(r["label"]) for r in members}
            if len(labels) == 1:  # several: the report's table names each row's difference
                ax.set_title(labels.pop(), fontsize=8)
        for y, row in enumerate(members):
            colour = OUTCOME_COLOURS[row["outcome"]]
            ax.plot([row["lower"], row["upper"]], [y, y], color=colour, linewidth=2)
            hollow = row.get("role") == "reference"
            ax.plot([row["difference"]], [y], "o", color=colour,
                    markerfacecolor="white" if hollow else colour)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_yticks(range(len(members)))
        ax.set_yticklabels([f"{r['name']} ({r['outcome']}"
                            + (", shown)" if r.get("role") == "reference" else ")")
                            for r in members], fontsize=8)
        ax.set_ylim(max(1, len(members)) - 0.5, -0.5)
        ax.set_xlabel(unit, fontsize=8)
        ax.grid(alpha=0.3, axis="x")
    confidence = rows[0]["confidence"] if rows else None
    fig.suptitle(f"{record.study}: {criteria.outcome(record.verdict)}; differences a − b, "
                 + (f"{confidence:.0%} t intervals, " if confidence else "")
                 + "margin shaded", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _unit(row: Dict[str, object]) -> str:
    """A panel per margin (in these studies, one margin per unit: accuracy, epochs, ...)."""
    return f"difference a − b (margin ±{row['margin']:.3g} shaded)"
