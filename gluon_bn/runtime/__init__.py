"""MXNet's runtime, in one place: the settings applied before MXNet loads, the probe that chooses
them, its cache, the machine facts records keep, and the watcher that reacts to load mid-run.

- :mod:`~gluon_bn.runtime.settings`: the engine, OpenMP threads and wait policy (pure data and
  the environment); :mod:`~gluon_bn.runtime.load`: how busy the machine is at the start;
- :mod:`~gluon_bn.runtime.probe`: the candidates timed in fresh processes, cached per machine;
- :mod:`~gluon_bn.runtime.machine`: CPU model, oneDNN's instruction set and its cap (``--isa``);
- :mod:`~gluon_bn.runtime.select`: the one entry point a command calls before MXNet loads;
- :mod:`~gluon_bn.runtime.watch`: what happens when load arrives mid-run;
- :mod:`~gluon_bn.runtime.loader`: ``mx``, imported once, with an install hint.

Importing this package never imports MXNet; only :mod:`~gluon_bn.runtime.loader` does.
"""

from gluon_bn.runtime.load import busy_cores, claim_threads, runs_directory
from gluon_bn.runtime.machine import cpu_description
from gluon_bn.runtime.settings import (
    DEFAULT,
    ENGINES,
    RECORDED,
    REQUESTS,
    VARIABLES,
    WAIT_POLICY,
    Runtime,
    ThreadChoice,
    apply,
    choose_threads,
    cuda_build_installed,
    describe,
    mxnet_default_threads,
    requested_runtime,
    requested_threads,
    runs_on_cpu,
    synchronous_engine,
    threads_in_effect,
    tuned,
    usable_cores,
)
from gluon_bn.runtime.watch import IdleSteps, LoadWatch

__all__ = [
    "DEFAULT",
    "ENGINES",
    "RECORDED",
    "REQUESTS",
    "VARIABLES",
    "WAIT_POLICY",
    "Runtime",
    "ThreadChoice",
    "apply",
    "busy_cores",
    "requested_runtime",
    "choose_threads",
    "claim_threads",
    "IdleSteps",
    "LoadWatch",
    "cpu_description",
    "cuda_build_installed",
    "describe",
    "mxnet_default_threads",
    "requested_threads",
    "runs_directory",
    "runs_on_cpu",
    "synchronous_engine",
    "threads_in_effect",
    "tuned",
    "usable_cores",
]
