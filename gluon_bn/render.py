"""Rendered copies of the companion notebooks: executed, with their outputs, for reading.

``notebooks/*.ipynb`` are stored without outputs. :func:`render_notebook` executes one with
nbclient in a fresh kernel and writes a copy with every output, figures included, under
another directory (``docs/notebooks/``); the stored notebook is only read. The kernel runs
in the notebook's own directory with Jupyter's inline figures (``MPLBACKEND`` is removed
from its environment, so figures are kept as PNG outputs), and ``GLUON_BN_SMOKE`` selects
the notebooks' configuration: unset for their full one, ``1`` for their tiny smoke run. A
first Markdown cell says which configuration, which machine and code, and when, produced
the copy. :func:`render_all` renders every notebook of a directory and keeps going past a
failing one; ``scripts/render_notebooks.py`` is its command line.

nbformat and nbclient (the ``test`` and ``notebooks`` extras) are imported when used.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import subprocess
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import List, Mapping, Optional, Sequence

__all__ = [
    "SMOKE_VAR",
    "CONFIGURATIONS",
    "Rendered",
    "machine_description",
    "header_cell",
    "render_notebook",
    "render_all",
    "main",
]

SMOKE_VAR = "GLUON_BN_SMOKE"  # the switch every notebook reads in its first code cell
CONFIGURATIONS = {
    "full": (
        "the notebook's full configuration (the document's epochs on the whole training "
        "and test sets), as it runs when opened in Jupyter"
    ),
    "smoke": (
        f"the notebooks' smoke configuration ({SMOKE_VAR}=1: a few hundred images for "
        "one epoch), which shows that the code runs, not the document's numbers"
    ),
}
CELL_TIMEOUT = 3600  # seconds; a full training cell on a 2-core CPU takes minutes
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # the colours of IPython's tracebacks


@dataclass(frozen=True)
class Rendered:
    """The outcome of rendering one notebook.

    Attributes
    ----------
    source : Path
        The stored notebook.
    target : Path
        Where its rendered copy goes (written only when `error` is None).
    seconds : float
        How long executing it took.
    error : str, optional
        Why it failed (the copy from before, if any, is kept).
    """

    source: Path
    target: Path
    seconds: float
    error: Optional[str] = None


def _git(repo: Path, *args: str) -> str:
    """Output of a git command in `repo`, or "" when git or the repository is missing."""
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def _code_version(repo: Path) -> str:
    """gluon-bn's version and commit, noting uncommitted changes to the package or notebooks."""
    commit = _git(repo, "rev-parse", "--short", "HEAD")
    dirty = _git(repo, "status", "--porcelain", "--", ":/gluon_bn", ":/notebooks")
    from gluon_bn import __version__

    where = f" at commit {commit}" if commit else ""
    return f"gluon-bn {__version__}{where}" + (" with uncommitted changes" if dirty else "")


def machine_description() -> str:
    """Return the CPU, its core count, the OS and the versions of Python and MXNet, in a line."""
    from gluon_bn.runtime import cpu_description

    try:
        mxnet = "MXNet " + metadata.version("mxnet")
    except metadata.PackageNotFoundError:
        mxnet = "MXNet (version unknown)"
    cpu = cpu_description()["cpu_model"] or platform.processor() or platform.machine()
    return (
        f"{os.cpu_count()} CPU core(s) ({cpu}), {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, {mxnet}"
    )


def header_cell(
    source_name: str,
    *,
    smoke: bool,
    seconds: float,
    machine: str,
    code: str,
    when: Optional[datetime.datetime] = None,
    note: str = "",
):
    """Return the Markdown cell that opens a rendered copy: what, how, where and when.

    Parameters
    ----------
    source_name : str
        The stored notebook's file name (under ``notebooks/``).
    smoke : bool
        Whether the smoke configuration was run (else the full one).
    seconds : float
        How long executing the notebook took.
    machine : str
        The machine, e.g. from :func:`machine_description`.
    code : str
        The code's version and commit.
    when : datetime, optional
        When it was rendered (default: now, UTC).
    note : str
        Anything else the reader should know (e.g. that the cores were shared).
    """
    import nbformat

    when = when or datetime.datetime.now(datetime.timezone.utc)
    minutes, secs = divmod(round(seconds), 60)
    text = (
        f"> **Rendered copy** of [`notebooks/{source_name}`](../../notebooks/{source_name}) "
        f"with its outputs, for reading without running it. The stored notebook has no "
        f"outputs; this copy is regenerated by `python scripts/render_notebooks.py`.\n>\n"
        f"> Configuration: {CONFIGURATIONS['smoke' if smoke else 'full']}.\n>\n"
        f"> Produced on {when:%Y-%m-%d %H:%M} UTC by {code}, on {machine}; executing "
        f"it took {minutes} min {secs} s." + (f"\n>\n> {note}" if note else "")
    )
    return nbformat.v4.new_markdown_cell(text)


