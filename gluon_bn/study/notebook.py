"""What ``notebooks/claims.ipynb`` shows of a study, one call per claim.

:func:`show_study` displays a study's report (statement, comparisons, table, verdict), its
figure and its forest plot of the comparisons: the committed record under
``results/studies`` by default, a run at a tiny scale in smoke mode (``GLUON_BN_SMOKE=1``,
what the tests use), or a fresh run when asked.
"""

from __future__ import annotations

import io
import re
from dataclasses import replace
from pathlib import Path
from typing import Optional, Tuple

from gluon_bn.study.registry import get_study
from gluon_bn.study.study_record import StudyRecord, load_study_record

RESULTS = Path(__file__).resolve().parents[2] / "results" / "studies"
# Smoke scale: the quick settings on 300 training images (a LeNet batch fits) and 200 test images.
SMOKE_FRACTION, SMOKE_TEST_FRACTION = 0.005, 0.02
# A report links the files beside its record (``NAME.png``, the other studies' ``NAME.md``):
# right in results/studies and on the site, dangling in a notebook, which shows the figures
# itself. There the links become their text.
SIBLING_LINK = re.compile(r"\[([^\]]+)\]\(([\w.-]+\.(?:md|png))\)")


def unlink_siblings(text: str) -> str:
    """Return Markdown `text` with its links to files beside a record replaced by their text."""
    return SIBLING_LINK.sub(r"\1", text)


def run_or_load(
    name: str, *, smoke: bool, out: Path, rerun: bool = False, results: Path = RESULTS
) -> Tuple[StudyRecord, Path]:
    """Return the record of study `name` (committed, or run) and the folder of its files.

    Parameters
    ----------
    name : str
        A study of :data:`gluon_bn.study.registry.STUDIES`.
    smoke : bool
        Run the quick settings at the smoke scale into `out` (seconds; inconclusive by design).
    out : Path
        Where a run writes its files.
    rerun : bool
        Run the study at its committed settings into `out` even if a record is committed
        (minutes).
    results : Path
        Where the committed records are.
    """
    study = get_study(name)
    committed = Path(results) / f"{name}.json"
    if not smoke and not rerun and committed.exists():
        return load_study_record(committed), Path(results)
    from gluon_bn.study.runner import run_study

    settings = study.settings(quick=smoke)
    if smoke:
        settings = replace(settings, fraction=SMOKE_FRACTION, test_fraction=SMOKE_TEST_FRACTION)
    record, _ = run_study(
        study, settings, Path(out), quick=smoke, file=io.StringIO(), progress=False
    )
    return record, Path(out)


def show_study(
    name: str, *, smoke: bool, out: Path, rerun: bool = False, results: Path = RESULTS
) -> StudyRecord:
    """Display study `name`'s report, its figure and its forest plot in a notebook; return its record.

    The forest plot (``NAME-intervals.png``) draws one line per comparison the verdict reads:
    the difference, its t interval and the margin shaded around 0.

    Parameters
    ----------
    name, smoke, out, rerun, results
        See :func:`run_or_load`.
    """
    from IPython.display import Image, Markdown, display

    from gluon_bn.study.study_report import markdown

    record, folder = run_or_load(name, smoke=smoke, out=out, rerun=rerun, results=results)
    display(Markdown(unlink_siblings(markdown(record))))
    display(Image(filename=str(folder / f"{name}.png")))
    display(Image(filename=str(folder / f"{name}-intervals.png")))
    return record


def show_summary(*, smoke: bool, out: Path, results: Path = RESULTS) -> Optional[str]:
    """Display the summary table of the studies shown (smoke: those run into `out`); return it."""
    from IPython.display import Markdown, display

    from gluon_bn.study.summary import load_records, summary

    records = load_records(Path(out) if smoke else Path(results))
    if not records:
        return None
    text = unlink_siblings(summary(records))
    display(Markdown(text))
    return text
