"""How every bench and the runtime probe measure: alternating rounds, medians and ranges, a fresh
process per measurement where one is needed, and the table and record written at the end.

- :func:`alternate` measures named cells round after round, in the same or a reversed order,
  optionally dropping clear losers (:data:`CONTEND`-style) and failures;
- :func:`spread`, :func:`ratios`, :func:`summarize` and :func:`span` give medians, ranges
  and ratios per round, as the tables print them;
- :func:`run_child`, :func:`run_json_child` and :func:`json_child_main` are both sides of a
  fresh process, :func:`runtime_environment` its engine and thread variables;
- :func:`markdown_table` and :func:`write_outputs` give the table and write STEM.json,
  STEM.md (and STEM.png) atomically.

This module imports nothing from :mod:`gluon_bn` and never imports MXNet: the runtime probe,
which sets MXNet's engine and threads before MXNet loads, measures with it too.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import (
    Callable,
    Dict,
    Hashable,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    TextIO,
    Tuple,
)

ROUNDS = 3  # alternating rounds of a bench unless it is told otherwise
# What a runtime sets (gluon_bn.runtime.VARIABLES): dropped from a child's inherited environment.
RUNTIME_VARIABLES = ("MXNET_ENGINE_TYPE", "OMP_NUM_THREADS", "OMP_WAIT_POLICY")
ERROR_TAIL = 2000  # characters of a failed child's stderr kept in the error
# What a failed measurement raises when it is to be dropped and named, not stop the rounds.
FAILURES = (RuntimeError, OSError, ValueError, KeyError)


@dataclass(frozen=True)
class Turn:
    """One measurement of :func:`alternate`, as its `report` callback sees it.

    Attributes
    ----------
    round, rounds : int
        This round (from 1) and how many there are.
    index, count : int
        This cell's place in the round's order (from 1) and the cells per round.
    done, total : int
        Measurements made so far (this one included) and planned (rounds x cells).
    key : hashable
        The cell's name.
    cell : object
        The cell.
    value : object
        What it measured.
    values : dict
        Every cell's measurements so far, by name (live: later turns add to it).
    """

    round: int
    rounds: int
    index: int
    count: int
    done: int
    total: int
    key: Hashable
    cell: object
    value: object
    values: Mapping[Hashable, List[object]]

    @property
    def ends_round(self) -> bool:
        """True for the last cell of its round's order."""
        return self.index == self.count


@dataclass
class Rounds:
    """What :func:`alternate` measured: each cell's measurements in round order, and failures.

    Attributes
    ----------
    values : dict
        Cell name to its measurements, one per round it ran in, in the cells' order.
    failures : dict
        Name of a dropped cell to the last line of its error.
    """

    values: Dict[Hashable, List[object]]
    failures: Dict[Hashable, str]


def _itself(cell: object) -> Hashable:
    """A cell that is its own name."""
    return cell  # type: ignore[return-value]


def last_line(err: BaseException) -> str:
    """Return the last line of an error's message ("failed" when it has none)."""
    return (str(err).strip().splitlines() or ["failed"])[-1]


def round_order(cells: Sequence[object], round_index: int, reverse: bool) -> Sequence[object]:
    """Return the cells in the order of round `round_index` (from 0).

    Parameters
    ----------
    cells : sequence
        The first round's order.
    round_index : int
        Which round.
    reverse : bool
        Every second round reversed (A B C, C B A, ...); otherwise always the same order.
    """
    return cells[::-1] if reverse and round_index % 2 else cells


def contenders(values: Mapping[Hashable, Sequence[float]], contend: float) -> Optional[set]:
    """Return the names whose median is within `contend` of the fastest (None: no medians yet).

    Parameters
    ----------
    values : mapping of name to sequence of float
        Measurements so far (smaller is faster); names without any are left out.
    contend : float
        Factor of the fastest median within which a name still contends.
    """
    medians = {name: statistics.median(v) for name, v in values.items() if v}
    if not medians:
        return None
    best = min(medians.values())
    return {name for name, median in medians.items() if median <= contend * best}


