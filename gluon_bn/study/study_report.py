"""A study record as files: ``NAME.md``, the figures, and the summary ``README.md``. No MXNet.

Everything here reads a :class:`gluon_bn.study.study_record.StudyRecord` only, so the reports
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

from gluon_bn.report import WriteError, cpu_name, os_error_cause, write_atomically
from gluon_bn.study import judging
from gluon_bn.study.comparison import MIN_EFFECT_N, effect_shown, level_text
from gluon_bn.study.displays import ACCURACY_KEYS, DISPLAYS, LABELS, TIME_KEYS
from gluon_bn.study.figures import forest, numbers, plot
from gluon_bn.study.judges import FAILURE, FLAG_COLUMNS
from gluon_bn.study.registry import get_study
from gluon_bn.study.stats import FAMILY_LEVEL, p_text
from gluon_bn.study.study_record import StudyRecord, dumps
from gluon_bn.study.study_tables import study_tables

OUTLIER_FACTOR = 3.0
BELOW = "below the deciding scale"

__all__ = [
    "numbers",
    "cell",
    "markdown",
    "sections",
    "SECTIONS",
    "outliers",
    "deciding_estimate",
    "stated_note",
    "write_study",
]


def cell(values: Sequence[float], key: str) -> str:
    """Return ``mean ± sd`` of `values`, or for a time ``median (min–max)`` ("" when empty)."""
    if not values:
        return ""
    digits = 3 if key in ACCURACY_KEYS or key in ("gap", "python_share") else 2
    if key in TIME_KEYS:
        middle = statistics.median(values)
        return (
            f"{middle:.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"
            if len(values) > 1
            else f"{middle:.{digits}f}"
        )
    span = judging.interval(values)
    return span.text(digits) if span.n > 1 else f"{span.mean:.{digits}f}"


def outliers(record: StudyRecord) -> List[Dict[str, object]]:
    """Return every run whose time is above :data:`OUTLIER_FACTOR` × its configuration's median."""
    found = []
    for config in record.configurations:
        for key in TIME_KEYS:
            values = [
                (run.get("seed"), run.get(key))
                for run in config.runs
                if isinstance(run.get(key), (int, float))
            ]
            if len(values) < 3:
                continue
            middle = statistics.median(v for _, v in values)
            found += [
                {
                    "configuration": config.name,
                    "seed": seed,
                    "key": key,
                    "value": v,
                    "median": middle,
                }
                for seed, v in values
                if v > OUTLIER_FACTOR * middle
            ]
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
        times = [
            run["train_seconds"]
            for run in config.runs
            if isinstance(run.get("train_seconds"), (int, float))
        ]
        if times:
            total += statistics.median(times) * deciding["seeds"] * scale
    return total


def _settings_text(settings: Dict[str, object]) -> str:
    """``key value, ...``; a nested mapping (the noise) as ``key (k v, ...)``."""
    return (
        ", ".join(
            f"{k} ({_settings_text(v)})" if isinstance(v, dict) else f"{k} {v}"
            for k, v in settings.items()
        )
        or "—"
    )


def _below(record: StudyRecord) -> str:
    short = record.deciding.get("shortfalls") if record.deciding else None
    return f" ({BELOW}: {', '.join(short)})" if short else ""


def _p(value) -> str:
    """A p-value cell ("—" when there is none)."""
    return "—" if value is None else p_text(value)


def _holm_p(c: Dict[str, object]) -> str:
    """The Holm-adjusted p of a comparison row, and whether it survives ("—": not adjusted)."""
    if c.get("p_holm") is None:
        return "—"
    return p_text(c["p_holm"]) + ("" if c.get("holm_survives") else f" (> {FAMILY_LEVEL:g})")


