"""Run one study: state it, measure every configuration with every seed (resuming), judge, write.

The loop is over seeds, then configurations (in reverse order on odd seeds, so that a slow
drift of the machine's speed does not favour one configuration); every finished run goes
to the progress file at once (:class:`gluon_bn.study.record.Progress`), so running the
same study again with the same options and ``--out`` skips what is done and redoes only
the run that was interrupted. The verdict is computed only from the finished record.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, TextIO, Tuple

from tqdm import tqdm

from gluon_bn.report import prepare_directory
from gluon_bn.study.plans import CONFIGURATIONS, judge
from gluon_bn.study.record import Configuration, Progress, StudyRecord
from gluon_bn.study.registry import Settings, Study
from gluon_bn.study.report import write_study

Measure = Callable[[Configuration, int], dict]  # (configuration, seed) -> the run's numbers


def schedule(configs: List[Configuration], seeds: int) -> List[Tuple[int, Configuration]]:
    """Return (seed, configuration) pairs in running order: seed by seed, alternating direction."""
    order = []
    for seed in range(seeds):
        order += [(seed, c) for c in (configs if seed % 2 == 0 else configs[::-1])]
    return order


def describe(study: Study, settings: Settings) -> List[str]:
    """Return the lines printed before a study runs: what is measured and what decides."""
    return [f"== study {study.name}: {study.claim}",
            f"   source: {study.source}",
            f"   measurement: {study.measurement}",
            f"   criterion: {study.criterion}",
            f"   {study.scale_note(settings)}"]


def _stderr_is_terminal() -> bool:
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


def run_study(study: Study, settings: Settings, out_dir: Path, *, quick: bool = False,
              ctx=None, file: Optional[TextIO] = None, progress: bool = True,
              measure: Optional[Measure] = None) -> Tuple[StudyRecord, Dict[str, Path]]:
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
        ``(configuration, seed) -> run`` in place of the study's experiment (tests).

    Returns
    -------
    (record, paths)
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
        print("   (the progress file there was written at other options; starting afresh)",
              file=file)
    units = schedule(configs, settings.seeds)
    if store.count():
        print(f"   resuming: {store.count()} of {len(units)} runs already finished", file=file)
    if measure is None:
        from gluon_bn.study.experiments import Experiment  # MXNet from here on
        measure = Experiment(study, settings, ctx, file=file).measure
    environment = _environment(ctx)
    bar = tqdm(total=len(units), desc=study.name, unit="run", file=sys.stderr,
               disable=not (progress and _stderr_is_terminal()), dynamic_ncols=True)
    try:
        for seed, config in units:
            if store.done(config.name, seed) is None:
                bar.set_postfix_str(f"{config.name}, seed {seed}", refresh=False)
                run = {"seed": seed, **measure(config, seed)}
                store.add(config.name, seed, run, environment)
                print(f"   {config.name}, seed {seed}: {_brief(run)}", file=file, flush=True)
            bar.update(1)
    finally:
        bar.close()
    for config in configs:
        config.runs = [store.done(config.name, seed) for seed in range(settings.seeds)]
    verdict, verdicts = judge(study.name, configs, settings)
    record = StudyRecord(study.name, study.claim, study.source, study.measurement,
                         study.criterion, study.scale_note(settings), options,
                         store.environment(environment), configs, verdict, verdicts)
    print(f"   verdict: {verdict}", file=file, flush=True)
    return record, write_study(record, out_dir)


def _environment(ctx) -> dict:
    # the submodule's function: once imported, the submodule shadows gluon_bn.report.environment
    from gluon_bn.report.environment import environment
    return environment(ctx or "cpu(0)")


def _brief(run: dict) -> str:
    """A run's scalar numbers in one short line."""
    if run.get("diverged"):
        return f"diverged ({run.get('diverged_at')})"
    return ", ".join(f"{k} {v:.4g}" for k, v in run.items()
                     if k != "seed" and isinstance(v, (int, float)) and not isinstance(v, bool))
