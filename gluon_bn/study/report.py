"""A study record as files: ``NAME.md``, the figures, and the summary ``README.md``. No MXNet.

Everything here reads a :class:`gluon_bn.study.record.StudyRecord` only, so the reports
and the summary can be regenerated from the JSON records at any time
(``gluon-bn study --regenerate --out results/studies``, which also re-judges every record
from its runs with the current criteria). Times are summarised by their median and range,
and a run slower than :data:`OUTLIER_FACTOR` times the median of its configuration is
flagged with the environment the record kept.
"""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Dict, List, Sequence

from gluon_bn.report import WriteError, os_error_cause, write_atomically
from gluon_bn.study import criteria
from gluon_bn.study.figures import forest, numbers, plot
from gluon_bn.study.plans import ACCURACY_KEYS, DISPLAYS, LABELS, TIME_KEYS, record_of
from gluon_bn.study.record import StudyRecord, dumps, load_study_record
from gluon_bn.study.registry import Settings, get_study, percent

SUMMARY_HEADER = "| study | claim | source | measured | verdict |"
OUTLIER_FACTOR = 3.0
BELOW = "below the deciding scale"

__all__ = ["numbers", "cell", "markdown", "outliers", "deciding_estimate", "measured",
           "summary", "write_study", "write_summary", "load_records", "regenerate", "rejudge"]


def cell(values: Sequence[float], key: str) -> str:
    """Return ``mean ± sd`` of `values`, or for a time ``median (min–max)`` ("" when empty)."""
    if not values:
        return ""
    digits = 3 if key in ACCURACY_KEYS or key in ("gap", "python_share") else 2
    if key in TIME_KEYS:
        middle = statistics.median(values)
        return (f"{middle:.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"
                if len(values) > 1 else f"{middle:.{digits}f}")
    span = criteria.interval(values)
    return span.text(digits) if span.n > 1 else f"{span.mean:.{digits}f}"


def outliers(record: StudyRecord) -> List[Dict[str, object]]:
    """Return every run whose time is above :data:`OUTLIER_FACTOR` × its configuration's median."""
    found = []
    for config in record.configurations:
        for key in TIME_KEYS:
            values = [(run.get("seed"), run.get(key)) for run in config.runs
                      if isinstance(run.get(key), (int, float))]
            if len(values) < 3:
                continue
            middle = statistics.median(v for _, v in values)
            found += [{"configuration": config.name, "seed": seed, "key": key, "value": v,
                       "median": middle} for seed, v in values if v > OUTLIER_FACTOR * middle]
    return found


def deciding_estimate(record: StudyRecord) -> float:
    """Return the seconds, serially, of the record's runs rescaled to the deciding scale.

    Per configuration: the median training seconds of its runs, times the deciding seeds,
    times the ratios of data fraction and epochs (training time is about proportional to
    both). 0 when the runs record no training time (compiled-speed times itself).
    """
    deciding, options = record.deciding, record.options
    if not deciding:
        return 0.0
    scale = (deciding["fraction"] / options["fraction"]) * (deciding["epochs"] / options["epochs"])
    total = 0.0
    for config in record.configurations:
        times = [run["train_seconds"] for run in config.runs
                 if isinstance(run.get("train_seconds"), (int, float))]
        if times:
            total += statistics.median(times) * deciding["seeds"] * scale
    return total


def _settings_text(settings: Dict[str, object]) -> str:
    """``key value, ...``; a nested mapping (the noise) as ``key (k v, ...)``."""
    return ", ".join(f"{k} ({_settings_text(v)})" if isinstance(v, dict) else f"{k} {v}"
                     for k, v in settings.items()) or "—"


def _below(record: StudyRecord) -> str:
    short = record.deciding.get("shortfalls") if record.deciding else None
    return f" ({BELOW}: {', '.join(short)})" if short else ""


