"""A study record as figures: ``NAME.png`` (the numbers) and ``NAME-intervals.png`` (the
comparisons, :mod:`gluon_bn.study.forest`). No MXNet (matplotlib, Agg).

``NAME.png`` draws every seed: each run is a point (or a thin line, for curves), and each
mean is drawn over them, never a mean ± sd bar alone (a bar hides a bimodal outcome, and a
mean − sd below 0 is no accuracy). Axes of accuracies span the data's range, not 0 to 1;
times are on a log axis. Titles are wrapped to the figure's width.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from gluon_bn.study import judging
from gluon_bn.study.displays import ACCURACY_KEYS, DISPLAYS, LABELS, TIME_KEYS
from gluon_bn.study.fitted import NETWORKS, at_fit, choose_fitted_rate
from gluon_bn.study.forest import OUTCOME_COLOURS, forest, outcome_colour, wrapped
from gluon_bn.study.judges import earlier_design, regularization_networks
from gluon_bn.study.study_record import Configuration, StudyRecord

__all__ = [
    "numbers",
    "data_limits",
    "figure",
    "plot",
    "forest",
    "outcome_colour",
    "OUTCOME_COLOURS",
]
MEAN = dict(color="black", marker="D", markersize=6, linestyle="none", zorder=5)  # a mean's marker


def numbers(config: Configuration, key: str) -> List[float]:
    """Return `key` over the seeds; accuracies of diverged runs at chance, other gaps left out."""
    values = config.values(key)
    if key in ACCURACY_KEYS and any(run.get("diverged") for run in config.runs):
        return judging.accuracies(values)
    return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]


def data_limits(
    values: Sequence[float], *, pad: float = 0.08, bounds: Tuple[float, float] = (0.0, 1.0)
) -> Tuple[float, float]:
    """Return axis limits spanning `values` with `pad` of their range on each side, within `bounds`.

    A range narrower than 0.02 is widened to 0.02, so that nearly equal values are not
    blown up into a dramatic picture.
    """
    lo, hi = min(values), max(values)
    if hi - lo < 0.02:
        middle = (lo + hi) / 2
        lo, hi = middle - 0.01, middle + 0.01
    span = hi - lo
    return max(bounds[0], lo - pad * span), min(bounds[1], hi + pad * span)


def _jitter(n: int, width: float = 0.12) -> List[float]:
    """Offsets spreading `n` points over ±`width` (deterministic)."""
    return [0.0] if n == 1 else [width * (2 * i / (n - 1) - 1) for i in range(n)]


def _curves(plt, configs: Sequence[Configuration], display):
    groups = _group(configs, display.panels)
    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 4.2), squeeze=False)
    everything = []
    for ax, (title, members) in zip(axes[0], groups.items()):
        for i, config in enumerate(members):
            colour = f"C{i}"
            curves = [judging.accuracies(c) for c in config.values("curve") if c]
            for curve in curves:
                ax.plot(range(1, len(curve) + 1), curve, color=colour, alpha=0.3, linewidth=0.8)
            length = min(len(c) for c in curves)
            means = [sum(c[e] for c in curves) / len(curves) for e in range(length)]
            ax.plot(
                range(1, length + 1),
                means,
                color=colour,
                linewidth=2.2,
                marker="o",
                markersize=3,
                label=f"{config.name} (mean of {len(curves)})",
            )
            everything += [v for c in curves for v in c]
        ax.set(xlabel="epoch", ylabel=display.ylabel, title=title)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes[0]:
        ax.set_ylim(*data_limits(everything))
    return fig, "thin lines: each seed; thick: their mean"


def _sweep(plt, configs: Sequence[Configuration], display):
    fig, ax = plt.subplots(figsize=(7, 4.2))
    lines = (
        [
            (label, members, display.metrics[0])
            for label, members in _group(configs, display.series).items()
        ]
        if display.series
        else [(LABELS[m], configs, m) for m in display.metrics if m in ACCURACY_KEYS]
    )
    everything = []
    for i, (label, members, metric) in enumerate(lines):
        shift = 10 ** (0.04 * (i - (len(lines) - 1) / 2))  # series side by side on a log axis
        means = []
        for config in members:
            values = numbers(config, metric)
            x = float(config.settings[display.x]) * shift
            ax.scatter(
                [x * 10**d for d in _jitter(len(values), 0.015)],
                values,
                s=16,
                color=f"C{i}",
                alpha=0.55,
                linewidth=0,
            )
            means.append((x, sum(values) / len(values)))
            everything += values
        ax.plot(
            *zip(*means),
            color=f"C{i}",
            linewidth=2,
            marker="D",
            markersize=5,
            label=f"{label} (mean)",
        )
    ax.set(xscale="log", xlabel=display.x.replace("_", " "), ylabel=display.ylabel)
    ax.set_ylim(*data_limits(everything))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig, "dots: each seed; diamonds and lines: the means"


def log_ticks(ax, values: Sequence[float]) -> None:
    """Put the x axis on a log scale with plain 1-2-5 ticks (20, 50, 100, ...) spanning `values`."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    lo, hi = min(values) / 1.15, max(values) * 1.15
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ticks = [m * 10**e for e in range(-3, 6) for m in (1, 2, 3, 5) if lo <= m * 10**e <= hi]
    ax.xaxis.set_major_locator(FixedLocator(ticks or [lo, hi]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def _dots(plt, configs: Sequence[Configuration], metrics: Sequence[str], *, width: float = 4.8):
    metrics = [m for m in metrics if any(numbers(c, m) for c in configs)]
    if not metrics:
        fig, ax = plt.subplots(figsize=(7, 2))
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no numbers to draw", ha="center", va="center")
        return fig, "no numbers"
    rows = max(len([c for c in configs if numbers(c, m)]) for m in metrics)
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(width * len(metrics) + 2.2, 0.42 * rows + 1.9), squeeze=False
    )
    for ax, metric in zip(axes[0], metrics):
        shown = [c for c in configs if numbers(c, metric)]
        everything = []
        for y, config in enumerate(shown):
            values = numbers(config, metric)
            ax.scatter(
                values,
                [y + d for d in _jitter(len(values), 0.1)],
                s=18,
                color="tab:blue",
                alpha=0.6,
                linewidth=0,
            )
            ax.plot([sum(values) / len(values)], [y], **MEAN)
            everything += values
        ax.set_yticks(range(len(shown)))
        ax.set_yticklabels([c.name for c in shown], fontsize=8)
        ax.set_ylim(len(shown) - 0.5, -0.5)
        ax.set_xlabel(LABELS.get(metric, metric))
        if metric in TIME_KEYS:
            log_ticks(ax, everything)
        else:
            bounds = (
                (0.0, 1.0)
                if metric in ACCURACY_KEYS or metric == "python_share"
                else (-float("inf"), float("inf"))
            )
            ax.set_xlim(*data_limits(everything, bounds=bounds))
        ax.grid(alpha=0.3, axis="x")
    return fig, "dots: each seed; diamonds: the means"


def _statistics(plt, configs: Sequence[Configuration], display):
    """batch-noise: one network per seed, its test accuracy by the statistics it normalises with."""
    (config,) = configs
    sizes = sorted(int(b) for b in config.settings["eval_batch_sizes"])
    columns = [str(b) for b in sizes] + ["moving\naverages", "whole\ndata"]
    fig, ax = plt.subplots(figsize=(7.5, 4.4))
    rows = []
    for run in config.runs:
        if run.get("diverged"):
            continue
        row = [run["batch_stats_acc"][str(b)] for b in sizes] + [
            run["moving_acc"],
            run["population_acc"],
        ]
        rows.append(row)
        ax.plot(
            range(len(sizes)),
            row[: len(sizes)],
            color="tab:blue",
            alpha=0.35,
            linewidth=0.8,
            marker="o",
            markersize=3,
        )
        ax.plot(
            range(len(sizes), len(columns)),
            row[len(sizes) :],
            "o",
            color="tab:blue",
            alpha=0.45,
            markersize=3,
        )
    if not rows:
        ax.text(0.5, 0.5, "every run diverged", transform=ax.transAxes, ha="center")
        return fig, "no run to draw"
    means = [sum(r[i] for r in rows) / len(rows) for i in range(len(columns))]
    ax.plot(range(len(sizes)), means[: len(sizes)], color="black", linewidth=2)
    ax.plot(range(len(columns)), means, **MEAN)
    ax.axvline(len(sizes) - 0.5, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(columns)))
    ax.set_xticklabels(columns, fontsize=8)
    ax.set_xlabel("batch statistics at each evaluation batch size  |  fixed statistics")
    ax.set_ylabel(display.ylabel)
    ax.set_ylim(*data_limits([v for r in rows for v in r]))
    ax.grid(alpha=0.3)
    return fig, f"thin lines: each of {len(rows)} seeds (one network each); diamonds: the means"


