"""What the documents printed: per-epoch lines and final numbers, per variant, and the numbers
the same lesson printed elsewhere (pure data).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple


@dataclass(frozen=True)
class EpochLine:
    """One line a document printed: an epoch's loss, accuracies and time, where shown."""

    epoch: int
    loss: float
    train_acc: float
    test_acc: float
    seconds: Optional[float] = None


@dataclass(frozen=True)
class PrintedRun:
    """What a document printed for one variant: per-epoch lines, or only the final one.

    Attributes
    ----------
    variant : {"scratch", "gluon", "plain"}
        Which network printed it.
    device : str
        Where it ran, as the document says (``"gpu(0)"``, ``"cpu(0)"``, ``"cuda:0"``).
    lines : tuple of EpochLine
        The printed lines; a document that printed only the end has one, numbered with
        its last epoch.
    examples_per_sec : float, optional
        Training throughput, where the document printed it (document 002).
    note : str
        Anything a reader must know to compare with it.
    """

    variant: str
    device: str
    lines: Tuple[EpochLine, ...]
    examples_per_sec: Optional[float] = None
    note: str = ""


@dataclass(frozen=True)
class PublishedRuns:
    """Numbers the same lesson printed somewhere other than the document, and where.

    Attributes
    ----------
    source : str
        Provenance: which edition or copy printed them and where we read them.
    runs : tuple of PrintedRun
        What it printed, per variant.
    """

    source: str
    runs: Tuple[PrintedRun, ...]
