"""A record as a picture: each loop's three curves per variant, mean and band over seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gluon_bn.records import Reproduction
from gluon_bn.report.markdown import LABELS, METRICS, summarize


def plot_curves(rep: Reproduction, path: Path) -> None:
    """Draw loss, train and test accuracy per epoch, ours (mean, band ± sd) and the document's points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recipe = rep.recipe
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    colors = {"scratch": "tab:blue", "gluon": "tab:orange", "plain": "tab:green"}
    metrics = rep.metrics
    for variant in rep.run.variants:
        summary = summarize(rep, variant)
        printed = recipe.printed_run(variant) if metrics == METRICS else None
        for ax, m in zip(axes, metrics[:3]):
            if summary:
                x = [row["epoch"] for row in summary]
                mean = np.array([row[m][0] for row in summary])
                sd = np.array([row[m][1] for row in summary])
                ax.plot(x, mean, "-o", ms=3, color=colors[variant], label=f"{variant} (ours)")
                ax.fill_between(x, mean - sd, mean + sd, color=colors[variant], alpha=0.2)
            if printed:
                ax.plot(
                    [e.epoch for e in printed.lines],
                    [getattr(e, m) for e in printed.lines],
                    "x",
                    ms=8,
                    color=colors[variant],
                    label=f"{variant} (document)",
                )
            ax.set_title(LABELS[m])
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"{recipe.name}, {recipe.describe_dataset(rep.run.dataset)} ({rep.loop} loop)", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