def _fit(plt, configs: Sequence[Configuration], display):
    """regularization: each network's gap at matched fit (its chosen rate), and how it got there."""
    networks = regularization_networks(configs)
    fit = float(configs[0].settings["fit_loss"])
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(10.5, 4.6), gridspec_kw={"width_ratios": [1, 1.3]}
    )
    names, everything, losses_seen = [], [], []
    for y, net in enumerate(n for n in NETWORKS if n in networks):
        rate, _ = choose_fitted_rate(networks[net], fit)
        if rate is None:
            names.append(f"{net}: fits at no rate")
            continue
        runs = networks[net][rate]
        gaps = [at_fit(r, fit)["gap"] for r in runs]
        left.scatter(
            gaps, [y + d for d in _jitter(len(gaps))], s=20, color=f"C{y}", alpha=0.7, linewidth=0
        )
        left.plot([sum(gaps) / len(gaps)], [y], **MEAN)
        names.append(f"{net}, lr {rate:g}")
        everything += gaps
        for run in runs:
            losses, trail = zip(
                *[
                    (v, a - t)
                    for v, a, t in zip(run["train_loss"], run["train_accs"], run["curve"])
                    if v is not None
                ]
            )
            right.plot(
                losses,
                trail,
                color=f"C{y}",
                alpha=0.45,
                linewidth=0.9,
                label=names[-1] if run is runs[0] else None,
            )
            right.plot([losses[-1]], [trail[-1]], "o", color=f"C{y}", markersize=3)
            losses_seen += list(losses)
    left.set_yticks(range(len(names)))
    left.set_yticklabels(names, fontsize=8)
    left.set_ylim(len(names) - 0.5, -0.5)
    if everything:
        left.set_xlim(*data_limits(everything, bounds=(-1.0, 1.0)))
    left.set_xlabel(f"{display.ylabel} at the first epoch with training loss ≤ {fit:g}")
    left.grid(alpha=0.3, axis="x")
    right.axvline(fit, color="black", linestyle="--", linewidth=0.8)
    if losses_seen:
        log_ticks(right, losses_seen + [fit])
    right.set(
        xlabel="training loss (prediction mode), decreasing →",
        ylabel=display.ylabel,
        title="each seed's path at its network's chosen rate",
    )
    right.invert_xaxis()
    if losses_seen:
        right.legend(fontsize=8)
    else:
        right.text(
            0.5,
            0.5,
            f"no network fits (training loss ≤ {fit:g}) on every seed at any rate",
            transform=right.transAxes,
            ha="center",
            fontsize=9,
        )
    right.grid(alpha=0.3)
    return fig, "dots: each seed; diamonds: the means"


