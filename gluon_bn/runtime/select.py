"""The one entry point a command calls before MXNet loads: the runtime it asked for, chosen.

It caps oneDNN's instruction set (``--isa``, ``--portable``), takes the thread count asked for
(``--threads`` or ``OMP_NUM_THREADS``) or else chooses one for the load at the start and, on an
idle CPU, by the probe (:mod:`gluon_bn.runtime.probe`, cached), sets the variables
(:func:`gluon_bn.runtime.settings.apply`) and prints what runs, in one line, and why.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass
from typing import List, Optional, TextIO

from gluon_bn.runtime import probe, settings
from gluon_bn.runtime.load import busy_cores, claim_threads
from gluon_bn.runtime.machine import ISAS, onednn_isa, pin_isa


@dataclass(frozen=True)
class Request:
    """What a command asked of the runtime (its ``--runtime``, ``--threads``, ... arguments).

    Attributes
    ----------
    runtime : {"auto", "default", "tuned"}
    threads : int, optional
        ``--threads``.
    isa : str, optional
        ``--isa`` (a key of :data:`gluon_bn.runtime.machine.ISAS`).
    portable : bool
        ``--portable``: ``--isa avx2 --threads 1``.
    retune : bool
        Measure the probe again.
    device : str
        The ``--device`` string.
    trains_here : bool
        False when every run of the command goes to Dask workers (which train with one
        thread): then there is nothing to measure for.
    restore : dict, optional
        The runtime a checkpoint trained with (``--resume``,
        :func:`gluon_bn.run.resume.saved_runtime`): restored whatever the load; ``{}`` for a
        checkpoint that did not record it.
    """

    runtime: str = "auto"
    threads: Optional[int] = None
    isa: Optional[str] = None
    portable: bool = False
    retune: bool = False
    device: str = "cpu"
    trains_here: bool = True
    restore: Optional[dict] = None

    def pinned(self) -> "Request":
        """Return the request with ``--portable`` spelled out (ValueError when it conflicts)."""
        if not self.portable:
            return self
        if self.threads not in (None, 1) or self.isa not in (None, "avx2"):
            raise ValueError("--portable means --isa avx2 --threads 1; give either it or those")
        return dataclasses.replace(self, threads=1, isa="avx2")


@dataclass(frozen=True)
class Selected:
    """The runtime a command runs with: its threads and whether the count was asked for."""

    threads: settings.ThreadChoice
    requested: Optional[int]


def select(request: Request, out: Optional[TextIO] = None) -> Selected:
    """Choose and set MXNet's engine, threads and ISA for `request`; print what runs.

    Parameters
    ----------
    request : Request
        What the command asked for.
    out : text stream, optional
        Where the notes and the ``runtime:`` line go (default stdout).

    Raises
    ------
    ValueError
        In one line, for a request that cannot take effect (``--isa`` with MXNet loaded, a
        CPU without the ISA, ``--portable`` against ``--threads``/``--isa``).
    """
    out = out or sys.stdout
    request = request.pinned()
    if request.restore:
        return restore(request, out)
    notes: List[str] = []
    if request.restore == {}:
        notes.append(
            "note: this checkpoint was written before checkpoints kept their runtime, "
            "so the runtime is chosen afresh; give --threads with the count the run "
            "had (its record's omp_threads) to continue it exactly"
        )
    if request.isa:
        if "mxnet" in sys.modules:
            raise ValueError("--isa cannot take effect: MXNet is already loaded in this process")
        notes.append(pin_isa(request.isa))
    requested, more = settings.requested_threads(request.threads)
    notes += more
    on_cpu = settings.runs_on_cpu(request.device)
    # a process whose runs all go to workers trains nothing: no load check, no probe
    measure = requested is None and on_cpu and "mxnet" not in sys.modules and request.trains_here
    busy = busy_cores() if measure else None
    probing = measure and request.runtime in ("auto", "tuned")
    cores = settings.usable_cores()
    measured = []

    def pick(others):
        load = None if busy is None and not others else max(busy or 0, others)
        threads = settings.choose_threads(cores, load, requested)
        if probing and threads.reason == "idle":
            made = probe.choose(cores=cores, retune=request.retune, notes=notes)
            measured.append(made)
            rt = made.candidate.runtime
            return settings.ThreadChoice(
                rt.omp_threads or settings.mxnet_default_threads(cores), cores, "measured", load
            )
        return threads

    threads = claim_threads(pick)
    if measured:
        choice = measured[0].candidate.runtime
        os.environ["GLUON_BN_RUNTIME_CHOICE"] = (
            f"{measured[0].candidate.name} ({measured[0].reason})"
        )
    else:
        choice = settings.requested_runtime(
            request.runtime,
            device=request.device,
            threads=threads,
            spin=on_cpu and probe.spinning_preferred(),
        )
    notes += settings.apply(choice)
    if choice.omp_threads == threads.threads and threads.note():
        notes.append(threads.note())
    _announce(notes, f"; {measured[0].line()}" if measured else "", out)
    return Selected(threads, requested)


def _announce(notes: List[str], why: str, out: TextIO) -> None:
    """Print the notes, then the one ``runtime:`` line: what runs, and `why`."""
    for note in notes:
        print(note, file=out)
    print(f"runtime: {settings.describe()}{why}", file=out, flush=True)


def restore(request: Request, out: TextIO) -> Selected:
    """Set the runtime a checkpoint trained with (``request.restore``); print what runs.

    ``--threads`` or ``--isa`` that differ from the checkpoint's are refused in one line;
    where this machine cannot give the same arithmetic (an instruction set it lacks), one
    line says so and that the numbers will differ.

    In a process that already loaded MXNet (a library call) nothing can change; one line
    says what it runs with instead.

    Raises
    ------
    ValueError
        For a ``--threads``/``--isa`` (or ``--portable``) that contradicts the checkpoint.
    """
    saved = request.restore
    where = f"the checkpoint {saved.get('checkpoint', '')}".rstrip()
    threads = int(saved["omp_threads"])
    if request.threads is not None and request.threads != threads:
        raise ValueError(
            f"--threads {request.threads}: {where} trained with {threads} OpenMP "
            f"thread(s), and --resume continues it with those; drop --threads"
        )
    cap = saved.get("isa_cap")
    asked = ISAS[request.isa][0] if request.isa else None
    if asked is not None and asked != cap:
        raise ValueError(
            f"--isa {request.isa}: {where} trained with oneDNN "
            f"{'capped at ' + cap if cap else 'uncapped'}, and --resume continues "
            f"it so; drop --isa"
        )
    notes = []
    name = next((key for key, (value, _) in ISAS.items() if value == cap), None)
    if name is not None and "mxnet" in sys.modules:  # a library call: settings.apply says so
        notes.append(
            f"note: MXNet is already loaded in this process, so oneDNN's cap {cap} "
            f"cannot take effect"
        )
    elif name is not None:
        try:
            notes.append(pin_isa(name))
        except ValueError as err:
            notes.append(
                f"note: {err}; this machine cannot restore the checkpoint's "
                f"instruction set, so the numbers will differ from an uninterrupted run"
            )
    engine = next(
        (key for key, value in settings.ENGINES.items() if value == saved.get("engine")), None
    )
    wanted = settings.Runtime(engine, threads, saved.get("wait"))
    notes += settings.apply(wanted)
    found, before = onednn_isa(), saved.get("onednn_isa")
    if found and before and found != before and name is None:
        notes.append(
            f"note: {where} ran oneDNN at {before!r}, this machine runs {found!r}: "
            f"the numbers will differ from an uninterrupted run (--isa caps it)"
        )
    cores = settings.usable_cores()
    if threads > cores:
        notes.append(
            f"note: {where} trained with {threads} OpenMP threads and this machine "
            f"has {cores} usable core(s): the threads share them (slower), and the "
            f"numbers stay those of the run"
        )
    _announce(
        notes, f"; restored from {where} (--resume continues the run with its own runtime)", out
    )
    return Selected(settings.ThreadChoice(threads, cores, "requested"), threads)
