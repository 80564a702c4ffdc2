"""Regenerate the published results (``scripts/reproduce_all.py``), or list what that would run.

Every record under ``results/`` comes from one ``gluon-bn reproduce`` command of
:data:`PUBLISHED_RUNS`, with seeds 0 1 2 and the package's current defaults for
everything the command does not name. Each of its runs (variant x seed) is one task
(:func:`gluon_bn.run.tasks.reproduce_run`, a library call) trained with one OpenMP thread,
in this process or on Dask workers (``--jobs N``, ``--scheduler ADDRESS``). ``--dry-run`` lists the commands, the record each writes, what it trains
(loop, pipeline, BN implementation, hybridization, data) and how long it should take by the
times of the record it replaces, without training anything.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, TextIO, Tuple

from gluon_bn.options import ResolvedRun, RunOptions
from gluon_bn.records import Reproduction, load_result
from gluon_bn.status import EXIT_INTERRUPTED, EXIT_RUNS_FAILED

# Every record under results/: a recipe and what its command names (RunOptions fields), seeds
# 0 1 2 each, with the package's current defaults for everything else.
_FAST = {"pipeline": "fast", "bn_impl": "fast"}
PUBLISHED_RUNS: Tuple[Tuple[str, Dict[str, object]], ...] = (
    ("d2l-en", {}),  # the documents' own path: d2l's pipeline, the scratch layer as written
    ("d2l-en", _FAST),
    ("d2l-zh", _FAST),
    ("d2l-0.17", _FAST),
    ("straight-dope", {**_FAST, "dataset": "fashion-mnist"}),
    # document 000's own loop (d2l.Trainer reads the book's pipeline), and train_ch5 beside it
    (
        "d2l-1.0",
        {
            "variants": ("scratch", "gluon", "plain"),
            "pipeline": "d2l",
            "loop": "d2l.Trainer",
            "bn_impl": "fast",
        },
    ),
    ("d2l-1.0", {"variants": ("scratch", "gluon", "plain"), **_FAST}),
    # the scratch layer as compiled C++: equal to float32 rounding, so a record of its own
    ("d2l-en", {"variants": ("scratch",), "pipeline": "fast", "bn_impl": "native"}),
)
PUBLISHED_SEEDS = (0, 1, 2)
PUBLISHED_OUT = Path("results")
# How each option is spelled on the command line (for the listing; values as given).
_FLAGS = {
    "variants": "--variant",
    "pipeline": "--pipeline",
    "loop": "--loop",
    "bn_impl": "--bn-impl",
    "dataset": "--dataset",
}
_VARIANT_WORDS = {("scratch", "gluon", "plain"): "all"}


@dataclass(frozen=True)
class Overrides:
    """What the script's extra arguments change in every published run.

    Attributes
    ----------
    argv : tuple of str
        The arguments as given (shown after each listed command).
    options : dict
        RunOptions fields (``epochs``, ``limit``, ``test_limit``, ``data_root``).
    out : Path
        Where the records go (default ``results``).
    device : str
        As ``gluon-bn reproduce --device`` (default auto).
    """

    argv: Tuple[str, ...]
    options: Dict[str, object]
    out: Path
    device: str


def parse_extra(extra: Sequence[str] = ()) -> Overrides:
    """Return the :class:`Overrides` that `extra` asks for (ValueError in one line otherwise).

    Parameters
    ----------
    extra : sequence of str
        ``--epochs N``, ``--limit N``, ``--test-limit N``, ``--data-root DIR``, ``--out DIR``,
        ``--device SPEC``: as ``gluon-bn reproduce`` takes them.
    """
    parser = argparse.ArgumentParser(
        prog="scripts/reproduce_all.py", add_help=False, allow_abbrev=False
    )
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--test-limit", type=int)
    parser.add_argument("--data-root")
    parser.add_argument("--out", type=Path, default=PUBLISHED_OUT)
    parser.add_argument("--device", default="auto")
    args, unknown = parser.parse_known_args(list(extra))
    if unknown:
        raise ValueError(
            f"unrecognized arguments: {' '.join(unknown)} (the published runs "
            f"take --epochs, --limit, --test-limit, --data-root, --out, --device)"
        )
    given = {
        "epochs": args.epochs,
        "limit": args.limit,
        "test_limit": args.test_limit,
        "data_root": args.data_root,
    }
    return Overrides(
        tuple(extra), {k: v for k, v in given.items() if v is not None}, args.out, args.device
    )


def command_words(recipe: str, spec: Dict[str, object], extra: Sequence[str] = ()) -> List[str]:
    """Return the ``gluon-bn`` arguments equivalent to one published run (for the listing)."""
    words = ["reproduce", recipe, "--seed", *map(str, PUBLISHED_SEEDS), "--out", str(PUBLISHED_OUT)]
    for key, value in spec.items():
        if key == "variants":
            value = _VARIANT_WORDS.get(tuple(value), " ".join(value))
        words += [_FLAGS[key], str(value)]
    return words + list(extra)


def published_commands(extra: Sequence[str] = ()) -> List[List[str]]:
    """Return the ``gluon-bn`` argument lists equivalent to the regeneration, `extra` appended.

    Parameters
    ----------
    extra : sequence of str
        Arguments of :func:`parse_extra`; given last, they win over the published ones.
    """
    return [command_words(name, spec, extra) for name, spec in PUBLISHED_RUNS]


@dataclass(frozen=True)
class PlannedRun:
    """One command of the regeneration, resolved as ``gluon-bn reproduce`` would resolve it.

    Attributes
    ----------
    argv : tuple of str
        The equivalent ``gluon-bn`` arguments (shown by ``--dry-run``).
    recipe : str
        The recipe's name.
    options : RunOptions
        As asked (what a task resolves again on its worker).
    run : ResolvedRun
        What it trains, every default decided.
    record : Path
        The JSON record it writes (and replaces).
    estimate : float, optional
        Seconds it should take by the times of the record it replaces; None without one.
    """

    argv: Tuple[str, ...]
    recipe: str
    options: RunOptions
    run: ResolvedRun
    record: Path
    estimate: Optional[float]

    @property
    def trainings(self) -> int:
        """Return how many networks it trains: variants times seeds."""
        return len(self.run.variants) * len(self.run.seeds)


def estimate_seconds(run: ResolvedRun, previous: Reproduction) -> Optional[float]:
    """Return how long `run` should take, by the mean seconds per epoch of each variant in `previous`.

    Parameters
    ----------
    run : ResolvedRun
        What will run (variants, seeds, epochs).
    previous : Reproduction
        The record it replaces; None is returned when a variant of `run` is missing there.
    """
    total = 0.0
    for variant in run.variants:
        seconds = [e.seconds for r in previous.runs_of(variant) for e in r.history]
        if not seconds:
            return None
        total += sum(seconds) / len(seconds) * run.epochs * len(run.seeds)
    return total


def plan(extra: Sequence[str] = ()) -> List[PlannedRun]:
    """Return every command of the regeneration, resolved, with the record it writes.

    Parameters
    ----------
    extra : sequence of str
        Arguments appended to every command, as ``scripts/reproduce_all.py`` passes them on.
    """
    from gluon_bn.recipes import get_recipe
    from gluon_bn.run.reproduce import output_stem  # loads MXNet, for the exact file name

    overrides = parse_extra(extra)
    planned = []
    for (name, spec), argv in zip(PUBLISHED_RUNS, published_commands(extra)):
        options = RunOptions(**{**spec, "seeds": PUBLISHED_SEEDS, **overrides.options})
        run = options.resolve(get_recipe(name))
        record = overrides.out / f"{output_stem(run)}.json"
        try:
            estimate = estimate_seconds(run, load_result(record)) if record.exists() else None
        except ValueError:  # not a record: nothing to estimate by
            estimate = None
        planned.append(PlannedRun(tuple(argv), name, options, run, record, estimate))
    return planned


def select(planned: Sequence[PlannedRun], only: Sequence[str] = ()) -> List[PlannedRun]:
    """Return the runs of `planned` whose record is named in `only` (all of them when empty).

    Parameters
    ----------
    planned : sequence of PlannedRun
        What :func:`plan` returned.
    only : sequence of str
        Record names without ``.json``, e.g. ``d2l-en`` or ``d2l-zh_fast_bn-fast``.

    Raises
    ------
    ValueError
        For a name no command writes; the message lists the names there are.
    """
    stems = [p.record.stem for p in planned]
    unknown = [name for name in only if name not in stems]
    if unknown:
        raise ValueError(
            f"no published command writes {', '.join(unknown)}; the records are: {', '.join(stems)}"
        )
    return [p for p in planned if not only or p.record.stem in only]


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return (
        f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{max(minutes, 1)} min"
    )


def format_plan(planned: Sequence[PlannedRun]) -> str:
    """Return the ``--dry-run`` listing: totals, then each command with what it writes and trains.

    Parameters
    ----------
    planned : sequence of PlannedRun
        What :func:`plan` returned.
    """
    known = [p.estimate for p in planned if p.estimate is not None]
    epochs = sum(p.trainings * p.run.epochs for p in planned)
    time = (
        f"about {_duration(sum(known))} by the times of the records they replace"
        if known
        else "no estimate (no earlier records)"
    )
    if known and len(known) < len(planned):
        time += f" ({len(planned) - len(known)} without an earlier record not counted)"
    lines = [
        f"would run {len(planned)} commands as tasks of one OpenMP thread each: "
        f"{sum(p.trainings for p in planned)} trainings (variant x seed), {epochs} epochs; "
        f"{time}.",
        "",
    ]
    for i, p in enumerate(planned, 1):
        run = p.run
        lines += [
            f"{i}. gluon-bn {shlex.join(p.argv)}",
            f"   writes {p.record}: {', '.join(run.variants)} x seeds "
            f"{' '.join(map(str, run.seeds))} x {run.epochs} epochs; loop {run.loop}, "
            f"pipeline {run.pipeline}, BN {run.bn_impl}, hybridize {run.hybridize}, "
            f"{run.dataset}"
            + (f", first {run.limit} examples" if run.limit else "")
            + (f"; about {_duration(p.estimate)}" if p.estimate is not None else ""),
        ]
    folders = sorted({p.record.parent for p in planned})
    left = sorted(
        {path for folder in folders for path in folder.glob("*.json")} - {p.record for p in planned}
    )
    lines += [
        "",
        "Every record also names the machine it ran on (CPU model and count, MXNet, "
        "engine and threads).",
        "Records there that no command rewrites: "
        + (", ".join(map(str, left)) if left else "none")
        + ".",
    ]
    return "\n".join(lines)


def reproduce_all(
    extra: Sequence[str] = (),
    only: Sequence[str] = (),
    *,
    jobs: Optional[int] = None,
    scheduler: Optional[str] = None,
    task: Optional[Callable] = None,
    file: Optional[TextIO] = None,
) -> int:
    """Train every published record's runs as tasks (variant x seed) and write each record.

    Every task trains with one OpenMP thread (the committed records' setting), in this
    process (``--jobs 1``, the default) or on Dask workers; this process alone writes the
    records, each rewritten whenever one of its runs finishes (nothing finished is lost).

    Parameters
    ----------
    extra : sequence of str
        Appended to every command (see :func:`published_commands`).
    only : sequence of str
        Run only the commands writing these records (see :func:`select`).
    jobs, scheduler : optional
        As ``gluon-bn reproduce --jobs/--scheduler`` (:func:`gluon_bn.scale.backend.open_backend`).
    task : callable, optional
        What trains one run (default :func:`gluon_bn.run.tasks.reproduce_run`; tests stub it).
    file : text stream, optional
        Where the runs' lines go (default stdout).

    Returns
    -------
    int
        0, :data:`gluon_bn.status.EXIT_RUNS_FAILED` when some runs failed (the others are
        written), or :data:`gluon_bn.status.EXIT_INTERRUPTED` after Ctrl-C.
    """
    from gluon_bn.scale.backend import WORKER_ENVIRONMENT, open_backend
    from gluon_bn.scale.fanout import fan_out

    file = file or sys.stdout
    if "mxnet" not in sys.modules:  # serial tasks train here: one thread, as on a worker
        os.environ.update(WORKER_ENVIRONMENT)
    if task is None:
        from gluon_bn.run.tasks import reproduce_run as task
    from gluon_bn.report import write_outputs
    from gluon_bn.run.reproduce import output_stem

    planned = select(plan(extra), only)
    device = parse_extra(extra).device
    units, results, failed = {}, {}, []
    for p in planned:
        for seed in p.run.seeds:
            for variant in p.run.variants:
                units[f"{p.record.stem}/{variant}/seed-{seed}"] = (p, seed, variant)
    print(f"{len(units)} run(s) for {len(planned)} record(s)", file=file, flush=True)

    def done(key, answer) -> None:
        p, seed, variant = units[key]
        record, lines, env = answer
        print(lines, end="", file=file, flush=True)
        entry = results.setdefault(p.record, {"runs": {}, "env": env})
        entry["runs"][(seed, variant)] = record
        order = [(s, v) for s in p.run.seeds for v in p.run.variants]
        result = Reproduction(
            p.run, entry["env"], [entry["runs"][u] for u in order if u in entry["runs"]]
        )
        write_outputs(result, p.record.parent, output_stem(p.run))
        print(f"wrote {p.record} ({len(result.runs)} of {len(order)} runs)", file=file, flush=True)

    def lost(key, line) -> None:
        print(f"{key}: FAILED: {line}", file=file, flush=True)

    try:
        with open_backend(jobs, scheduler, file=file) as backend:
            print(f"on {backend.describe()}, one OpenMP thread per run", file=file, flush=True)
            failed = fan_out(
                backend,
                "reproduce_all",
                {
                    key: (task, (p.recipe, p.options, variant, seed, device))
                    for key, (p, seed, variant) in units.items()
                },
                done,
                lost,
            )
    except KeyboardInterrupt:
        print("reproduce_all: interrupted; every finished run is written", file=sys.stderr)
        return EXIT_INTERRUPTED
    if failed:
        print(
            "reproduce_all: these runs failed (the others are written):\n"
            + "\n".join(f"{key}: {line}" for key, line in failed),
            file=sys.stderr,
        )
        return EXIT_RUNS_FAILED
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``scripts/reproduce_all.py [--dry-run] [REPRODUCE OPTIONS]``: regenerate results/, or list it.

    Parameters
    ----------
    argv : sequence of str, optional
        The script's arguments (default: the command line's).
    """
    parser = argparse.ArgumentParser(
        prog="scripts/reproduce_all.py",
        allow_abbrev=False,
        description="Regenerate every record under results/ (seeds 0 1 2, the package's "
        "current defaults), one `gluon-bn reproduce` process per record. Other "
        "arguments are appended to every command (e.g. --limit 2000 --epochs 1 "
        "--out /tmp/try to try it quickly).",
    )
    parser.add_argument(
        "--dry-run",
        "--list",
        action="store_true",
        dest="dry_run",
        help="print the commands, what each writes and trains, and the "
        "estimated time, without training",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="train the runs on a local Dask cluster of N worker processes "
        "(one OpenMP thread each, the records' setting)",
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        help="train the runs on the Dask scheduler at ADDRESS (default $GLUON_BN_SCHEDULER)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        default=(),
        metavar="RECORD",
        help="run only the commands writing these records (names without "
        ".json, e.g. d2l-en d2l-zh_fast_bn-fast; --dry-run lists them)",
    )
    args, extra = parser.parse_known_args(argv)
    try:
        if args.dry_run:
            try:
                print(format_plan(select(plan(extra), args.only)), flush=True)
            except BrokenPipeError:  # `--dry-run | head`: the reader left, nothing is wrong
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        return reproduce_all(extra, args.only, jobs=args.jobs, scheduler=args.scheduler)
    except ValueError as err:
        print(f"reproduce_all: error: {err}", file=sys.stderr)
        return 2
