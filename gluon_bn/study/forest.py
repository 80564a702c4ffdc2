"""A study record's comparisons as a forest plot: ``NAME-intervals.png``. No MXNet (matplotlib, Agg).

One row per comparison a − b: its interval and estimate, coloured by that comparison's own
outcome (after Holm's adjustment), with the band ±margin around 0 shaded. The deciding rows
come first and are drawn solid; rows shown beside the verdict (role "reference") are drawn
hollow and paler, so that a figure never looks as if they decided it. A sign test's row
draws the median, its order-statistic interval and every seed's value. A difference of
logarithms of times (a label starting ``ln(``) is drawn as the ratio it is, on a log axis
with ratio ticks (×0.5, ×1, ×2, ...).
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from gluon_bn.study import judging, stats
from gluon_bn.study.study_record import StudyRecord

OUTCOME_COLOURS = {
    stats.HOLDS: "tab:green",
    stats.NEGLIGIBLE: "yellowgreen",
    stats.FAILS: "tab:red",
    stats.UNCLEAR: "tab:grey",
}
RATIO_TICKS = (0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)
CHARS_PER_INCH = 13  # of a 10-point title: how much text one line of a figure holds


def outcome_colour(row: Dict[str, object]) -> str:
    """Return the colour of a comparison row by its own outcome ("holds, below the margin" apart)."""
    return OUTCOME_COLOURS[judging.phrase(str(row["outcome"]))]


def is_ratio(row: Dict[str, object]) -> bool:
    """Return whether a row is a difference of logarithms (``ln(a / b)``), drawn as a ratio."""
    return str(row["label"]).startswith("ln(")


def wrapped(text: str, inches: float) -> str:
    """Return `text` wrapped to the lines a figure `inches` wide holds at 10 points."""
    return textwrap.fill(text, max(30, int(inches * CHARS_PER_INCH)))


def panels(rows: Sequence[Dict[str, object]]) -> Dict[Tuple[bool, float], List[Dict[str, object]]]:
    """Return the rows by panel (ratio or not, margin), the deciding rows of each first."""
    out: Dict[Tuple[bool, float], List[Dict[str, object]]] = {}
    for row in sorted(rows, key=lambda r: r.get("role", "decides") != "decides"):
        out.setdefault((is_ratio(row), float(row["margin"])), []).append(row)
    return out


def _ratio_ticks(ax, lo: float, hi: float) -> None:
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ticks = [t for t in RATIO_TICKS if lo <= t <= hi] or [1]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"×{v:g}"))


def _panel(ax, ratio: bool, margin: float, members: List[Dict[str, object]]) -> None:
    """Draw one panel's rows (in ratio units when `ratio`)."""
    scale = math.exp if ratio else (lambda v: v)
    centre = scale(0.0)
    band = (scale(-margin), scale(margin))
    ax.axvspan(*band, color="tab:blue", alpha=0.12, linewidth=0)
    ax.axvline(centre, color="black", linewidth=0.8)
    ends = list(band)
    for y, row in enumerate(members):
        colour, shown = outcome_colour(row), row.get("role") == "reference"
        lower, upper, middle = (scale(float(row[k])) for k in ("lower", "upper", "difference"))
        ax.plot(
            [lower, upper],
            [y, y],
            color=colour,
            linewidth=1.5 if shown else 2.5,
            alpha=0.6 if shown else 1.0,
        )
        ax.plot(
            [middle],
            [y],
            "o",
            color=colour,
            markersize=6,
            markerfacecolor="white" if shown else colour,
        )
        values = [scale(float(v)) for v in row.get("values") or ()]
        if values:  # a sign test reads every seed's sign: show them, with how many share a value
            ax.plot(values, [y + 0.22] * len(values), "|", color=colour, markersize=7, alpha=0.8)
            for value in sorted(set(values)):
                if values.count(value) > 1:
                    ax.annotate(
                        f"{values.count(value)}×",
                        (value, y + 0.22),
                        fontsize=7,
                        xytext=(3, -9),
                        textcoords="offset points",
                        color=colour,
                    )
        ends += [lower, upper] + values
    lo, hi = min(ends), max(ends)
    if ratio:
        pad = (hi / lo) ** 0.06
        ax.set_xscale("log")
        ax.set_xlim(lo / pad, hi * pad)
        _ratio_ticks(ax, lo / pad, hi * pad)
        ax.set_xlabel(
            f"ratio a / b, log scale (within ×{math.exp(margin):.3g} either way "
            f"shaded: no difference)",
            fontsize=8,
        )
    else:
        pad = 0.06 * (hi - lo or 1.0)
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_xlabel(f"difference a − b (within ±{margin:.3g} shaded: no difference)", fontsize=8)
    ax.set_yticks(range(len(members)))
    ax.set_yticklabels(
        [
            f"{r['name']}{' (shown)' if r.get('role') == 'reference' else ''}: "
            f"{judging.phrase(str(r['outcome']))}"
            + (" after Holm" if r.get("holm_demoted") else "")
            for r in members
        ],
        fontsize=8,
    )
    ax.set_ylim(len(members) - 0.5, -0.6)
    ax.grid(alpha=0.3, axis="x")
    labels = {str(r["label"]) for r in members}
    if len(labels) == 1:  # several: each row's name and the report's table say which
        ax.set_title(wrapped(labels.pop(), 6), fontsize=8)


def intervals(record: StudyRecord):
    """Return the forest plot of `record`'s comparisons as a matplotlib Figure (not saved)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    groups = panels(record.comparisons)
    heights = [max(1, len(m)) for m in groups.values()] or [1]
    width = 8.5
    fig, axes = plt.subplots(
        len(heights),
        1,
        squeeze=False,
        figsize=(width, sum(0.42 * h + 1.0 for h in heights) + 1.3),
        gridspec_kw={"height_ratios": heights},
    )
    for ax, ((ratio, margin), members) in zip(axes[:, 0], groups.items()):
        _panel(ax, ratio, margin, members)
    if not groups:
        axes[0, 0].set_axis_off()
        axes[0, 0].text(
            0.5,
            0.5,
            wrapped(f"No comparison. {record.verdict}"[:400], width - 1),
            ha="center",
            va="center",
            fontsize=9,
        )
    t_rows = [r for r in record.comparisons if r.get("kind", "t") == "t"]
    how = []
    if t_rows:
        how.append(f"{t_rows[0]['confidence']:.0%} t intervals of the mean")
    if any(r.get("kind") == "sign" for r in record.comparisons):
        how.append("sign tests: the median, its order-statistic interval, ticks at each seed")
    if not groups:
        fig.suptitle(f"{record.study}: {judging.phrase(record.verdict)}", fontsize=10)
        fig.tight_layout()
        return fig
    fig.suptitle(
        wrapped(
            f"{record.study}: {judging.phrase(record.verdict)}. Each row a − b "
            f"({'; '.join(how)}), coloured by its own outcome; hollow rows are "
            f"shown, not deciding",
            width,
        ),
        fontsize=10,
    )
    legend = [Line2D([], [], color=c, linewidth=2.5, label=w) for w, c in OUTCOME_COLOURS.items()]
    fig.legend(handles=legend, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.35 / fig.get_size_inches()[1], 1, 1))  # room for the legend
    return fig


def forest(record: StudyRecord, path: Path) -> None:
    """Draw ``NAME-intervals.png`` (:func:`intervals`) to `path`."""
    import matplotlib.pyplot as plt

    fig = intervals(record)
    fig.savefig(path, dpi=100)
    plt.close(fig)