def _comparison_rows(record: StudyRecord) -> List[str]:
    if not record.comparisons:
        return []
    head = ["comparison", "a − b", "claim", "margin", "difference", "interval", "method",
            "effect", "TOST p (±margin)", "outcome"]
    lines = ["**Comparisons** (each decided from its interval, stated before the runs; "
             "shown rows do not decide):", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in record.comparisons:
        digits = 2 if abs(c["margin"]) >= 0.05 else 3
        effect = f"{c['effect_name']} {c['effect']:.2g}" if c.get("effect") is not None else "—"
        lines.append("| " + " | ".join([
            c["name"] + (" (shown)" if c.get("role") == "reference" else ""), c["label"],
            c["claim"], f"±{c['margin']:.3g}", f"{c['difference']:+.{digits}f}",
            f"{c['confidence']:.0%}: {c['lower']:+.{digits}f} to {c['upper']:+.{digits}f}",
            c["method"], effect, f"{c['tost_p']:.2g}", f"{c['outcome']} ({c['reason']})"]) + " |")
    return lines + [""]


def markdown(record: StudyRecord) -> str:
    """Return ``NAME.md``: the scale, claim, criterion, verdict, comparisons, table, flags."""
    options, env = record.options, record.environment
    display = DISPLAYS[record.study]
    metrics = [m for m in display.metrics
               if any(numbers(c, m) for c in record.configurations)]
    lines = [record.scale, "", f"# Study `{record.study}`", "",
             f"**Claim** ({record.source}): {record.claim}.", "",
             f"**Measurement.** {record.measurement}.", "",
             f"**Criterion.** {record.criterion}.", "",
             f"**Verdict**{_below(record)}. {record.verdict}", ""]
    if record.verdicts:
        lines += [f"- `{name}`: {verdict}" for name, verdict in record.verdicts.items()] + [""]
    lines += _comparison_rows(record)
    params = ", ".join(f"{k} {v}" for k, v in dict(options.get("params", {})).items())
    lines += [f"Settings: {options['seeds']} seed(s), {options['epochs']} epoch(s), "
              f"fraction {options['fraction']} of the training images, test fraction "
              f"{options['test_fraction']}, batch {options['batch_size']}, lr {options['lr']}"
              + (f", grid {options['grid']}" if options.get("grid") else "")
              + (f", {params}" if params else "")
              + (" (--quick)" if options.get("quick") else "") + ".", "",
              "Numbers are mean ± sample standard deviation over the seeds, times median "
              "(range); a diverged run's accuracy counts at chance (0.1). A run failed to "
              f"train when its loss became non-finite, its final loss is above ln 10 = "
              f"{criteria.CHANCE_LOSS:.3f} (uniform guessing) or its final accuracy is at most "
              f"{criteria.LEARNED:g}.", ""]
    failed: Dict[str, int] = {}
    for f in record.failures:
        failed[f["configuration"]] = failed.get(f["configuration"], 0) + 1
    head = (["configuration", "settings"] + [LABELS.get(m, m) for m in metrics]
            + ["runs", "failed to train"])
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for config in record.configurations:
        lines.append("| " + " | ".join(
            [config.name, _settings_text(config.settings)]
            + [cell(numbers(config, m), m) for m in metrics]
            + [str(len(config.runs)), str(failed.get(config.name, ""))]) + " |")
    lines.append("")
    if record.failures:
        lines += ["**Runs that failed to train:** " + "; ".join(
            f"{f['configuration']} seed {f['seed']}: {f['why']}" for f in record.failures) + ".", ""]
    where = (f"MXNet {env.get('mxnet')}, {env.get('cpu_count')} CPU(s) "
             f"({env.get('cpu_model') or env.get('processor')}), device {env.get('device')}, "
             f"{env.get('runtime')}"
             + (f"; resumed with {'; '.join(env['resumed_with'])}" if env.get("resumed_with")
                else ""))
    slow = outliers(record)
    if slow:
        lines += [f"**Timing outliers** (above {OUTLIER_FACTOR:g}× the median of their "
                  f"configuration; the record keeps one environment for all its runs: {where}): "
                  + "; ".join(f"{o['configuration']} seed {o['seed']}: {LABELS.get(o['key'], o['key'])} "
                              f"{o['value']:.1f}, median {o['median']:.1f}" for o in slow)
                  + ". Time summaries use medians, so they are not moved by it.", ""]
    if record.deciding:
        d = record.deciding
        hours = deciding_estimate(record) / 3600
        lines += [f"**Deciding scale:** fraction {d['fraction']:g}, {d['epochs']} epochs, "
                  f"{d['seeds']} seeds ({d['why']}). "
                  + (f"This record is {BELOW} ({', '.join(d['shortfalls'])}); `{d['command']}` "
                     f"runs it there"
                     + (f", about {hours:.1f} h of training on one such machine, serially "
                        f"(from the committed runs' median seconds)" if hours else "") + "."
                     if d["shortfalls"] else "This record is at or above it."), ""]
    o = record.options
    made = (f"gluon-bn study {record.study} --quick --out DIR" if o.get("quick") else
            get_study(record.study).command(o["seeds"], o["epochs"], o["fraction"],
                                            batch_size=o.get("batch_size"), grid=o.get("grid"),
                                            threads=env.get("omp_threads"), out="DIR"))
    lines += [f"Ran on {where}. Made again by `{made}`.", "",
              f"Figures: [{record.study}.png]({record.study}.png) (the numbers), "
              f"[{record.study}-intervals.png]({record.study}-intervals.png) (the comparisons).", ""]
    return "\n".join(lines)


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
             "Generated by `gluon-bn study` from the JSON records in this folder (re-judge and "
             "regenerate with `gluon-bn study --regenerate --out DIR`); do not edit by hand. "
             "Each verdict is computed by the study's criterion from paired differences over "
             "the shared seeds: 95 % t intervals against a margin stated before the runs "
             "(each report lists them; its `-intervals.png` draws them). A conjunction's "
             "verdict names its parts.", "",
             SUMMARY_HEADER, "|---|---|---|---|---|"]
    for record in records:
        row = [record.study, record.claim, record.source, measured(record),
               record.verdict + _below(record)]
        lines.append("| " + " | ".join(text.replace("|", "/") for text in row) + " |")
    return "\n".join(lines) + "\n"


