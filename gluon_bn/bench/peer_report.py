"""The peer bench's record as a table and a figure: our loops beside PyTorch eager, per round."""

from __future__ import annotations

from pathlib import Path
from typing import List

from gluon_bn.bench.peer import GLUON_CONFIGS, TORCH_LOOP
from gluon_bn.harness import markdown_table, ratios, span, spread


def format_peer(result: dict) -> str:
    """Return the Markdown table: s/epoch and the ratio to PyTorch, median (range) over rounds.

    Every row names its loop, pipeline and recipe (batch size); a ratio marked † is of a
    row whose work differs from PyTorch's, said in the last column.

    Parameters
    ----------
    result : dict
        From :func:`run_peer`.
    """
    rows = []
    for row in result["rows"]:
        summary = result["summary"][row["label"]]
        mark = " †" if row["differences"] else ""
        rows.append(
            [
                row["label"],
                row["loop"],
                row["pipeline"],
                f"{row['recipe']} ({row['batch_size']})",
                span(summary["seconds"]),
                span(summary["ratio"]) + mark,
                ", ".join(row["differences"]),
            ]
        )
    lines = markdown_table(
        [
            "configuration",
            "loop",
            "pipeline",
            "recipe (batch)",
            "s/epoch, median (range)",
            "× PyTorch per round, median (range)",
            "differs from PyTorch's run",
        ],
        rows,
    )
    return "\n".join(lines) + "\n\n" + " ".join(_table_notes(result))


def _table_notes(result: dict) -> List[str]:
    """Return the sentences under :func:`format_peer`'s table: how rows were timed, and where."""
    plan, rows = result["plan"], result["rows"]
    loops = {(row["loop"], row["pipeline"]) for row in rows}
    notes = [
        f"{plan['rounds']} alternating round(s). train_ch5 and PyTorch: {plan['fraction']:g} "
        f"of an epoch timed after {plan['warmup_batches']} warm-up batches, training "
        f"batches only, scaled to 60000 images."
    ]
    if ("train_ch5", "d2l") in loops:
        notes.append(
            "train_ch5 on the d2l pipeline is the documents' DataLoader and imperative "
            "network, timed as `gluon-bn bench` times it (sums read back once per "
            "epoch, not per batch)."
        )
    if any(loop == "d2l.Trainer" for loop, _ in loops):
        notes.append(
            f"d2l.Trainer: 2 epochs on {plan['fraction']:g} of the images in whole "
            f"batches, validating on a sixth as many; the first is the warm-up, the "
            f"second is timed, validation included, and scaled to 60000 images."
        )
    if any(row["differences"] for row in rows):
        notes.append(
            "† Not like for like: the row's network, batch size or epoch differ from "
            "PyTorch's (last column), so its ratio compares whole routes, not the "
            "same work."
        )
    notes += _against_gluon(result)
    load = ", ".join(
        f"{a:.2f} → {b:.2f}" for a, b in zip(result["load_before"], result["load_after"])
    )
    notes.append(
        f"{plan['threads']} OpenMP thread(s) each; PyTorch "
        f"{result['torch'].get('torch')}. Load average (1, 5, 15 min) before → "
        f"after: {load}."
    )
    return notes


def _against_gluon(result: dict) -> List[str]:
    """Return a sentence per scratch row of the fast paths: its time over Gluon's, per round."""
    from gluon_bn.run.timing import BenchConfig

    gluon = BenchConfig(*GLUON_CONFIGS[0]).label
    if gluon not in result["ratios"]:
        return []
    notes = []
    for row in result["rows"]:
        if row["label"].startswith("scratch") and row["pipeline"] == "fast":
            # Each round's ratios share PyTorch's time as denominator, which cancels here.
            s = spread(ratios(result["ratios"][row["label"]], result["ratios"][gluon]))
            notes.append(
                f"{row['label']} over {gluon}, per round: median "
                f"{s['median']:.2f}x (range {s['min']:.2f}-{s['max']:.2f})."
            )
    return notes


# Bar colours of plot_peer, by (loop, pipeline); PyTorch's row takes the last.
ROUTE_COLORS = {
    ("train_ch5", "fast"): "tab:orange",
    ("train_ch5", "d2l"): "tab:blue",
    ("d2l.Trainer", "d2l"): "tab:green",
    (TORCH_LOOP, "preloaded"): "tab:red",
}


def plot_peer(result: dict, path: Path) -> None:
    """Draw each configuration's median s/epoch as a bar, its range over rounds as a whisker.

    Bars are coloured by loop and pipeline; a hatched bar (label marked †) does other work
    than PyTorch (:func:`differences`).

    Parameters
    ----------
    result : dict
        From :func:`run_peer`.
    path : Path
        The PNG to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    plan, rows = result["plan"], result["rows"]
    s = [result["summary"][row["label"]]["seconds"] for row in rows]
    routes = [(row["loop"], row["pipeline"]) for row in rows]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.6))
    bars = ax.barh(
        [row["label"] + (" †" if row["differences"] else "") for row in rows],
        [x["median"] for x in s],
        capsize=4,
        color=[ROUTE_COLORS[r] for r in routes],
        xerr=[[x["median"] - x["min"] for x in s], [x["max"] - x["median"] for x in s]],
    )
    for bar, row in zip(bars, rows):
        bar.set_hatch("//" if row["differences"] else "")
    legend = [Patch(color=ROUTE_COLORS[r], label=" / ".join(r)) for r in dict.fromkeys(routes)]
    ax.legend(handles=legend, fontsize=8, loc="best")
    ax.invert_yaxis()
    other = any(row["differences"] for row in rows)
    ax.set_xlabel(
        "seconds per epoch (median, range over rounds)"
        + ("\n† other network, batch size or epoch than PyTorch's" if other else "")
    )
    ax.set_title(
        f"Beside PyTorch eager ({plan['recipe']} LeNet), {plan['threads']} thread(s), "
        f"{plan['rounds']} alternating round(s)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
