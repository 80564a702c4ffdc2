"""The published results table: ``results/README.md`` generated from the JSON records under
``results/`` (``python -m gluon_bn.results [DIR]``)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

from gluon_bn.records import HELD_OUT_ACCURACY, Reproduction, dumps, load_result
from gluon_bn.report import (
    DIGITS,
    LABELS,
    METRICS,
    document_time_ratio,
    markdown_report,
    mean_sd,
    time_ratio,
)
from gluon_bn.report.gaps import (
    PAIR,
    TOLERANCE_SPREADS,
    Comparison,
    Outlier,
    compare,
    find_outliers,
    published_lines,
)
from gluon_bn.report.markdown import machine
from gluon_bn.runtime import describe as describe_runtime

# Why our numbers differ from a document's beyond the seed-to-seed spread. Written after
# reading the runs; the numbers themselves always come from the JSON.
EXPLANATIONS: Dict[str, List[str]] = {
    "*": [
        "Times: the documents ran on a GPU (d2l-zh on an unnamed CPU); ours ran on a 2-vCPU "
        "cloud machine, with other jobs sharing it part of the time, so seconds are only "
        "comparable within one table.",
        "Test accuracy with batch normalization after dense layers swings by several points "
        "from epoch to epoch (the moving statistics chase weights that are still moving fast "
        "at lr 1.0), so single-run test accuracies, the documents' included, carry that noise.",
    ],
    "d2l-en": [
        "The document starts moving_var at zeros; the scratch layer does too, Gluon's at ones. "
        "After a few hundred batches at momentum 0.9 the start no longer matters.",
        "Our last-epoch training loss is 0.010-0.015 below the document's in every seed, on "
        "both paths (faithful with d2l's pipeline, fast with the preloaded one). The cause is "
        "not established: the document's single GPU run (cuDNN arithmetic, its own d2l "
        "version's data loader) is one sample, and we cannot rerun it here.",
    ],
    "d2l-zh": [
        "As written, momentum 0.9 weighs the batch statistic, so the moving statistics are "
        "nearly the last batch's: test accuracy is noisier than with MXNet's form "
        "(`d2l-zh:upstream`). Its per-epoch times are a CPU run's, the only document whose "
        "seconds can be set beside ours, and ours are ten times smaller: the document's "
        "scratch path (faithful, DataLoader) is what `results/d2l-en.json` times at ~38 s.",
    ],
    "d2l-0.17": [
        "The document is PyTorch: its built-in layer updates the running variance with the "
        "unbiased batch variance and its biases start from PyTorch's uniform draws; ours use "
        "MXNet's nn.BatchNorm and zero biases. It printed only the last epoch.",
        "Its scratch run's test accuracy, an outlier against its own built-in run with the "
        "same training loss (see the notes under the table), reads as one low point of the "
        "swinging test accuracy (see above) rather than a difference between the layers.",
    ],
    "straight-dope": [
        "The document trained on MNIST digits; here MNIST cannot be downloaded, so the recipe "
        "ran on Fashion-MNIST, a harder set: accuracies are not comparable, only the code "
        "path is. Its printed loss is a running average of batch losses, ours the epoch mean.",
    ],
    "d2l-1.0": [
        "The document printed no numbers; the check is its claim that BN reaches plain LeNet's "
        "accuracy in fewer epochs, measured seed by seed in both loops.",
        "`d2l-1.0_bn-fast` is the book's own loop (d2l.Trainer in numpy mode, the book's "
        "d2l.FashionMNIST pipeline through gluon_bn.FashionMNIST, plain LeNet as in the book's "
        "LeNet section). Regenerated on 2026-12-01 with `--threads 1`: its losses and "
        "accuracies came out digit for digit the same as the earlier record's, made with MXNet's "
        "default engine, so neither the engine nor the load changes them. Its seconds are "
        "indicative: some five minutes of short benchmarks and tests ran beside its first seed, "
        "and this host's speed drifted by tens of percent within the hour. Scratch and Gluon "
        "agree to the fourth decimal in every epoch: the same initial weights (the BN layers "
        "draw nothing) and the same arithmetic.",
    ],
}


def load_results(results_dir: Path) -> List[Tuple[str, Reproduction]]:
    """Return (file stem, record) for every result JSON under `results_dir`, sorted by name."""
    return [(path.stem, load_result(path)) for path in sorted(Path(results_dir).glob("*.json"))]


def _cell(values: List[float], digits: int) -> str:
    mean, sd = mean_sd(values)
    return f"{mean:.{digits}f} ± {sd:.{digits}f}" if len(values) > 1 else f"{mean:.{digits}f}"


def last_epoch_comparisons(rep: Reproduction) -> Dict[str, Dict[str, Comparison]]:
    """Return, per variant that ran and per reported metric, its last epoch beside the published numbers.

    Parameters
    ----------
    rep : Reproduction
        A record; its last epoch's first three metrics are compared.

    Notes
    -----
    Published numbers (the document's and those of the recipe's other published runs) count
    only for train_ch5 records and only at the same epoch as our last one.
    """
    out = {}
    for variant in rep.run.variants:
        runs = rep.runs_of(variant)
        if not runs:
            continue
        last = [r.history[-1] for r in runs]
        train_ch5 = rep.metrics == METRICS
        lines = published_lines(rep.recipe, variant, last[0].epoch) if train_ch5 else {}
        out[variant] = compare(lines, {m: [getattr(h, m) for h in last] for m in rep.metrics[:3]})
    return out


def _verdict(
    comparisons: Dict[str, Comparison], outliers: List[Tuple[str, str]], variant: str
) -> str:
    gaps = [
        LABELS[m] + (" (the document's outlier)" if (variant, m) in outliers else "")
        for m, c in comparisons.items()
        if c.verdict == "gap"
    ]
    untested = [LABELS[m] for m, c in comparisons.items() if c.verdict == "untested"]
    parts = ([", ".join(gaps)] if gaps else []) + (
        [f"untested: {', '.join(untested)}"] if untested else []
    )
    return "; ".join(parts) or "—"


def final_rows(rep: Reproduction, stem: str) -> List[List[str]]:
    """Return one row per variant: the document's number at our last epoch, ours, tolerance, verdict.

    Parameters
    ----------
    rep : Reproduction
        The record.
    stem : str
        Its file stem, shown in the first column.
    """
    comparisons = last_epoch_comparisons(rep)
    outliers = [(o.odd, o.metric) for o in find_outliers(comparisons) if o.source == "document"]
    rows = []
    for variant, metrics in comparisons.items():
        last = [r.history[-1] for r in rep.runs_of(variant)]
        printed = any(c.verdict for c in metrics.values())
        rows.append(
            [
                f"`{stem}`",
                variant,
                str(last[0].epoch),
                " / ".join(f"{c.published['document']:.{DIGITS[m]}f}" for m, c in metrics.items())
                if printed
                else "—",
                " / ".join(_cell(list(c.ours), DIGITS[m]) for m, c in metrics.items()),
                _cell([h.seconds for h in last], 1),
                " / ".join(c.tolerance.describe(DIGITS[m]) for m, c in metrics.items())
                if printed
                else "—",
                _verdict(metrics, outliers, variant) if printed else "no printed numbers",
            ]
        )
    return rows


def _who(source: str) -> str:
    return "the document" if source == "document" else f"the `{source}` published run"


def outlier_note(stem: str, outlier: Outlier) -> str:
    """Return the note on one disagreeing published pair (see :mod:`gluon_bn.report.gaps`).

    Parameters
    ----------
    stem : str
        The record's file stem.
    outlier : Outlier
        What :func:`gluon_bn.report.gaps.find_outliers` found in it.
    """
    digits, label = DIGITS[outlier.metric], LABELS[outlier.metric]
    scratch, gluon = (f"{outlier.numbers[v]:.{digits}f}" for v in PAIR)
    text = (
        f"`{stem}`: {_who(outlier.source)} printed {label} {scratch} for the scratch layer "
        f"and {gluon} for the built-in one, {outlier.difference:.{digits}f} apart where two "
        f"runs of the same computation stay within {outlier.allowed:.{digits}f}"
    )
    if outlier.odd is None:
        return text + "; neither number alone lies outside our tolerance, so neither is named."
    return (
        text + f". Only the {outlier.odd} number lies outside its tolerance of our mean "
        f"({outlier.means[outlier.odd]:.{digits}f}): {_who(outlier.source)}'s "
        f"{outlier.odd} {label} is an outlier, "
        f"and its gap says more about that run than about ours."
    )


def epochs_to_reach_plain(rep: Reproduction) -> Dict[str, List[Optional[int]]]:
    """Per BN variant and seed: the first epoch whose held-out accuracy reaches plain LeNet's final one.

    Document 000's claim ("same accuracy in fewer epochs"), measured seed by seed: the
    target of seed s is plain LeNet's last-epoch accuracy with seed s (test accuracy in the
    train_ch5 loop, validation accuracy in d2l.Trainer's); None where a run never reaches it.
    """
    accuracy = HELD_OUT_ACCURACY[rep.loop]
    plain = {r.seed: r.history[-1] for r in rep.runs_of("plain")}
    out: Dict[str, List[Optional[int]]] = {}
    for variant in ("scratch", "gluon"):
        reached = [
            next(
                (
                    e.epoch
                    for e in r.history
                    if getattr(e, accuracy) >= getattr(plain[r.seed], accuracy)
                ),
                None,
            )
            for r in rep.runs_of(variant)
            if r.seed in plain
        ]
        if reached:
            out[variant] = reached
    return out


def claim_check(rep: Reproduction) -> Optional[str]:
    """For d2l-1.0: how many epochs each BN variant needs to reach plain LeNet's final accuracy."""
    plain = rep.runs_of("plain")
    if not plain:
        return None
    accuracy = HELD_OUT_ACCURACY[rep.loop]
    finals = [getattr(r.history[-1], accuracy) for r in plain]
    parts = [
        f"plain LeNet ends at {accuracy.replace('_', ' ')} {_cell(finals, 3)} after "
        f"{plain[0].history[-1].epoch} epochs ({rep.loop} loop)"
    ]
    for variant, reached in epochs_to_reach_plain(rep).items():
        hits = [e for e in reached if e is not None]
        text = (
            f"{variant} BN reaches it at epoch {_cell(hits, 1)}"
            if hits
            else f"{variant} BN does not reach it"
        )
        if hits and len(hits) < len(reached):
            text += f" ({len(reached) - len(hits)} of {len(reached)} seeds never do)"
        parts.append(text + (f" over {len(reached)} seeds" if len(reached) > 1 else ""))
    return "; ".join(parts) + "."


