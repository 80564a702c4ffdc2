"""How busy the machine is when a run starts: other processes' load, and the thread counts other
gluon-bn runs claimed (one file per process under the temporary directory).
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Optional

from gluon_bn.runtime.settings import ThreadChoice


def busy_cores(interval: float = 0.3) -> Optional[float]:
    """Return how many cores other processes keep busy now, from two reads of /proc/stat.

    Called before MXNet loads, while this process is idle. None where /proc/stat is missing.
    (The load average would do, but it trails by a minute: it still counts a run that
    just ended.)
    """

    def totals():
        with open("/proc/stat") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values) - idle, sum(values)

    try:
        busy0, total0 = totals()
        time.sleep(interval)
        busy1, total1 = totals()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return (busy1 - busy0) / (total1 - total0) * (os.cpu_count() or 1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _computing(pid: int) -> bool:
    """Return False for a process stopped (Ctrl-Z, SIGSTOP) or a zombie: it takes no core."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc: count it
    return state not in ("T", "t", "Z")


def runs_directory() -> str:
    """Return where running gluon-bn commands note their thread counts (one file per process)."""
    return os.path.join(tempfile.gettempdir(), f"gluon-bn-runs-{os.getuid()}")


def claim_threads(choose, directory: Optional[str] = None) -> ThreadChoice:
    """Choose a thread count with the other gluon-bn runs in view, and note it for later runs.

    Two runs started together both see idle cores in /proc/stat (neither computes yet), so
    each run also writes its count to `directory` (one file per process, removed at exit;
    files of processes that died are ignored and removed). Choosing and writing happen
    under a file lock, so the second run sees the first. A stopped run (Ctrl-Z) claims
    nothing until it continues.

    Parameters
    ----------
    choose : callable
        ``choose(others) -> ThreadChoice``, where ``others`` is the number of OpenMP threads
        the live runs claimed (e.g. ``lambda n: choose_threads(cores, busy + n)``).
    directory : str, optional
        Default :func:`runs_directory`.
    """
    import atexit
    import fcntl

    directory = directory or runs_directory()
    try:
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            others = 0
            for name in os.listdir(directory):
                if not name.isdigit() or int(name) == os.getpid():
                    continue
                path = os.path.join(directory, name)
                if not _alive(int(name)):
                    os.remove(path)
                elif _computing(int(name)):
                    with open(path) as entry:
                        others += int(entry.read().strip() or 0)
            choice = choose(others)
            mine = os.path.join(directory, str(os.getpid()))
            with open(mine, "w") as entry:
                entry.write(str(choice.threads))
            atexit.register(lambda: os.path.exists(mine) and os.remove(mine))
            return choice
    except (OSError, ValueError):  # no writable temp directory: the load sample alone
        return choose(0)
