"""Reporting: a run's environment, its record as Markdown and as a plot, the results table.

:func:`write_outputs` writes a record's three files; the JSON first, so that a failing
figure never takes the numbers with it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict

from gluon_bn.records import Reproduction, dumps
from gluon_bn.report.markdown import (DIGITS, LABELS, METRICS, document_time_ratio,
                                      markdown_report, mean_sd, summarize, time_ratio)
from gluon_bn.report.plots import plot_curves

__all__ = ["DIGITS", "LABELS", "METRICS", "document_time_ratio", "environment",
           "markdown_report", "mean_sd", "plot_curves", "summarize", "time_ratio",
           "write_outputs"]


def environment(ctx=None):
    """Return versions, device and thread settings (loads MXNet; see :mod:`.environment`)."""
    from gluon_bn.report.environment import environment as describe
    return describe(ctx)


def write_outputs(rep: Reproduction, out_dir: Path, stem: str) -> Dict[str, Path]:
    """Write ``STEM.json``, ``STEM.md`` and ``STEM.png`` under `out_dir`; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {ext: out_dir / f"{stem}.{ext}" for ext in ("json", "md", "png")}
    paths["json"].write_text(dumps(rep))
    paths["md"].write_text(markdown_report(rep) + "\n")
    plot_curves(rep, paths["png"])
    return paths