DRAW = {
    "curves": _curves,
    "sweep": _sweep,
    "statistics": _statistics,
    "fit": _fit,
    "bars": lambda plt, configs, display: _dots(plt, configs, display.bars),
}


def figure(record: StudyRecord):
    """Return ``NAME.png`` of `record` as a matplotlib Figure (not saved).

    A record of an earlier design (:func:`gluon_bn.study.judges.earlier_design`) is drawn as
    dots of whatever numbers its runs hold, under a title that says so.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    display = DISPLAYS[record.study]
    configs = record.configurations
    earlier = earlier_design(record.study, configs)
    if earlier:
        keys = [
            k
            for k in (
                "batch_stats_acc",
                "moving_acc",
                "population_acc",
                "train_acc",
                "final_acc",
                "gap",
            )
            if any(numbers(c, k) for c in configs)
        ]
        fig, how = _dots(plt, configs, keys, width=3.2)
        how = f"{earlier_note(earlier)}; {how}"
    else:
        fig, how = DRAW[display.plot](plt, configs, display)
    width = fig.get_size_inches()[0]
    fig.suptitle(
        wrapped(
            f"{record.study}: {judging.phrase(record.verdict)} "
            f"({record.options['seeds']} seed(s); {how}; the verdict reads "
            f"{record.study}-intervals.png)",
            width,
        ),
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def earlier_note(design: str) -> str:
    """Return the figure's words for a record of an earlier design."""
    return f"recorded at an earlier design ({design}); re-run it"


def plot(record: StudyRecord, path: Path) -> None:
    """Draw ``NAME.png`` (:func:`figure`) to `path`."""
    import matplotlib.pyplot as plt

    fig = figure(record)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _group(configs: Sequence[Configuration], key: Optional[str]) -> Dict[str, List[Configuration]]:
    """Configurations by the value of setting `key` (one group of all when None), in order."""
    groups: Dict[str, List[Configuration]] = {}
    for config in configs:
        groups.setdefault(str(config.settings.get(key, "")) if key else "", []).append(config)
    return groups
