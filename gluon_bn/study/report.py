"""A study record as files: ``NAME.md``, ``NAME.png``, and the summary ``README.md``. No MXNet.

Everything here reads a :class:`gluon_bn.study.record.StudyRecord` only, so the reports
and the summary can be regenerated from the JSON records at any time
(``gluon-bn study --regenerate --out results/studies``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence

from gluon_bn.report import WriteError, os_error_cause, write_atomically
from gluon_bn.study import criteria
from gluon_bn.study.plans import ACCURACY_KEYS, DISPLAYS, LABELS
from gluon_bn.study.record import Configuration, StudyRecord, dumps, load_study_record
from gluon_bn.study.registry import get_study, percent

SUMMARY_HEADER = "| study | claim | source | measured | verdict |"


def numbers(config: Configuration, key: str) -> List[float]:
    """Return `key` over the seeds; accuracies of diverged runs at chance, other gaps left out."""
    values = config.values(key)
    if key in ACCURACY_KEYS and any(run.get("diverged") for run in config.runs):
        return criteria.accuracies(values)
    return [float(v) for v in values if v is not None]


def cell(values: Sequence[float], key: str) -> str:
    """Return ``mean ± sd`` of `values` with the precision `key` needs ("" when empty)."""
    if not values:
        return ""
    digits = 3 if key in ACCURACY_KEYS or key in ("gap", "python_share") else 2
    span = criteria.interval(values)
    return span.text(digits) if span.n > 1 else f"{span.mean:.{digits}f}"


def _settings_text(settings: Dict[str, object]) -> str:
    """``key value, ...``; a nested mapping (the noise) as ``key (k v, ...)``."""
    return ", ".join(f"{k} ({_settings_text(v)})" if isinstance(v, dict) else f"{k} {v}"
                     for k, v in settings.items()) or "—"


def markdown(record: StudyRecord) -> str:
    """Return ``NAME.md``: the scale first, then claim, measurement, criterion, table and verdict."""
    options, env = record.options, record.environment
    display = DISPLAYS[record.study]
    metrics = [m for m in display.metrics
               if any(numbers(c, m) for c in record.configurations)]
    lines = [record.scale, "", f"# Study `{record.study}`", "",
             f"**Claim** ({record.source}): {record.claim}.", "",
             f"**Measurement.** {record.measurement}.", "",
             f"**Criterion.** {record.criterion}.", "",
             f"**Verdict.** {record.verdict}", ""]
    if record.verdicts:
        lines += [f"- `{name}`: {verdict}" for name, verdict in record.verdicts.items()] + [""]
    params = ", ".join(f"{k} {v}" for k, v in dict(options.get("params", {})).items())
    lines += [f"Settings: {options['seeds']} seed(s), {options['epochs']} epoch(s), "
              f"fraction {options['fraction']} of the training images, test fraction "
              f"{options['test_fraction']}, batch {options['batch_size']}, lr {options['lr']}"
              + (f", grid {options['grid']}" if options.get("grid") else "")
              + (f", {params}" if params else "")
              + (" (--quick)" if options.get("quick") else "") + ".", "",
              "Numbers are mean ± sample standard deviation over the seeds; a diverged run's "
              "accuracy counts at chance (0.1).", ""]
    head = ["configuration", "settings"] + [LABELS.get(m, m) for m in metrics] + ["runs", "diverged"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for config in record.configurations:
        diverged = sum(bool(run.get("diverged")) for run in config.runs)
        lines.append("| " + " | ".join(
            [config.name, _settings_text(config.settings)]
            + [cell(numbers(config, m), m) for m in metrics]
            + [str(len(config.runs)), str(diverged) if diverged else ""]) + " |")
    lines += ["", f"Ran on MXNet {env.get('mxnet')}, {env.get('cpu_count')} CPU(s) "
              f"({env.get('cpu_model') or env.get('processor')}), device {env.get('device')}, "
              f"{env.get('runtime')}"
              + (f"; resumed with {'; '.join(env['resumed_with'])}" if env.get("resumed_with")
                 else "") + ".", ""]
    return "\n".join(lines)


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
                 f"({record.options['seeds']} seed(s), ± sd)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _group(configs: Sequence[Configuration], key: Optional[str]) -> Dict[str, List[Configuration]]:
    """Configurations by the value of setting `key` (one group of all when None), in order."""
    groups: Dict[str, List[Configuration]] = {}
    for config in configs:
        groups.setdefault(str(config.settings.get(key, "")) if key else "", []).append(config)
    return groups


def measured(record: StudyRecord) -> str:
    """Return the summary's "measured" cell: how many runs, at what scale."""
    options = record.options
    runs = sum(len(c.runs) for c in record.configurations)
    scale = (f"{options['epochs']} epoch(s), {percent(options['fraction'])} of the training images"
             if get_study(record.study).document_epochs else
             f"{percent(options['fraction'])} of an epoch timed per path")
    return (f"{len(record.configurations)} configurations, {runs} runs "
            f"({options['seeds']} seeds), {scale}; [report]({record.study}.md)")


