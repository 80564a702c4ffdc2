"""Run one study: state it, measure every configuration with every seed (resuming), judge, write.

The loop is over seeds, then configurations (in reverse order on odd seeds, so that a slow
drift of the machine's speed does not favour one configuration); every finished run goes
to the progress file at once (:class:`gluon_bn.study.study_record.Progress`), so running the
same study again with the same options and ``--out`` skips what is done and redoes only
the run that was interrupted. The verdict is computed only from the finished record.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, TextIO, Tuple

from tqdm import tqdm

from gluon_bn.report import cpu_name, prepare_directory
from gluon_bn.study.judges import record_of
from gluon_bn.study.plans import CONFIGURATIONS
from gluon_bn.study.registry import Settings, Study
from gluon_bn.study.study_record import Configuration, Progress, StudyRecord
from gluon_bn.study.study_report import write_study
from gluon_bn.study.summary import write_summary

Measure = Callable[[Configuration, int], dict]  # (configuration, seed) -> the run's numbers


def schedule(configs: List[Configuration], seeds: Sequence[int]) -> List[Tuple[int, Configuration]]:
    """Return (seed, configuration) pairs in running order: seed by seed, alternating direction."""
    order = []
    for i, seed in enumerate(seeds):
        order += [(seed, c) for c in (configs if i % 2 == 0 else configs[::-1])]
    return order


def describe(study: Study, settings: Settings) -> List[str]:
    """Return the lines printed before a study runs: what is measured and what decides."""
    return [
        f"== study {study.name}: {study.claim}",
        f"   source: {study.source}",
        f"   measurement: {study.measurement}",
        f"   criterion: {study.statement()}",
        f"   {study.scale_note(settings)}",
    ]


def _stderr_is_terminal() -> bool:
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


def run_study(
    study: Study,
    settings: Settings,
    out_dir: Path,
    *,
    quick: bool = False,
    ctx=None,
    file: Optional[TextIO] = None,
    progress: bool = True,
    measure: Optional[Measure] = None,
    backend=None,
    device: str = "cpu",
) -> Tuple[StudyRecord, Dict[str, Path]]:
    """Run `study` at `settings` and write its record, report, figure and the summary to `out_dir`.

    Parameters
    ----------
    study : Study
        From :data:`gluon_bn.study.registry.STUDIES`.
    settings : Settings
        Checked (:meth:`Settings.check`) before anything is read or trained.
    out_dir : Path
        Where the files and the progress file go (created and probed first).
    quick : bool
        Recorded in the options (the quick settings are passed in `settings`).
    ctx : Context, optional
        Where to train (default CPU).
    file : text stream, optional
        Where the statement and the per-run lines go (default stdout).
    progress : bool
        A tqdm bar over configurations × seeds on stderr, shown only on a terminal.
    measure : callable, optional
        ``(configuration, seed) -> run`` in place of the study's experiment (tests; serial).
    backend : optional
        Where the runs train (:func:`gluon_bn.scale.backend.open_backend`); default serial,
        in this process. With a Dask backend each run is a task on a worker (one OpenMP
        thread) and only this process writes the progress file, as runs finish.
    device : str
        The ``--device`` string the workers parse.

    Returns
    -------
    (record, paths)

    Raises
    ------
    RunsFailed
        After every other run finished, when some raised: one line per failed run
        (configuration, seed, the error's last line). What finished is in the progress file.
    """
    file = file or sys.stdout
    settings.check(study.grid_kind)
    configs = CONFIGURATIONS[study.name](settings)
    out_dir = prepare_directory(Path(out_dir), "--out")
    options = {**settings.as_dict(), "quick": quick}
    store = Progress(out_dir / f"{study.name}.progress.json", study.name, options)
    for line in describe(study, settings):
        print(line, file=file, flush=True)
    if store.discarded:
        print(
            "   (the progress file there was written at other options; starting afresh)", file=file
        )
    units = schedule(configs, settings.seed_numbers)
    if store.count():
        print(f"   resuming: {store.count()} of {len(units)} runs already finished", file=file)
    from gluon_bn.scale.backend import SerialBackend
    from gluon_bn.scale.fanout import RunsFailed, fan_out

    backend = backend or SerialBackend()
    pending = [(seed, config) for seed, config in units if store.done(config.name, seed) is None]
    if backend.distributed:
        from gluon_bn.study.tasks import study_run

        environment = {}  # the workers': each finished run brings its own
        print(
            f"   {len(pending)} run(s) on {backend.describe()}, one OpenMP thread each",
            file=file,
            flush=True,
        )
        tasks = {
            (config.name, seed): (study_run, (study.name, settings, _bare(config), seed, device))
            for seed, config in pending
        }
    else:
        if measure is None:
            from gluon_bn.study.experiments import Experiment  # MXNet from here on

            measure = Experiment(study, settings, ctx, file=file).measure
        environment = _environment(ctx)
        if study.timed:
            check_same_machine(study.name, store, environment)
        tasks = {
            (config.name, seed): (
                lambda c, s: ({"seed": s, **measure(c, s)}, environment),
                (config, seed),
            )
            for seed, config in pending
        }
    bar = tqdm(
        total=len(units),
        initial=len(units) - len(pending),
        desc=study.name,
        unit="run",
        file=sys.stderr,
        dynamic_ncols=True,
        disable=not (progress and _stderr_is_terminal()),
    )
    started = time.perf_counter()

    def done(unit, answer) -> None:
        name, seed = unit
        run, env = answer
        store.add(name, seed, run, env)
        print(f"   {name}, seed {seed}: {_brief(run)}", file=file, flush=True)
        _advance(bar, backend, started, len(units) - len(pending))

    def lost(unit, line) -> None:
        name, seed = unit
        print(f"   {name}, seed {seed}: FAILED: {line}", file=file, flush=True)
        _advance(bar, backend, started, len(units) - len(pending))

    try:
        failed = fan_out(backend, study.name, tasks, done, lost)
    finally:
        bar.close()
    if failed:
        raise RunsFailed(
            f"study {study.name}: {len(failed)} of {len(units)} run(s) failed "
            f"(the {store.count()} finished are kept in {store.path}; the same "
            f"command runs only the missing ones):\n"
            + "\n".join(f"{name}, seed {seed}: {line}" for (name, seed), line in failed)
        )
    for config in configs:
        config.runs = [store.done(config.name, seed) for seed in settings.seed_numbers]
    record = record_of(
        study,
        settings,
        options,
        store.environment(environment),
        configs,
        made_at=store.code_states(),
    )
    print(f"   verdict: {record.verdict}", file=file, flush=True)
    paths = write_study(record, out_dir)
    paths["summary"] = write_summary(out_dir)
    return record, paths


def machine(environment: dict) -> str:
    """Return what a timing depends on in `environment`, in words: CPU, cores, oneDNN ISA, runtime."""
    return (
        f"{cpu_name(environment)} "
        f"({environment.get('cpu_count')} cores, oneDNN {environment.get('onednn_isa')}, "
        f"{environment.get('runtime')})"
    )


def check_same_machine(name: str, store: Progress, environment: dict) -> None:
    """Refuse to resume a timed study on another machine or runtime than its stored rounds'.

    Times taken on two machines (or with two thread counts) are not one sample: the ratios a
    timed study judges would mix two distributions. Nothing is lost: the progress file stays.

    Raises
    ------
    ValueError
        In one line, naming both machines and what to do.
    """
    here = machine(environment)
    there = sorted({machine(e) for e in store.environments} - {here})
    if store.count() and there:
        raise ValueError(
            f"{name}: the {store.count()} runs in {store.path} were timed on "
            f"{'; '.join(there)}, and this process runs on {here}: times from two machines "
            f"or runtimes are not one sample. Resume it where they were timed (--threads "
            f"sets the thread count), or move that file aside to start afresh here"
        )


def _bare(config: Configuration) -> Configuration:
    """`config` without its runs: what a worker needs to train it."""
    return Configuration(config.name, dict(config.settings))


def _advance(bar, backend, started: float, first: int) -> None:
    """One more run finished: the bar shows busy workers and runs per hour (since `first`)."""
    bar.update(1)
    hours = (time.perf_counter() - started) / 3600
    rate = (bar.n - first) / hours if hours > 0 else 0.0
    bar.set_postfix_str(
        f"{backend.busy()}/{backend.workers} workers busy, {rate:.0f} runs/h", refresh=False
    )


def _environment(ctx) -> dict:
    # the submodule's function: once imported, the submodule shadows gluon_bn.report.provenance
    from gluon_bn.report.provenance import environment

    return environment(ctx or "cpu(0)")


def _brief(run: dict) -> str:
    """A run's scalar numbers in one short line."""
    if run.get("diverged"):
        return f"diverged ({run.get('diverged_at')})"
    return ", ".join(
        f"{k} {v:.4g}"
        for k, v in run.items()
        if k != "seed" and isinstance(v, (int, float)) and not isinstance(v, bool)
    )