def alternate(
    cells: Sequence[object],
    run: Callable[[object], object],
    rounds: int,
    *,
    key: Callable[[object], Hashable] = _itself,
    reverse: bool = False,
    contend: Optional[float] = None,
    catch: Tuple[type, ...] = (),
    report: Optional[Callable[[Turn], None]] = None,
) -> Rounds:
    """Measure every cell once per round, round after round; return each cell's measurements.

    Parameters
    ----------
    cells : sequence
        What to measure, in the first round's order.
    run : callable
        Measures one cell; returns its measurement.
    rounds : int
        How many rounds.
    key : callable, optional
        A cell's name in the result (default: the cell itself).
    reverse : bool
        Reverse the order every second round (see :func:`round_order`).
    contend : float, optional
        After the first round, measure again only the cells within this factor of the
        fastest median at the round's start (:func:`contenders`; measurements are numbers).
    catch : tuple of exception types
        A cell whose run raises one of these is dropped: its measurements are removed and
        the error's last line is kept in :attr:`Rounds.failures`. Others propagate.
    report : callable, optional
        Called with a :class:`Turn` after every measurement (progress lines).
    """
    values: Dict[Hashable, List[object]] = {key(cell): [] for cell in cells}
    failures: Dict[Hashable, str] = {}
    done, total = 0, rounds * len(cells)
    for r in range(rounds):
        chosen = contenders(values, contend) if r and contend is not None else None
        order = round_order(cells, r, reverse)
        for index, cell in enumerate(order, 1):
            name = key(cell)
            if name in failures or (chosen is not None and name not in chosen):
                continue
            try:
                value = run(cell)
            except catch as err:
                failures[name] = last_line(err)
                values.pop(name, None)
                continue
            values[name].append(value)
            done += 1
            if report is not None:
                report(
                    Turn(r + 1, rounds, index, len(order), done, total, name, cell, value, values)
                )
    return Rounds(values, failures)


