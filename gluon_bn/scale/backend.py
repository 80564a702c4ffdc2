"""The execution backends: serial in this process, a local Dask cluster, or a remote scheduler.

Every backend has the same two verbs, as ``concurrent.futures`` and Dask's ``Client`` do:
``submit(fn, *args, key=...)`` returns a future and ``as_completed(futures)`` yields them
as they finish. The serial backend runs each task when ``as_completed`` reaches it, in
submission order, so a serial study is the same loop as a distributed one.

Only the coordinating process writes files: tasks are callables that return data, defined
beside the code that submits them; this package knows none of its callers.
A worker that dies mid-task (SIGKILL, out of memory) has its task rescheduled by Dask on
another worker, up to :data:`ALLOWED_FAILURES` times; after that the future raises
``KilledWorker``, which the caller reports as a failed run.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import sys
from typing import Callable, Iterable, Iterator, Optional, TextIO

ALLOWED_FAILURES = 3  # workers a task may take down with it before it counts as failed
CONNECT_TIMEOUT = 30  # seconds to reach a scheduler (and to see its first worker)
TIMEOUT_VARIABLE = "GLUON_BN_CONNECT_TIMEOUT"  # overrides CONNECT_TIMEOUT (seconds)
SCHEDULER_VARIABLE = "GLUON_BN_SCHEDULER"
# What every run on a worker trains with: one OpenMP thread (set before MXNet loads there).
WORKER_ENVIRONMENT = {"OMP_NUM_THREADS": "1", "MXNET_ENGINE_TYPE": "NaiveEngine"}


class BackendError(ValueError):
    """A backend cannot be used as asked (bad --jobs, unreachable scheduler, wrong workers)."""


def package_version() -> str:
    """Return the installed gluon-bn version (what coordinator and workers must share)."""
    try:
        return importlib.metadata.version("gluon-bn")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


class _Done:
    """The future of a task the serial backend has run: its result or its exception."""

    def __init__(self, fn: Callable, args: tuple, key: str):
        self.fn, self.args, self.key = fn, args, key
        self._result, self._error, self._ran = None, None, False

    def run(self) -> None:
        try:
            self._result = self.fn(*self.args)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as err:  # a task's failure is data: the caller reports it
            self._error = err
        self._ran = True

    def exception(self) -> Optional[BaseException]:
        return self._error

    def result(self):
        if self._error is not None:
            raise self._error
        return self._result


class SerialBackend:
    """Run every task in this process, one after another, when :meth:`as_completed` reaches it."""

    workers = 1
    distributed = False

    def describe(self) -> str:
        """The backend in words, for the line printed before the runs."""
        return "serial, in this process"

    def submit(self, fn: Callable, *args, key: str) -> _Done:
        """Return a future for ``fn(*args)``; it runs when :meth:`as_completed` yields it."""
        return _Done(fn, args, key)

    def as_completed(self, futures: Iterable[_Done]) -> Iterator[_Done]:
        """Run the tasks in submission order, yielding each when it has finished."""
        for future in futures:
            future.run()
            yield future

    def busy(self) -> int:
        return 1

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class DaskBackend:
    """Run tasks on the workers of a Dask ``Client``: a local cluster it owns, or a remote one.

    Parameters
    ----------
    client : distributed.Client
        Connected, with at least one worker.
    cluster : distributed.LocalCluster, optional
        Closed with the backend when given (the local cluster ``--jobs N`` starts).
    where : str
        The backend in words (``local Dask cluster, 2 workers`` / ``Dask scheduler at ...``).
    """

    distributed = True

    def __init__(self, client, cluster=None, where: str = "Dask"):
        self.client, self.cluster, self.where = client, cluster, where

    @property
    def workers(self) -> int:
        return max(1, len(self.client.scheduler_info(n_workers=-1).get("workers", {})))

    def describe(self) -> str:
        return self.where

    def submit(self, fn: Callable, *args, key: str):
        """Submit ``fn(*args)`` under `key` (unique per run), never cached as pure."""
        return self.client.submit(fn, *args, key=key, pure=False)

    def as_completed(self, futures: Iterable) -> Iterator:
        from distributed import as_completed

        return iter(as_completed(list(futures)))

    def busy(self) -> int:
        """Return how many workers run a task now."""
        try:
            processing = self.client.processing()
        except Exception:  # the scheduler is going away: nothing to show
            return 0
        return sum(1 for tasks in processing.values() if tasks)

    def close(self) -> None:
        """Close the client and, for ``--jobs N``, shut the local cluster and its workers down."""
        try:
            self.client.close(timeout=10)
        except Exception:
            pass
        if self.cluster is not None:
            try:
                self.cluster.close(timeout=20)
            except Exception:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def only_coordinates(jobs: Optional[int], scheduler: Optional[str]) -> bool:
    """Return True when runs given `jobs` and `scheduler` all go to Dask workers.

    A scheduler (given, or ``GLUON_BN_SCHEDULER``), or more than one job on a machine with
    more than one usable core: then this process only coordinates and trains nothing itself.
    """
    from gluon_bn.runtime import usable_cores

    return bool(
        scheduler
        or os.environ.get(SCHEDULER_VARIABLE)
        or (jobs and jobs > 1 and usable_cores() > 1)
    )


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
    from gluon_bn.runtime import threads_in_effect
    from gluon_bn.runtime.loader import LOADED_WITH

    threads = threads_in_effect(LOADED_WITH)
    if threads != 1:
        raise RuntimeError(
            f"this worker loaded MXNet with {threads} OpenMP threads before "
            f"gluon-bn's first task; start it with OMP_NUM_THREADS=1"
        )


def import_distributed():
    """Return Dask's ``distributed`` module, or raise BackendError naming the extra to install."""
    try:
        import distributed
    except ImportError as err:
        raise BackendError(
            "--jobs above 1 and --scheduler need Dask's distributed: "
            "pip install 'gluon-bn[distributed]'"
        ) from err
    return distributed