def _files(record: StudyRecord, out_dir: Path) -> Dict[str, tuple]:
    """The record's files, JSON first: name -> (path, writer)."""
    stem = Path(out_dir) / record.study
    return {"json": (stem.with_suffix(".json"), lambda p: p.write_text(dumps(record))),
            "md": (stem.with_suffix(".md"), lambda p: p.write_text(markdown(record) + "\n")),
            "png": (stem.with_suffix(".png"), lambda p: plot(record, p)),
            "intervals": (stem.with_name(f"{record.study}-intervals.png"),
                          lambda p: forest(record, p))}


def write_study(record: StudyRecord, out_dir: Path) -> Dict[str, Path]:
    """Write ``NAME.json``, ``NAME.md``, both figures (each atomically, JSON first) and the summary.

    Raises
    ------
    WriteError
        Naming the file that could not be written and the cause.
    """
    paths = {}
    for name, (path, write) in _files(record, out_dir).items():
        _write(path, write)
        paths[name] = path
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


def rejudge(record: StudyRecord) -> StudyRecord:
    """Return `record` judged again from its runs by the current criteria (the runs unchanged)."""
    return record_of(get_study(record.study), Settings.from_dict(record.options), record.options,
                     record.environment, record.configurations)


def regenerate(out_dir: Path) -> List[StudyRecord]:
    """Re-judge every record in `out_dir` from its runs and rewrite its files and the summary.

    Nothing is trained: each record's configurations and runs are kept as they are; its
    verdicts, comparisons, failures, criterion text and deciding scale are recomputed.
    """
    records = [rejudge(record) for record in load_records(out_dir)]
    for record in records:
        for path, write in _files(record, out_dir).values():
            _write(path, write)
    write_summary(out_dir)
    return records