def spread(values: Sequence[float]) -> Dict[str, float]:
    """Return the median, minimum and maximum of `values`."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def ratios(values: Sequence[float], reference: Sequence[float]) -> List[float]:
    """Return each round's value divided by the reference's value of the same round."""
    return [v / r for v, r in zip(values, reference)]


def summarize(seconds: Mapping[str, Sequence[float]], reference: str) -> dict:
    """Return each cell's ratio to `reference` per round, and the :func:`spread` of both.

    Parameters
    ----------
    seconds : mapping of str to sequence of float
        Every cell's seconds, one per round, rounds in the same order.
    reference : str
        The cell the ratios divide by.

    Returns
    -------
    dict
        ``ratios`` (name to list) and ``summary`` (name to ``seconds`` and ``ratio``
        spreads).
    """
    per_round = {name: ratios(values, seconds[reference]) for name, values in seconds.items()}
    return {
        "ratios": per_round,
        "summary": {
            name: {"seconds": spread(seconds[name]), "ratio": spread(per_round[name])}
            for name in seconds
        },
    }


def span(s: Mapping[str, float], digits: int = 2, note: str = "") -> str:
    """Return a spread as a table prints it: ``median (min-max)``, `note` inside the brackets.

    Parameters
    ----------
    s : mapping
        ``median``, ``min`` and ``max`` (:func:`spread`).
    digits : int
        Decimals of each figure.
    note : str
        Appended after the range, e.g. ``", 1.5x"``.
    """
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f}{note})"


def runtime_environment(
    variables: Mapping[str, str], drop: Sequence[str] = RUNTIME_VARIABLES
) -> Dict[str, str]:
    """Return this process's environment, `drop` removed, with `variables` set.

    Parameters
    ----------
    variables : mapping of str to str
        What the child runs with (e.g. :meth:`gluon_bn.runtime.Runtime.variables`).
    drop : sequence of str
        Inherited variables the child must not see (default: the engine and thread
        variables a runtime sets, :data:`RUNTIME_VARIABLES`).
    """
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(variables)
    return env


def run_child(
    argv: Sequence[str], *, what: str, env: Optional[Mapping[str, str]] = None
) -> subprocess.CompletedProcess:
    """Run ``python ARGV`` (this interpreter) to the end; return it, its output captured as text.

    Parameters
    ----------
    argv : sequence of str
        The interpreter's arguments, e.g. ``["-m", "gluon_bn.cli", "study", ...]``.
    what : str
        Names the measurement in the error.
    env : mapping, optional
        The child's whole environment (default: this process's).

    Raises
    ------
    RuntimeError
        When the child fails; the message ends with the last of its stderr.
    """
    proc = subprocess.run(
        [sys.executable, *argv],
        env=dict(os.environ if env is None else env),
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n{proc.stderr[-ERROR_TAIL:]}")
    return proc


def run_json_child(
    module: str, job: object, *, what: str, env: Optional[Mapping[str, str]] = None
) -> dict:
    """Run ``python -m module JOB`` to the end; return the JSON object its stdout ends with.

    The module (its ``main`` is :func:`json_child_main`) measures and prints its answer as
    one JSON line, last on stdout; progress and MXNet's own log go to stderr.

    Parameters
    ----------
    module : str
        The module that measures, e.g. ``gluon_bn.bench.scaling``.
    job : JSON-serialisable
        Its one argument.
    what : str
        Names the measurement in the error, e.g. ``bench --scaling: the cell ...``.
    env : mapping, optional
        The child's whole environment (default: this process's).

    Raises
    ------
    RuntimeError
        When the child fails (:func:`run_child`).
    """
    proc = run_child(["-m", module, json.dumps(job)], what=what, env=env)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def json_child_main(
    argv: Optional[Sequence[str]], *, prog: str, description: str, answer: Callable[[dict], object]
) -> int:
    """Be the ``main`` of a module that :func:`run_json_child` starts; return the exit status.

    Parses one argument, the job as a JSON object (``--help`` prints the usage), and prints
    ``answer(job)`` as one JSON line on stdout.

    Parameters
    ----------
    argv : sequence of str, optional
        Default ``sys.argv[1:]``.
    prog, description : str
        For the usage, e.g. ``python -m gluon_bn.bench.scaling``.
    answer : callable
        Measures the job; returns something JSON-serialisable.
    """
    import argparse

    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "job", help="the job, a JSON object (the bench that starts this module writes it)"
    )
    args = parser.parse_args(argv)
    try:
        job = json.loads(args.job)
    except json.JSONDecodeError as err:
        parser.error(f"the job is not JSON ({err}): {args.job[:200]!r}")
    if not isinstance(job, dict):
        parser.error(f"the job must be a JSON object, got {args.job[:200]!r}")
    print(json.dumps(answer(job)))
    return 0


def markdown_table(
    header: Sequence[str], rows: Iterable[Sequence[object]], align: str = ""
) -> List[str]:
    """Return a Markdown table's lines: the header, the rule, a line per row.

    Parameters
    ----------
    header : sequence of str
        The column headings.
    rows : iterable of sequences
        Each row's cells (printed with ``str``).
    align : str
        A letter per column, ``l`` (default) or ``r`` for right-aligned.
    """

    def line(cells: Sequence[object]) -> str:
        return "| " + " | ".join(str(cell) for cell in cells) + " |"

    rule = "".join("|---:" if align[i : i + 1] == "r" else "|---" for i in range(len(header)))
    return [line(header), rule + "|", *(line(row) for row in rows)]


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write `path` through a temporary file of this process beside it, then rename it.

    A failed write leaves the previous file whole and no temporary behind.

    Parameters
    ----------
    path : Path
        The file to write.
    write : callable
        Writes a file at the path it is given (the temporary one; its suffix is `path`'s).
    """
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def write_outputs(
    out_dir: Path,
    stem: str,
    record: object,
    table: str,
    *,
    file: TextIO,
    plot: Optional[Callable[[object, Path], None]] = None,
) -> List[Path]:
    """Print `table`; write STEM.json, STEM.md and, given `plot`, STEM.png; return their paths.

    Each file is written atomically (:func:`write_atomically`), and each is named on `file`
    once all are written.

    Parameters
    ----------
    out_dir : Path
        The bench's output folder (created when missing).
    stem : str
        The files' name, e.g. ``scaling``.
    record : JSON-serialisable
        The bench's result.
    table : str
        Its Markdown (:func:`markdown_table` and the notes).
    file : text stream
        Where the table and the written paths are printed.
    plot : callable, optional
        Draws the record to a PNG path.
    """
    print(table, file=file)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.json", out_dir / f"{stem}.md"]
    write_atomically(paths[0], lambda p: p.write_text(json.dumps(record, indent=1) + "\n"))
    write_atomically(paths[1], lambda p: p.write_text(table + "\n"))
    if plot is not None:
        paths.append(out_dir / f"{stem}.png")
        write_atomically(paths[2], lambda p: plot(record, p))
    for path in paths:
        print(f"wrote {path}", file=file)
    return paths