def _dask_config():
    import dask

    return dask.config.set(
        {
            "distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
            "distributed.logging.distributed": "error",
        }
    )


def local_cluster(jobs: int):
    """Start a local Dask cluster of `jobs` worker processes, one task at a time each.

    Every worker process gets :data:`WORKER_ENVIRONMENT` (one OpenMP thread) and the
    coordinator's ``DNNL_MAX_CPU_ISA`` and data settings before anything loads MXNet there.
    """
    distributed = import_distributed()
    env = dict(WORKER_ENVIRONMENT)
    for key in ("DNNL_MAX_CPU_ISA", "GLUON_BN_DATA", "MXNET_HOME", "GLUON_BN_CACHE"):
        if os.environ.get(key):
            env[key] = os.environ[key]
    with _dask_config():
        cluster = distributed.LocalCluster(
            n_workers=jobs,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
            env=env,
        )
        client = distributed.Client(cluster)
    return client, cluster


def check_workers(client, address: str) -> None:
    """Refuse workers that cannot import gluon-bn or run another version than this process's."""
    mine = package_version()
    try:
        answers = client.run(worker_version, on_error="return")
    except Exception as err:
        raise BackendError(f"the workers of {address} did not answer: {err}") from err
    for worker, answer in answers.items():
        if isinstance(answer, BaseException):
            raise BackendError(
                f"worker {worker} of {address} cannot run gluon-bn ({answer}); "
                f"install gluon-bn {mine} there"
            )
        if answer != mine:
            raise BackendError(
                f"worker {worker} of {address} runs gluon-bn {answer}, this "
                f"process {mine}: install the same version on every worker"
            )


