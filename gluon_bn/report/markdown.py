"""A record as Markdown: per variant and epoch, the document's numbers beside ours.

This module imports no MXNet: tables can be regenerated from the JSON anywhere.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

from gluon_bn.records import LOOP_METRICS, Reproduction
from gluon_bn.runtime import describe as describe_runtime

METRICS = LOOP_METRICS["train_ch5"]
LABELS = {
    "loss": "loss",
    "train_acc": "train acc",
    "test_acc": "test acc",
    "seconds": "sec/epoch",
    "train_loss": "train loss",
    "val_loss": "val loss",
    "val_acc": "val acc",
}
DIGITS = {
    "loss": 4,
    "train_acc": 3,
    "test_acc": 3,
    "seconds": 1,
    "train_loss": 4,
    "val_loss": 4,
    "val_acc": 3,
}


def mean_sd(values: Sequence[float]) -> tuple:
    """Return (mean, sample standard deviation); the deviation is 0 for a single value."""
    arr = np.asarray(values, dtype="float64")
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def summarize(rep: Reproduction, variant: str) -> List[Dict[str, tuple]]:
    """Return, per epoch, (mean, sd) of every recorded metric over the seeds that ran `variant`."""
    histories = [run.history for run in rep.runs_of(variant)]
    if not histories:
        return []
    epochs = min(len(h) for h in histories)
    names = [k for k in histories[0][0].as_dict() if k != "epoch"] if epochs else []
    return [
        {
            "epoch": histories[0][i].epoch,
            **{m: mean_sd([getattr(h[i], m) for h in histories]) for m in names},
        }
        for i in range(epochs)
    ]


def cpu_name(env: Dict[str, object]) -> str:
    """Return the CPU a record's environment names: its model, else the processor string.

    Parameters
    ----------
    env : dict
        A record's ``environment``; records older than the CPU model name the processor only.
    """
    return str(env.get("cpu_model") or env.get("processor") or "an unnamed CPU")


def machine(env: Dict[str, object]) -> str:
    """Return where a record ran, from its environment: MXNet version, CPU count and model.

    Parameters
    ----------
    env : dict
        A record's ``environment`` (:func:`gluon_bn.report.provenance`); records older
        than the CPU model name the processor instead.
    """
    return f"MXNet {env['mxnet']} on {env['cpu_count']} CPU(s) ({cpu_name(env)})"


def _fmt(value: Optional[float], digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _fmt_ms(ms: tuple, digits: int, n: int) -> str:
    mean, sd = ms
    return f"{mean:.{digits}f}" if n < 2 else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def markdown_report(rep: Reproduction) -> str:
    """Return the Markdown comparison of a record: per variant and epoch, theirs beside ours.

    Everything comes from the record (what :func:`gluon_bn.run.reproduce.reproduce` wrote, or
    :func:`gluon_bn.records.load_result` read), so the table can be regenerated at any time.
    """
    recipe, run, env = rep.recipe, rep.run, rep.environment
    lines = [
        f"# {recipe.name}: {recipe.title}",
        "",
        f"Source: `{recipe.source_file}`, {recipe.section}.",
        "",
        f"Ours: {recipe.describe_dataset(run.dataset)}, device {env['device']}, loop `{run.loop}`, "
        f"pipeline `{run.pipeline}`, BN implementation `{run.bn_impl}`, "
        f"hybridize `{run.hybridize}`, "
        f"{run.epochs} epoch(s), lr {run.lr}, batch {run.batch_size}, "
        f"seeds {list(run.seeds)}"
        + (f", first {run.limit} training examples" if run.limit else "")
        + f"; {machine(env)}, "
        f"{describe_runtime(env.get('threads') or {})}.",
        "",
    ]
    if len(run.seeds) > 1:
        lines += ["Our numbers are mean ± sample standard deviation over the seeds.", ""]
    metrics = rep.metrics
    for variant in run.variants:
        summary = summarize(rep, variant)
        printed = recipe.printed_run(variant) if metrics == METRICS else None
        theirs = {line.epoch: line for line in printed.lines} if printed else {}
        n = len(rep.runs_of(variant))
        lines += [f"## {variant}", ""]
        if printed:
            lines += [
                f"The document ran on {printed.device}."
                + (f" {printed.note}." if printed.note else ""),
                "",
            ]
        else:
            lines += ["The document printed no numbers for this variant.", ""]
        if metrics == METRICS:
            lines += _published_elsewhere(recipe, variant)
        head = ["epoch"]
        for m in metrics:
            head += ([f"{LABELS[m]} (doc)"] if theirs else []) + [f"{LABELS[m]} (ours)"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in summary:
            cells = [str(row["epoch"])]
            doc = theirs.get(row["epoch"])
            for m in metrics:
                if theirs:
                    cells.append(_fmt(getattr(doc, m) if doc else None, DIGITS[m]))
                cells.append(_fmt_ms(row[m], DIGITS[m], n))
            lines.append("| " + " | ".join(cells) + " |")
        if summary and "examples_per_sec" in summary[-1]:
            eps = summary[-1]["examples_per_sec"]
            doc_eps = (
                f" (document: {printed.examples_per_sec:.1f})"
                if printed and printed.examples_per_sec
                else ""
            )
            lines += [
                "",
                f"Training throughput, last epoch: {_fmt_ms(eps, 0, n)} examples/sec{doc_eps}.",
            ]
        lines.append("")
    ratio = time_ratio(rep)
    if ratio is not None:
        doc_ratio = document_time_ratio(recipe)
        lines += [
            f"Scratch/Gluon time per epoch: {ratio:.2f}x"
            + (f" (document: {doc_ratio:.2f}x)." if doc_ratio else "."),
            "",
        ]
    with_bn = [r for r in rep.runs if r.first_bn_gamma]
    if recipe.printed_gamma_beta and with_bn:
        first = with_bn[0]
        lines += [
            f"First BN layer after training ({first.variant}, seed {first.seed}):",
            "",
            "| | document | ours |",
            "|---|---|---|",
            f"| gamma | {_vec(recipe.printed_gamma_beta[0])} | {_vec(first.first_bn_gamma)} |",
            f"| beta | {_vec(recipe.printed_gamma_beta[1])} | {_vec(first.first_bn_beta)} |",
            "",
        ]
    return "\n".join(lines)


def _published_elsewhere(recipe, variant: str) -> List[str]:
    """Return lines naming what other published runs of the lesson printed for `variant` (see results/README.md)."""
    lines = []
    for name, other in recipe.published_elsewhere.items():
        for line in (line for run in other.runs if run.variant == variant for line in run.lines):
            numbers = ", ".join(
                f"{LABELS[m]} {getattr(line, m):.{DIGITS[m]}f}" for m in METRICS[:3]
            )
            lines += [
                f"The `{name}` published run printed, epoch {line.epoch}: {numbers} "
                f"(source in results/README.md).",
                "",
            ]
    return lines


def _vec(values: Sequence[float]) -> str:
    return " ".join(f"{v:.3f}" for v in values)


def time_ratio(rep: Reproduction) -> Optional[float]:
    """Return our mean seconds per epoch, scratch over Gluon, when both variants ran."""
    means = {}
    for variant in ("scratch", "gluon"):
        summary = summarize(rep, variant)
        if summary:
            means[variant] = float(np.mean([row["seconds"][0] for row in summary]))
    return means["scratch"] / means["gluon"] if len(means) == 2 else None


def document_time_ratio(recipe) -> Optional[float]:
    """Return the document's scratch/Gluon time ratio (from seconds, or from examples/sec)."""
    runs = {v: recipe.printed_run(v) for v in ("scratch", "gluon")}
    if not all(runs.values()):
        return None
    secs = [[line.seconds for line in runs[v].lines if line.seconds] for v in ("scratch", "gluon")]
    if all(secs):
        return float(np.mean(secs[0]) / np.mean(secs[1]))
    eps = [runs[v].examples_per_sec for v in ("scratch", "gluon")]
    return eps[1] / eps[0] if all(eps) else None
