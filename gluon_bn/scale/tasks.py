"""What a worker runs: one study run, or one variant and seed of a reproduction, as data.

Each task makes sure the process that trains has one OpenMP thread before MXNet loads
there (:func:`one_thread`), so a run on a worker gives the record a serial run with
``--threads 1`` gives. Tasks write no files; they return the run, the lines a serial run
would have printed, and the environment they ran in.
"""
from __future__ import annotations

import functools
import io
import os
import sys
from typing import Dict, Tuple

from gluon_bn.scale.backend import WORKER_ENVIRONMENT, package_version


def worker_version() -> str:
    """Return the gluon-bn version of the process this runs in (asked of every worker)."""
    return package_version()


def one_thread() -> None:
    """Make this process train with one OpenMP thread under NaiveEngine.

    Before MXNet loads, the variables are set here; once it is loaded (an earlier task of
    this worker), it must already run with one thread, else RuntimeError says which.
    """
    if "mxnet" not in sys.modules:
        os.environ.update(WORKER_ENVIRONMENT)
        os.environ.pop("OMP_WAIT_POLICY", None)
        return
    from gluon_bn._mxnet import LOADED_WITH
    from gluon_bn.runtime import threads_in_effect
    threads = threads_in_effect(LOADED_WITH)
    if threads != 1:
        raise RuntimeError(f"this worker loaded MXNet with {threads} OpenMP threads before "
                           f"gluon-bn's first task; start it with OMP_NUM_THREADS=1")


def study_run(study_name: str, settings, config, seed: int, device: str) -> Tuple[dict, dict]:
    """Train and measure one configuration of a study with one seed; return (run, environment).

    Parameters
    ----------
    study_name : str
        A name in :data:`gluon_bn.study.registry.STUDIES`.
    settings : gluon_bn.study.registry.Settings
        The study's checked settings.
    config : gluon_bn.study.record.Configuration
        What to train (its runs are not used).
    seed : int
        The run's seed.
    device : str
        As ``--device`` (parsed on the worker).
    """
    one_thread()
    from gluon_bn.report.environment import environment
    experiment = _experiment(study_name, settings, device)
    run = experiment.measure(config, seed)
    return {"seed": seed, **run}, environment(experiment.ctx)


@functools.lru_cache(maxsize=2)
def _experiment(study_name: str, settings, device: str):
    """The worker's Experiment of a study at `settings`, made once per worker process.

    A serial study measures every run with one Experiment, which reads the data set once;
    a worker keeps its own the same way, so the second and later runs it trains skip
    reading Fashion-MNIST again (about 2 s a run on 2 cores). The data are only read.
    """
    from gluon_bn.device import parse_device
    from gluon_bn.study.experiments import Experiment
    from gluon_bn.study.registry import get_study
    notes = io.StringIO()
    ctx = parse_device(device, file=notes)
    return Experiment(get_study(study_name), settings, ctx, file=notes)


def reproduce_run(recipe_name: str, options, variant: str, seed: int,
                  device: str) -> Tuple[object, str, Dict[str, object]]:
    """Train one variant of a recipe with one seed; return (VariantRun, its printed lines, environment).

    Parameters
    ----------
    recipe_name : str
        As ``gluon-bn reproduce RECIPE``.
    options : gluon_bn.options.RunOptions
        The run's options (resolved on the worker, as a serial run resolves them).
    variant : str
        ``scratch``, ``gluon`` or ``plain``.
    seed : int
        The run's seed.
    device : str
        As ``--device``.
    """
    one_thread()
    from gluon_bn.device import parse_device
    from gluon_bn.report.environment import environment
    from gluon_bn.run.reproduce import resolve, run_variant
    lines = io.StringIO()
    ctx = parse_device(device, file=io.StringIO())
    run = resolve(recipe_name, options, file=io.StringIO())
    record = run_variant(run, variant, seed, ctx, file=lines, progress=False)
    return record, lines.getvalue(), environment(ctx)