def connect(address: str, timeout: float = CONNECT_TIMEOUT):
    """Return a Client of the scheduler at `address`, with a worker, or raise BackendError."""
    distributed = import_distributed()
    with _dask_config():
        try:
            client = distributed.Client(address, timeout=timeout)
        except (OSError, TimeoutError) as err:
            raise BackendError(
                f"cannot reach the Dask scheduler at {address} within "
                f"{timeout:g} s ({type(err).__name__}): start it with "
                f"`dask scheduler`, or check the address"
            ) from err
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (OSError, TimeoutError) as err:
        client.close()
        raise BackendError(
            f"the Dask scheduler at {address} has no worker after {timeout:g} s: "
            f"start some with `dask worker {address}`"
        ) from err
    return client


def check_jobs(jobs: Optional[int], scheduler: Optional[str]) -> None:
    """Refuse ``--jobs`` below 1, or together with ``--scheduler``, in one line (no Dask needed).

    Raises
    ------
    BackendError
        A ValueError naming what was wrong.
    """
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int)):
        raise BackendError(f"--jobs must be a whole number of at least 1, got {jobs!r}")
    if jobs is not None and jobs < 1:
        raise BackendError(f"--jobs must be at least 1, got {jobs}")
    if scheduler and jobs not in (None, 1):
        raise BackendError(
            "give --jobs N (a local cluster) or --scheduler ADDRESS (an existing one), not both"
        )


def open_backend(
    jobs: Optional[int] = None,
    scheduler: Optional[str] = None,
    *,
    file: Optional[TextIO] = None,
    cores: Optional[int] = None,
    oversubscribe: bool = False,
    timeout: Optional[float] = None,
):
    """Return the backend ``--jobs`` and ``--scheduler`` ask for, checked before any training.

    Parameters
    ----------
    jobs : int, optional
        Worker processes of a local cluster; None or 1: serial (today's behaviour).
    scheduler : str, optional
        Address of a running Dask scheduler (default ``$GLUON_BN_SCHEDULER``).
    file : text stream, optional
        Where the one line about a clamped ``--jobs`` goes (default stdout).
    cores : int, optional
        Usable cores (default :func:`gluon_bn.runtime.usable_cores`).
    oversubscribe : bool
        Allow more local workers than cores (measurements of oversubscription only).
    timeout : float, optional
        Seconds to reach a scheduler and see a worker (default ``$GLUON_BN_CONNECT_TIMEOUT``
        or :data:`CONNECT_TIMEOUT`).

    Raises
    ------
    BackendError
        For ``--jobs`` below 1, ``--jobs`` with ``--scheduler``, Dask missing, an unreachable
        scheduler, or workers without gluon-bn or with another version of it.
    """
    from gluon_bn.runtime import usable_cores

    file = file or sys.stdout
    scheduler = scheduler or os.environ.get(SCHEDULER_VARIABLE) or None
    check_jobs(jobs, scheduler)
    if scheduler:
        if timeout is None:
            try:
                timeout = float(os.environ.get(TIMEOUT_VARIABLE) or CONNECT_TIMEOUT)
            except ValueError:
                raise BackendError(
                    f"{TIMEOUT_VARIABLE} must be a number of seconds, got "
                    f"{os.environ[TIMEOUT_VARIABLE]!r}"
                ) from None
        client = connect(scheduler, timeout)
        backend = DaskBackend(client, None, f"the Dask scheduler at {scheduler}")
        try:
            check_workers(client, scheduler)
        except BackendError:
            backend.close()
            raise
        return backend
    if jobs in (None, 1):
        return SerialBackend()
    cores = cores or usable_cores()
    if jobs > cores and not oversubscribe:
        print(
            f"note: --jobs {jobs} is more than the {cores} usable core(s): clamped to "
            f"--jobs {cores} (each worker trains with one OpenMP thread)",
            file=file,
        )
        jobs = cores
        if jobs == 1:
            return SerialBackend()
    client, cluster = local_cluster(jobs)
    backend = DaskBackend(client, cluster, f"a local Dask cluster of {jobs} worker processes")
    try:
        check_workers(client, "the local cluster")
    except BackendError:
        backend.close()
        raise
    return backend
