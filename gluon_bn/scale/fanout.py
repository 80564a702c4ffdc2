"""The one fan-out of the package: submit every unit's task to a backend and hand each outcome
over as it finishes (a reproduction's variants and seeds, a study's runs, the published runs).
"""

from __future__ import annotations

import uuid
from typing import Callable, Hashable, List, Mapping, Optional, Tuple

from gluon_bn.scale.backend import ALLOWED_FAILURES


class RunsFailed(RuntimeError):
    """Some runs raised (or lost their worker too often); every other run finished and is kept.

    The message has one line per failed run: what it was (configuration or variant, seed)
    and the last line of its error.
    """


def failure_line(error: BaseException) -> str:
    """Return the last line of a task's error, naming a worker lost too often."""
    if type(error).__name__ == "KilledWorker":
        return (
            f"its worker died {ALLOWED_FAILURES + 1} times (killed or out of memory); "
            f"the task was given up"
        )
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[-1] if text else ''}".rstrip(": ")


def fan_out(
    backend,
    name: str,
    units: Mapping[Hashable, Tuple[Callable, tuple]],
    on_done: Callable[[Hashable, object], None],
    on_failed: Optional[Callable[[Hashable, str], None]] = None,
) -> List[str]:
    """Run every unit's task on `backend` and hand each outcome over as it finishes.

    The one fan-out of the package: a reproduction's variants and seeds, a study's runs and
    the published records' runs all go through here.

    Parameters
    ----------
    backend
        From :func:`open_backend` (serial: the units run in the order given).
    name : str
        Names this submission in the tasks' keys (``NAME/UNIT/TOKEN``; a fresh token per call,
        so a unit submitted again after an interruption is a new task).
    units : mapping
        Unit (any hashable label, e.g. ``(seed, variant)``) to ``(fn, args)``.
    on_done : callable
        ``on_done(unit, result)`` for a task that returned.
    on_failed : callable, optional
        ``on_failed(unit, line)`` for a task that raised or was given up (its error's last
        line); the other tasks go on either way.

    Returns
    -------
    list of (unit, str)
        Every failed unit with its error's last line, in the order they failed.
    """
    token = uuid.uuid4().hex[:8]
    keys = {
        f"{name}/{'/'.join(map(str, unit)) if isinstance(unit, tuple) else unit}/{token}": unit
        for unit in units
    }
    futures = [
        backend.submit(units[unit][0], *units[unit][1], key=key) for key, unit in keys.items()
    ]
    failed = []
    for future in backend.as_completed(futures):
        unit, error = keys[future.key], future.exception()
        if error is None:
            on_done(unit, future.result())
            continue
        line = failure_line(error)
        failed.append((unit, line))
        if on_failed is not None:
            on_failed(unit, line)
    return failed