HOW_TO_READ = [
    "Loss / train acc / test acc of the last epoch (train_ch5 loop; for d2l.Trainer runs: "
    "train loss / val loss / val acc, the book's board): the document's printed line at that "
    "epoch beside ours (mean ± sample sd over seeds).",
    "",
    "*Spread* is the sample standard deviation (ddof 1) of a metric's last-epoch values, "
    "defined for two values or more: the seeds' spread over our seeds; the published spread "
    "over what the document and the other published runs of the same lesson (listed below) "
    f"printed for the same variant and epoch. *Tolerance* is {TOLERANCE_SPREADS:g} spreads, "
    "of whichever of the two is larger where known; the column names which (`seeds` or "
    "`published`), metric by metric. *Gap* names the metrics where the document's number lies "
    "farther than the tolerance from our mean. A metric without a tolerance (one seed, no "
    "other published run) is *untested*, never a gap: one seed's spread of 0 says nothing "
    "about how far runs scatter.",
    "",
    "*Outliers*: a document's scratch and built-in layers compute the same thing with the "
    "same set-up, so their two printed numbers are two runs of one computation. Where they "
    "differ by more than two runs do, sqrt(t1² + t2²) with t the two rows' tolerances, the "
    "pair disagrees; if exactly one of the two lies outside its tolerance of our mean, the "
    "notes under the table name it the outlier, and its gap is marked so.",
]


