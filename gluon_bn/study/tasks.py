"""What a worker runs for a study: one configuration with one seed, as data.

A light module (no MXNet at import): :func:`gluon_bn.scale.backend.one_thread` sets the
worker's OpenMP threads before the task's own imports load MXNet. Tasks write no files.
"""

from __future__ import annotations

import functools
import io
from typing import Tuple

from gluon_bn.scale.backend import one_thread


def study_run(study_name: str, settings, config, seed: int, device: str) -> Tuple[dict, dict]:
    """Train and measure one configuration of a study with one seed; return (run, environment).

    Parameters
    ----------
    study_name : str
        A name in :data:`gluon_bn.study.registry.STUDIES`.
    settings : gluon_bn.study.registry.Settings
        The study's checked settings.
    config : gluon_bn.study.study_record.Configuration
        What to train (its runs are not used).
    seed : int
        The run's seed.
    device : str
        As ``--device`` (parsed on the worker).
    """
    one_thread()
    from gluon_bn.report.provenance import environment

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
