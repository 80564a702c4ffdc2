"""One result of ``gluon-bn doctor`` and the words of its status."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

OK, INFO, WARN, FAIL = "ok", "info", "warn", "FAIL"


@dataclass
class Check:
    """One result of the doctor.

    Attributes
    ----------
    topic : str
        What was checked, e.g. "data" or "gpu".
    status : {"ok", "info", "warn", "FAIL"}
        FAIL means ``gluon-bn reproduce`` cannot run; warn means it runs, not as well as it could.
    message : str
        One line saying what was found.
    details : list of str
        Further lines (paths, values).
    fix : str
        What to do, for warn and FAIL.
    """

    topic: str
    status: str
    message: str
    details: List[str] = field(default_factory=list)
    fix: str = ""