def other_published(reps: Iterable[Reproduction]) -> List[str]:
    """Return the README lines listing the other published runs of the records' recipes, with sources.

    Parameters
    ----------
    reps : iterable of Reproduction
        The records; each recipe is listed once.
    """
    recipes = {rep.recipe.name.split(":")[0]: rep.recipe for rep in reps}
    lines = []
    for name, recipe in sorted(recipes.items()):
        for key, other in recipe.published_elsewhere.items():
            printed = "; ".join(
                f"{run.variant}, epoch {line.epoch}: "
                + " / ".join(f"{getattr(line, m):.{DIGITS[m]}f}" for m in METRICS[:3])
                for run in other.runs
                for line in run.lines
            )
            lines.append(f"- `{name}`, `{key}`: {printed}. Source: {other.source}.")
    return lines or ["None recorded."]


# The head of the table of :func:`final_rows`.
FINAL_HEADER = (
    "| run | variant | epoch | document | ours | s/epoch (ours) | tolerance | gap |",
    "|---|---|---|---|---|---|---|---|",
)


def render_readme(results_dir: Path) -> str:
    """Return ``results/README.md``: every recipe's final numbers beside the document's, and why they differ."""
    results = load_results(results_dir)
    lines = [
        "# Results",
        "",
        "Generated by `python -m gluon_bn.results results/` from the JSON files in this "
        "folder; do not edit by hand. Per-epoch tables and curves: the `.md` and `.png` "
        "file of each run. The records come from `scripts/reproduce_all.py` "
        "(`--dry-run` lists its commands).",
        "",
        *HOW_TO_READ,
        "",
        *FINAL_HEADER,
    ]
    for stem, rep in results:
        lines += ["| " + " | ".join(row) + " |" for row in final_rows(rep, stem)]
    notes = [
        outlier_note(stem, o)
        for stem, rep in results
        for o in find_outliers(last_epoch_comparisons(rep))
    ]
    lines += ["", "Published pairs that disagree (the outlier rule above):", ""]
    lines += [f"- {note}" for note in notes] or ["- none."]
    lines += ["", "## Other published runs", ""] + other_published(rep for _, rep in results)
    lines += ["", "## Runs", ""]
    for stem, rep in results:
        lines += run_lines(stem, rep)
    lines += ["", "## Why the numbers differ", ""]
    for key in ["*"] + sorted({rep.recipe.name.split(":")[0] for _, rep in results}):
        for text in EXPLANATIONS.get(key, []):
            lines.append(f"- {'' if key == '*' else f'`{key}`: '}{text}")
    return "\n".join(lines) + "\n"