def _comparison_rows(record: StudyRecord) -> List[str]:
    if not record.comparisons:
        return []
    head = [
        "comparison",
        "a − b",
        "claim",
        "margin",
        "difference",
        "interval",
        "method",
        "effect",
        "p (claim)",
        "Holm-adjusted p",
        "TOST p (±margin)",
        "outcome",
    ]
    lines = [
        "**Comparisons** (each decided from its interval, or its sign test, as the "
        "study's registry entry states; shown rows do not decide; the deciding rows are "
        "one family, Holm-"
        f"adjusted at family-wise level {FAMILY_LEVEL:g}, and one whose adjusted p is "
        "above it cannot hold):",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for c in record.comparisons:
        digits = 2 if abs(c["margin"]) >= 0.05 else 3
        effect = (
            f"{c['effect_name']} {c['effect']:.2g}"
            if effect_shown(c.get("effect"), c.get("effect_name", ""), c["n"])
            else "—"
        )
        sign = c.get("kind") == "sign"  # a median and its order-statistic interval
        method = c["method"] + (
            " (per seed: " + ", ".join(f"{v:+.{digits}f}" for v in c["values"]) + ")"
            if sign and c.get("values")
            else ""
        )
        lines.append(
            "| "
            + " | ".join(
                [
                    c["name"] + (" (shown)" if c.get("role") == "reference" else ""),
                    c["label"],
                    c["claim"],
                    f"±{c['margin']:.3g}",
                    ("median " if sign else "") + f"{c['difference']:+.{digits}f}",
                    f"{level_text(c['confidence'])}: {c['lower']:+.{digits}f} to {c['upper']:+.{digits}f}",
                    method,
                    effect,
                    _p(c.get("p")),
                    _holm_p(c),
                    _p(c.get("tost_p")),
                    f"{c['outcome']} ({c['reason']})",
                ]
            )
            + " |"
        )
    return lines + [""]


def _failure_note(study: str) -> str:
    """The report's sentence on when a run failed to train (the study's own flags, if any)."""
    if study in FAILURE:  # the learning-rate study's own flags
        return (
            f"A run failed to train when it is flagged diverged (the loop stopped on a "
            f"non-finite loss, a stored loss is not finite, or its final loss is above "
            f"2 ln 10 = {judging.DIVERGED_LOSS:.3f}, far worse than uniform guessing at "
            f"ln 10 = {judging.CHANCE_LOSS:.3f}, after rising above it) or stuck (not "
            f"diverged, best test accuracy at most {judging.LEARNED:g}); it trains when it "
            f"did not diverge and its test accuracy reached {judging.TRAINS_AT:g}."
        )
    return (
        f"A run failed to train when its loss became non-finite, its final loss is above "
        f"ln 10 = {judging.CHANCE_LOSS:.3f} (uniform guessing) or its final accuracy is at "
        f"most {judging.LEARNED:g}."
    )


# The order of a report's sections (NAME.md): what a reviewer reads first (claim, verdict,
# figures), then the design, then the wide tables and the provenance. The site's page
# (gluon_bn.site.study_page) uses the same sections, with the figures shown.
SECTIONS = (
    "scale",
    "title",
    "claim",
    "verdict",
    "figures",
    "measurement",
    "criterion",
    "stated",
    "comparisons",
    "tables",
    "settings",
    "configurations",
    "failures",
    "outliers",
    "deciding",
    "provenance",
)


def sections(record: StudyRecord) -> Dict[str, List[str]]:
    """Return the report of `record` as Markdown lines by section (:data:`SECTIONS`)."""
    options, env = record.options, record.environment
    display = DISPLAYS[record.study]
    metrics = [m for m in display.metrics if any(numbers(c, m) for c in record.configurations)]
    out: Dict[str, List[str]] = {
        "scale": [record.scale, ""],
        "title": [f"# Study `{record.study}`", ""],
        "claim": [f"**Claim** ({record.source}): {record.claim}.", ""],
        "verdict": [f"**Verdict**{_below(record)}. {record.verdict}", ""],
        "figures": [
            f"Figures: [{record.study}-intervals.png]({record.study}-intervals.png) "
            f"(the comparisons the verdict reads), [{record.study}.png]"
            f"({record.study}.png) (every seed's numbers).",
            "",
        ],
        "measurement": [f"**Measurement.** {record.measurement}.", ""],
        "criterion": [f"**Criterion.** {record.criterion}.", ""],
    }
    if record.verdicts:
        out["verdict"] += [
            f"- `{name}`: {verdict}" for name, verdict in record.verdicts.items()
        ] + [""]
    out["stated"] = (
        [f"**Criterion stated before the runs?** {stated_note(record)}.", ""]
        + [f"**Checked fact.** {fact}" for fact in record.facts]
        + ([""] if record.facts else [])
    )
    out["comparisons"] = _comparison_rows(record)
    out["tables"] = study_tables(record)
    params = ", ".join(
        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
        for k, v in dict(options.get("params", {})).items()
    )
    first = options.get("first_seed", 0)
    seeds = f" (seeds {first} to {first + options['seeds'] - 1})" if first else ""
    out["settings"] = [
        f"Settings: {options['seeds']} seed(s){seeds}, {options['epochs']} epoch(s), "
        f"fraction {options['fraction']} of the training images, test fraction "
        f"{options['test_fraction']}, batch {options['batch_size']}, lr {options['lr']}"
        + (f", grid {options['grid']}" if options.get("grid") else "")
        + (f", {params}" if params else "")
        + (" (--quick)" if options.get("quick") else "")
        + ".",
        "",
        "Numbers are mean ± sample standard deviation over the seeds, times median "
        "(range); a diverged run's accuracy counts at chance (0.1). Effect sizes are printed "
        f"from {MIN_EFFECT_N} seeds on. " + _failure_note(record.study),
        "",
    ]
    failed: Dict[str, int] = {}
    for f in record.failures:
        failed[f["configuration"]] = failed.get(f["configuration"], 0) + 1
    flags = FLAG_COLUMNS.get(record.study, ())
    head = (
        ["configuration", "settings"]
        + [LABELS.get(m, m) for m in metrics]
        + ["runs"]
        + [column for column, _ in flags]
        + ["failed to train"]
    )
    out["configurations"] = (
        ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        + [
            "| "
            + " | ".join(
                [config.name, _settings_text(config.settings)]
                + [cell(numbers(config, m), m) for m in metrics]
                + [str(len(config.runs))]
                + [str(sum(bool(flag(run)) for run in config.runs)) for _, flag in flags]
                + [str(failed.get(config.name, ""))]
            )
            + " |"
            for config in record.configurations
        ]
        + [""]
    )
    out["failures"] = (
        [
            "**Runs that failed to train:** "
            + "; ".join(
                f"{f['configuration']} seed {f['seed']}: {f['why']}" for f in record.failures
            )
            + ".",
            "",
        ]
        if record.failures
        else []
    )
    where = (
        f"MXNet {env.get('mxnet')}, {env.get('cpu_count')} CPU(s) "
        f"({cpu_name(env)}), device {env.get('device')}, "
        f"{env.get('runtime')}"
        + (f"; resumed with {'; '.join(env['resumed_with'])}" if env.get("resumed_with") else "")
    )
    slow = outliers(record)
    out["outliers"] = (
        [
            f"**Timing outliers** (above {OUTLIER_FACTOR:g}× the median of their "
            f"configuration; the record keeps one environment for all its runs: {where}): "
            + "; ".join(
                f"{o['configuration']} seed {o['seed']}: {LABELS.get(o['key'], o['key'])} "
                f"{o['value']:.1f}, median {o['median']:.1f}"
                for o in slow
            )
            + ". Time summaries use medians, so they are not moved by it.",
            "",
        ]
        if slow
        else []
    )
    out["deciding"] = []
    if record.deciding:
        d = record.deciding
        hours = deciding_estimate(record) / 3600
        out["deciding"] = [
            f"**Deciding scale:** fraction {d['fraction']:g}, {d['epochs']} epochs, "
            f"{d['seeds']} seeds ({d['why']}). "
            + (
                f"This record is {BELOW} ({', '.join(d['shortfalls'])}); `{d['command']}` "
                f"runs it there"
                + (
                    f", about {hours:.1f} h of training on one such machine, serially "
                    f"(from the committed runs' median seconds)"
                    if hours
                    else ""
                )
                + "."
                if d["shortfalls"]
                else "This record is at or above it."
            ),
            "",
        ]
    o = record.options
    made = (
        f"gluon-bn study {record.study} --quick --out DIR"
        if o.get("quick")
        else get_study(record.study).command(
            o["seeds"],
            o["epochs"],
            o["fraction"],
            first_seed=o.get("first_seed", 0),
            batch_size=o.get("batch_size"),
            grid=o.get("grid"),
            threads=env.get("omp_threads"),
            out="DIR",
        )
    )
    out["provenance"] = [f"Ran on {where}. Made again by `{made}`.", ""]
    return out


def markdown(record: StudyRecord) -> str:
    """Return ``NAME.md``: scale, claim, verdict and figures first, then the design, the
    comparisons, the tables and the provenance (:data:`SECTIONS`)."""
    parts = sections(record)
    return "\n".join(line for name in SECTIONS for line in parts[name])


def stated_note(record: StudyRecord) -> str:
    """Return whether the record's criterion was stated before its runs, as its report says it."""
    return str(
        (record.stated or {}).get("note")
        or "unknown: the record was judged before this was recorded (re-judge it with --regenerate)"
    )


def _files(record: StudyRecord, out_dir: Path) -> Dict[str, tuple]:
    """The record's files, JSON first: name -> (path, writer)."""
    stem = Path(out_dir) / record.study
    return {
        "json": (stem.with_suffix(".json"), lambda p: p.write_text(dumps(record))),
        "md": (stem.with_suffix(".md"), lambda p: p.write_text(markdown(record) + "\n")),
        "png": (stem.with_suffix(".png"), lambda p: plot(record, p)),
        "intervals": (stem.with_name(f"{record.study}-intervals.png"), lambda p: forest(record, p)),
    }


def write_study(record: StudyRecord, out_dir: Path) -> Dict[str, Path]:
    """Write ``NAME.json``, ``NAME.md`` and both figures, each atomically, JSON first (the folder's
    summary is :func:`gluon_bn.study.summary.write_summary`'s).

    Raises
    ------
    WriteError
        Naming the file that could not be written and the cause.
    """
    paths = {}
    for name, (path, write) in _files(record, out_dir).items():
        _write(path, write)
        paths[name] = path
    return paths


def _write(path: Path, write) -> None:
    try:
        write_atomically(path, write)
    except OSError as err:
        raise WriteError(
            f"could not write {path}: {os_error_cause(err)}; the runs finished so "
            f"far are kept in the progress file. Free space and run again."
        ) from None
