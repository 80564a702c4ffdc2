"""Reporting: a run's environment, its record as Markdown and as a plot, the results table.

:func:`write_outputs` writes a record's three files; the JSON first, so that a failing
figure never takes the numbers with it.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Dict

from gluon_bn.harness import write_atomically  # one atomic writer for every file
from gluon_bn.records import Reproduction, dumps
from gluon_bn.report.markdown import (
    DIGITS,
    LABELS,
    METRICS,
    cpu_name,
    document_time_ratio,
    markdown_report,
    mean_sd,
    summarize,
    time_ratio,
)
from gluon_bn.report.plots import plot_curves

__all__ = [
    "DIGITS",
    "LABELS",
    "METRICS",
    "OutputError",
    "WriteError",
    "cpu_name",
    "document_time_ratio",
    "environment",
    "markdown_report",
    "mean_sd",
    "os_error_cause",
    "plot_curves",
    "prepare_directory",
    "summarize",
    "time_ratio",
    "write_atomically",
    "write_outputs",
]


class OutputError(ValueError):
    """A directory the run must write to cannot be used; the message says which, why, what to do."""


def prepare_directory(path: Path, option: str) -> Path:
    """Create `path` if needed and prove a file can be written there, before any work starts.

    Parameters
    ----------
    path : Path
        Where results or checkpoints will go.
    option : str
        The command-line option that named it (``--out``, ``--checkpoint-dir``), for the message.

    Raises
    ------
    OutputError
        When the directory cannot be created or written (a file in the way, no permission,
        a read-only or full file system), naming the path, the cause and the fix.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".gluon-bn-probe-") as probe:
            probe.write(b"probe")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as err:
        cause = os.strerror(err.errno) if err.errno else str(err)
        if err.errno in (errno.ENOTDIR, errno.EEXIST):
            cause = "a file is in the way (a directory is needed)"
        raise OutputError(
            f"{option} {path} cannot be used: {cause}. Give {option} a directory you can write to."
        ) from None
    return path


def environment(ctx=None):
    """Return versions, device and thread settings (loads MXNet; see :mod:`.environment`)."""
    from gluon_bn.report.provenance import environment as describe

    return describe(ctx)


class WriteError(OSError):
    """A result file could not be written mid-run; the message names the file, the cause and what was kept."""


def os_error_cause(err: BaseException) -> str:
    """Return an OS error's reason in words, with its errno name (``ENOSPC``, ``EFBIG``, ...)."""
    number = getattr(err, "errno", None)
    if number:
        return f"{os.strerror(number)} ({errno.errorcode.get(number, number)})"
    return f"{type(err).__name__}: {err}"


def write_outputs(rep: Reproduction, out_dir: Path, stem: str) -> Dict[str, Path]:
    """Write ``STEM.json``, ``STEM.md`` and ``STEM.png`` under `out_dir`; return their paths.

    The small JSON record goes first, and every file is replaced atomically, so a full disk
    or a size limit never leaves a half-written file in place of a good one, and a failing
    Markdown table or figure never takes the numbers with it.

    Raises
    ------
    WriteError
        Naming the file that could not be written, the cause (e.g. ``No space left on
        device (ENOSPC)``) and which files were written.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {ext: out_dir / f"{stem}.{ext}" for ext in ("json", "md", "png")}
    writers = {
        "json": lambda p: p.write_text(dumps(rep)),
        "md": lambda p: p.write_text(markdown_report(rep) + "\n"),
        "png": lambda p: plot_curves(rep, p),
    }
    written = []
    for ext, write in writers.items():
        try:
            write_atomically(paths[ext], write)
        except OSError as err:
            kept = (
                f"the record was written first and is complete: {paths['json']}"
                if written
                else "no file of this run was written"
            )
            raise WriteError(
                f"could not write {paths[ext]}: {os_error_cause(err)}; {kept}. Free space "
                f"(or raise the limit) and run again, or give --out another "
                f"directory."
            ) from None
        written.append(paths[ext])
    return paths