def rerun_command(rep: Reproduction) -> str:
    """Return the shell command that makes record `rep` again: its run, threads and ISA pinned."""
    env = rep.environment
    _, pin = record_isa(env)
    return shlex.join(["gluon-bn", *rep.run.command(env["omp_threads"]), *pin])


def run_lines(stem: str, rep: Reproduction) -> List[str]:
    """Return the Markdown list item that describes record `stem`: set-up, machine, command."""
    run, env = rep.run, rep.environment
    ratio = time_ratio(rep)
    doc_ratio = document_time_ratio(rep.recipe)
    lines = [
        f"- `{stem}`: {run.dataset}, seeds {list(run.seeds)}, "
        f"{run.epochs} epochs, loop `{run.loop}`, pipeline `{run.pipeline}`, "
        f"scratch BN `{run.bn_impl}`, hybridize `{run.hybridize}`, "
        f"{env['device']}, {machine(env)}"
        + (f"; scratch/Gluon time {ratio:.2f}x" if ratio else "")
        + (f" (document {doc_ratio:.2f}x)" if doc_ratio else "")
        + "."
    ]
    isa, _ = record_isa(env)
    lines.append(
        f"  Made with {env['omp_threads']} OpenMP thread(s) "
        f"({describe_runtime(env.get('threads') or {})}), oneDNN ISA {isa}; "
        f"to run it again: `{rerun_command(rep)}`"
    )
    claim = claim_check(rep)
    if claim:
        lines.append(f"  Document 000's claim: {claim}")
    return lines


def record_isa(env: dict) -> tuple:
    """Return the instruction set a record's oneDNN ran (in words) and the ``--isa`` that repeats it.

    Records made before ``onednn_isa`` was kept name their CPU's vector extensions instead;
    without any AVX-512 extension oneDNN cannot have gone past AVX2, which the words say
    is inferred.
    """
    from gluon_bn.runtime.machine import ISAS

    isa = env.get("onednn_isa")
    if not isa:
        flags = env.get("cpu_vector_extensions") or []
        if "avx2" not in flags or any(f.startswith("avx512") for f in flags):
            return "not recorded", []
        isa = ISAS["avx2"][1]
        words = f"{isa} (inferred from the CPU's flags: recorded before onednn_isa)"
    else:
        words = isa
    pin = next((["--isa", name] for name, (_, said) in ISAS.items() if said == isa), [])
    return words, pin


def regenerate(results_dir: Path) -> None:
    """Rewrite every record in the current schema, its Markdown, and the README, from the JSON files."""
    for stem, rep in load_results(results_dir):
        (Path(results_dir) / f"{stem}.json").write_text(dumps(rep))
        (Path(results_dir) / f"{stem}.md").write_text(markdown_report(rep) + "\n")
    (Path(results_dir) / "README.md").write_text(render_readme(results_dir))


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m gluon_bn.results [DIR]``: regenerate DIR's records, tables and README; exit status."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m gluon_bn.results",
        description="Rewrite every result record under DIR in the current schema, its "
        "Markdown table, and DIR/README.md, from the JSON files there.",
    )
    parser.add_argument(
        "results_dir",
        nargs="?",
        default="results",
        type=Path,
        help="folder of result JSON files (default: results)",
    )
    args = parser.parse_args(argv)
    if not args.results_dir.is_dir():
        parser.error(f"{args.results_dir} is not a folder of result records")
    regenerate(args.results_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