def summary(records: Sequence[StudyRecord]) -> str:
    """Return ``README.md`` of a studies folder: one row per study, from its record."""
    lines = ["# Studies: the documents' claims, measured", "",
             "Generated by `gluon-bn study` from the JSON records in this folder (regenerate "
             "with `gluon-bn study --regenerate --out DIR`); do not edit by hand. Each verdict "
             "is computed from the numbers by the study's criterion.", "",
             SUMMARY_HEADER, "|---|---|---|---|---|"]
    for record in records:
        row = [record.study, record.claim, record.source, measured(record), record.verdict]
        lines.append("| " + " | ".join(text.replace("|", "/") for text in row) + " |")
    return "\n".join(lines) + "\n"


def write_study(record: StudyRecord, out_dir: Path) -> Dict[str, Path]:
    """Write ``NAME.json``, ``NAME.md``, ``NAME.png`` (each atomically, JSON first) and the summary.

    Raises
    ------
    WriteError
        Naming the file that could not be written and the cause.
    """
    out_dir = Path(out_dir)
    paths = {ext: out_dir / f"{record.study}.{ext}" for ext in ("json", "md", "png")}
    writers = {"json": lambda p: p.write_text(dumps(record)),
               "md": lambda p: p.write_text(markdown(record) + "\n"),
               "png": lambda p: plot(record, p)}
    for ext, write in writers.items():
        _write(paths[ext], write)
    paths["summary"] = write_summary(out_dir)
    return paths


def load_records(out_dir: Path) -> List[StudyRecord]:
    """Return every study record in `out_dir`, in the registry's order."""
    from gluon_bn.study.registry import STUDIES
    order = list(STUDIES)
    found = [load_study_record(p) for p in sorted(Path(out_dir).glob("*.json"))
             if p.stem in STUDIES]
    return sorted(found, key=lambda r: order.index(r.study))


def write_summary(out_dir: Path) -> Path:
    """Rewrite ``README.md`` of `out_dir` from the study records there; return its path."""
    path = Path(out_dir) / "README.md"
    text = summary(load_records(out_dir))
    _write(path, lambda p: p.write_text(text))
    return path


def _write(path: Path, write) -> None:
    try:
        write_atomically(path, write)
    except OSError as err:
        raise WriteError(f"could not write {path}: {os_error_cause(err)}; the runs finished so "
                         f"far are kept in the progress file. Free space and run again.") from None


def regenerate(out_dir: Path) -> None:
    """Rewrite every study's Markdown and figure, and the summary, from the JSON records."""
    for record in load_records(out_dir):
        _write(Path(out_dir) / f"{record.study}.md", lambda p: p.write_text(markdown(record) + "\n"))
        _write(Path(out_dir) / f"{record.study}.png", lambda p: plot(record, p))
    write_summary(out_dir)
