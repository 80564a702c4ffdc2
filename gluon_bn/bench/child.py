"""Measurements that need a fresh process: MXNet reads its engine and OpenMP threads once, when
it loads, and a process's peak memory is only its own when it ran nothing else.

The benches start ``python -m MODULE JOB`` (JOB as JSON); the module measures and prints its
answer as one JSON line, last on stdout (progress and MXNet's own log go to stderr).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Callable, Dict, Mapping, Optional, Sequence


def runtime_environment(variables: Mapping[str, str]) -> Dict[str, str]:
    """Return this process's environment with the runtime variables replaced by `variables`.

    Parameters
    ----------
    variables : mapping of str to str
        What the child runs with (e.g. :meth:`gluon_bn.runtime.Runtime.variables`); every
        other engine or thread variable inherited from this process is dropped.
    """
    from gluon_bn.runtime import VARIABLES
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    env.update(variables)
    return env


def run_json_child(module: str, job: object, *, what: str,
                   env: Optional[Mapping[str, str]] = None) -> dict:
    """Run ``python -m module JOB`` to the end; return the JSON object its stdout ends with.

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
        When the child fails; the message ends with the last of its stderr.
    """
    proc = subprocess.run([sys.executable, "-m", module, json.dumps(job)],
                          env=dict(os.environ if env is None else env),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def json_child_main(argv: Optional[Sequence[str]], *, prog: str, description: str,
                    answer: Callable[[dict], object]) -> int:
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
    parser.add_argument("job", help="the job, a JSON object (the bench that starts this "
                                    "module writes it)")
    args = parser.parse_args(argv)
    try:
        job = json.loads(args.job)
    except json.JSONDecodeError as err:
        parser.error(f"the job is not JSON ({err}): {args.job[:200]!r}")
    if not isinstance(job, dict):
        parser.error(f"the job must be a JSON object, got {args.job[:200]!r}")
    print(json.dumps(answer(job)))
    return 0