def render_notebook(
    source: Path,
    target: Path,
    *,
    smoke: bool = False,
    note: str = "",
    timeout: int = CELL_TIMEOUT,
    kernel_name: str = "python3",
    env: Optional[Mapping[str, str]] = None,
):
    """Execute the notebook `source` and write it, with its outputs and a header, to `target`.

    Parameters
    ----------
    source : Path
        A stored notebook; it is read, never written.
    target : Path
        Where the rendered copy goes (its directory is created); replaced only once the
        notebook has run to the end.
    smoke : bool
        Run the notebooks' smoke configuration (``GLUON_BN_SMOKE=1``) instead of the full one.
    note : str
        A sentence for the header (e.g. that the machine was shared).
    timeout : int
        Seconds each cell may take.
    kernel_name : str
        The Jupyter kernel to run it in.
    env : mapping, optional
        The kernel's environment before the settings above (default: this process's).

    Returns
    -------
    nbformat.NotebookNode
        The rendered notebook, as written.

    Raises
    ------
    nbclient.exceptions.CellExecutionError
        When a cell fails (nothing is written).
    """
    import nbclient
    import nbformat

    source, target = Path(source), Path(target)
    nb = nbformat.read(source, as_version=4)
    kernel_env = dict(os.environ if env is None else env)
    kernel_env.pop("MPLBACKEND", None)  # Jupyter's inline backend: figures become outputs
    kernel_env.pop(SMOKE_VAR, None)
    if smoke:
        kernel_env[SMOKE_VAR] = "1"
    client = nbclient.NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=kernel_name,
        record_timing=False,
        resources={"metadata": {"path": str(source.resolve().parent)}},
    )
    start = time.perf_counter()
    client.execute(env=kernel_env)
    seconds = time.perf_counter() - start
    repo = source.resolve().parent
    nb.cells.insert(
        0,
        header_cell(
            source.name,
            smoke=smoke,
            seconds=seconds,
            note=note,
            machine=machine_description(),
            code=_code_version(repo),
        ),
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    nbformat.write(nb, str(partial))
    os.replace(partial, target)
    return nb


def render_all(
    source_dir: Path,
    target_dir: Path,
    *,
    names: Sequence[str] = (),
    smoke: bool = False,
    note: str = "",
    log=None,
) -> List[Rendered]:
    """Render the notebooks of `source_dir` into `target_dir`, one after the other.

    Parameters
    ----------
    source_dir : Path
        Where the stored notebooks are (``notebooks/``).
    target_dir : Path
        Where the rendered copies go (``docs/notebooks/``), under the same file names.
    names : sequence of str
        Only these notebooks (stems, e.g. ``"d2l-en"``); all ``*.ipynb`` when empty.
    smoke, note
        As in :func:`render_notebook`.
    log : text stream, optional
        Where a line per notebook goes (started, done or failed, and how long it took).

    Returns
    -------
    list of Rendered
        One per notebook, in order; a failed one carries its error and leaves its old copy.
    """
    sources = sorted(Path(source_dir).glob("*.ipynb"))
    if names:
        known = {p.stem: p for p in sources}
        missing = [n for n in names if n not in known]
        if missing:
            raise ValueError(
                f"no notebook {', '.join(missing)} in {source_dir}; there are: {', '.join(known)}"
            )
        sources = [known[n] for n in names]
    results = []
    for source in sources:
        target = Path(target_dir) / source.name
        print(f"rendering {source} -> {target} ...", file=log, flush=True)
        start = time.perf_counter()
        try:
            render_notebook(source, target, smoke=smoke, note=note)
            error = None
        except Exception as err:  # a failed cell, a dead kernel, a timeout: report, go on
            text = _ANSI.sub("", str(err)).strip()  # a failed cell's source and traceback
            error = f"{type(err).__name__}: {text.splitlines()[-1] if text else ''}"
            print(text, file=log, flush=True)
        seconds = time.perf_counter() - start
        results.append(Rendered(source, target, seconds, error))
        status = f"FAILED ({error})" if error else "done"
        print(f"  {status} in {seconds / 60:.1f} min", file=log, flush=True)
    return results


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Render the notebooks from the command line; return 0, or 1 if any failed.

    Parameters
    ----------
    argv : sequence of str, optional
        ``[NAME ...] [--smoke] [--note TEXT] [--source DIR] [--out DIR]``; ``sys.argv[1:]``
        by default.
    """
    import argparse
    import sys

    root = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(
        prog="render_notebooks.py",
        description="Execute notebooks/*.ipynb and write copies with their outputs to "
        "docs/notebooks/ (the stored notebooks are not changed).",
    )
    parser.add_argument("names", nargs="*", help="only these notebooks (e.g. d2l-en)")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"the tiny smoke configuration ({SMOKE_VAR}=1), not the full one",
    )
    parser.add_argument("--note", default="", help="a sentence for every copy's header")
    parser.add_argument("--source", type=Path, default=root / "notebooks")
    parser.add_argument("--out", type=Path, default=root / "docs" / "notebooks")
    args = parser.parse_args(argv)
    try:
        results = render_all(
            args.source,
            args.out,
            names=args.names,
            smoke=args.smoke,
            note=args.note,
            log=sys.stdout,
        )
    except ValueError as err:
        parser.error(str(err))
    failed = [r for r in results if r.error]
    for r in failed:
        print(f"{r.source.name} failed: {r.error}", file=sys.stderr)
    return 1 if failed else 0
