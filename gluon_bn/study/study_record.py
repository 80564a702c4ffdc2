"""A study's record and its progress file: typed objects, schema-versioned JSON at the edge. No MXNet.

``NAME.json`` holds a :class:`StudyRecord`: the claim, its source, the measurement and the
criterion, the options (:class:`gluon_bn.study.registry.Settings`), the environment, the
configurations (each with its settings and one run per seed) and the verdict computed from
them. ``NAME.progress.json`` (:class:`Progress`) keeps every finished run as soon as it
finishes, so that a study run again with the same options and ``--out`` skips them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Union

from gluon_bn.report import write_atomically

SCHEMA_VERSION = 3  # 2: comparisons, failures and the deciding scale beside the verdict;
# 3: whether the criterion was stated before the runs, and checked facts
READS = (1, 2, 3)  # versions 1 and 2 hold the same runs; re-judging adds what 3 holds
PROGRESS_SCHEMA = 1
UNSTAMPED = {"commit": None, "entry": None, "uncommitted": None}  # runs of an unknown commit


def clean(value):
    """Return `value` with every non-finite float replaced by None (strict JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalars
        return clean(value.item())
    return value


@dataclass
class Configuration:
    """One configuration of a study: its name, its settings and one run per seed.

    Attributes
    ----------
    name : str
        Unique within the study, e.g. ``"train_ch5 / plain"``.
    settings : dict
        What distinguishes it (network, learning rate, batch size, loop, ...).
    runs : list of dict
        One per seed, in seed order, each with ``seed`` and the numbers measured.
    """

    name: str
    settings: Dict[str, object]
    runs: List[Dict[str, object]] = field(default_factory=list)

    def values(self, key: str) -> list:
        """Return `key` of every run, in seed order (None where a run lacks it)."""
        return [run.get(key) for run in self.runs]

    def to_json(self) -> dict:
        """Return the configuration as JSON-ready data (non-finite floats as None)."""
        return {"name": self.name, "settings": clean(self.settings), "runs": clean(self.runs)}

    @classmethod
    def from_json(cls, data: dict) -> "Configuration":
        """Return the configuration stored as `data`."""
        return cls(data["name"], dict(data["settings"]), [dict(r) for r in data["runs"]])


@dataclass
class StudyRecord:
    """What one study measured and concluded.

    Attributes
    ----------
    study, claim, source, measurement, criterion : str
        From :class:`gluon_bn.study.registry.Study`.
    scale : str
        The report's first line (fraction of the data, epochs against the documents').
    options : dict
        The settings (:meth:`Settings.as_dict`) and ``quick``.
    environment : dict
        Versions, device, threads (:func:`gluon_bn.report.provenance`).
    configurations : list of Configuration
    verdict : str
        Starts with "holds", "does not hold" or "inconclusive".
    verdicts : dict of str to str, optional
        One verdict per part, when the claim is a conjunction (loops, ablations, parts).
    comparisons : list of dict
        Every comparison the verdicts come from: difference, interval, confidence, method,
        margin, claim, outcome, the claim's p and, for a deciding one, its Holm-adjusted p
        and whether it survives (:meth:`gluon_bn.study.comparison.Comparison.to_json`; a sign
        test's also its per-seed values). Records judged before Holm lack the p-values until
        re-judged (``--regenerate``).
    failures : list of dict
        Every run that failed to train: configuration, seed and why (the learning-rate
        study's: flagged "diverged: ..." or "stuck: ...").
    deciding : dict
        The deciding scale (fraction, epochs, seeds) and how the record falls short of it
        (``shortfalls``, empty when it does not).
    stated : dict
        Whether the criterion was stated (committed) before the runs
        (:func:`gluon_bn.study.stated.stated_before`): ``before`` (True, False or None:
        unknown), ``note``, the criterion's commit now and the commit of every process that
        made runs (``runs``; empty for records made before they were stamped).
    facts : list of str
        What the study checked and states as fact, not as a verdict (the ablations' bias
        identity).
    """

    study: str
    claim: str
    source: str
    measurement: str
    criterion: str
    scale: str
    options: Dict[str, object]
    environment: Dict[str, object]
    configurations: List[Configuration]
    verdict: str = ""
    verdicts: Optional[Dict[str, str]] = None
    comparisons: List[Dict[str, object]] = field(default_factory=list)
    failures: List[Dict[str, object]] = field(default_factory=list)
    deciding: Dict[str, object] = field(default_factory=dict)
    stated: Dict[str, object] = field(default_factory=dict)
    facts: List[str] = field(default_factory=list)

    def configuration(self, name: str) -> Configuration:
        """Return the configuration called `name`."""
        for config in self.configurations:
            if config.name == name:
                return config
        raise KeyError(f"{self.study} has no configuration {name!r}")

    def to_json(self) -> dict:
        """Return the record as JSON-ready data (what ``NAME.json`` holds)."""
        data = {
            "schema": SCHEMA_VERSION,
            "study": self.study,
            "claim": self.claim,
            "source": self.source,
            "measurement": self.measurement,
            "criterion": self.criterion,
            "scale": self.scale,
            "options": clean(self.options),
            "environment": clean(self.environment),
            "configurations": [c.to_json() for c in self.configurations],
            "verdict": self.verdict,
        }
        if self.verdicts is not None:
            data["verdicts"] = dict(self.verdicts)
        data.update(
            comparisons=clean(self.comparisons),
            failures=clean(self.failures),
            deciding=clean(self.deciding),
            stated=clean(self.stated),
            facts=list(self.facts),
        )
        return data

    @classmethod
    def from_json(cls, data: dict) -> "StudyRecord":
        """Return the record stored as `data`; ValueError for a schema version it cannot read."""
        if data.get("schema") not in READS:
            raise ValueError(
                f"unknown study record schema {data.get('schema')!r}; this "
                f"gluon-bn reads versions {', '.join(map(str, READS))}"
            )
        return cls(
            data["study"],
            data["claim"],
            data["source"],
            data["measurement"],
            data["criterion"],
            data["scale"],
            dict(data["options"]),
            dict(data["environment"]),
            [Configuration.from_json(c) for c in data["configurations"]],
            data["verdict"],
            data.get("verdicts"),
            list(data.get("comparisons", [])),
            list(data.get("failures", [])),
            dict(data.get("deciding", {})),
            dict(data.get("stated", {})),
            list(data.get("facts", [])),
        )


def dumps(record: StudyRecord) -> str:
    """Return the JSON text of a study record."""
    return json.dumps(record.to_json(), indent=1, allow_nan=False) + "\n"


def load_study_record(path: Union[str, Path]) -> StudyRecord:
    """Read ``NAME.json`` into a :class:`StudyRecord`.

    Raises
    ------
    ValueError
        Naming the file, when it is not a study record.
    """
    path = Path(path)
    try:
        return StudyRecord.from_json(json.loads(path.read_text()))
    except (KeyError, TypeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a gluon-bn study record ({err!r})") from err


class Progress:
    """The finished runs of one study at given options, kept in ``NAME.progress.json``.

    A run is stored once it has finished (trained and measured), so an interrupted study
    loses only the run in progress, which is redone from its start. Progress written at
    other options is set aside (the file is replaced at the first new run).

    Parameters
    ----------
    path : Path
        The progress file.
    study : str
        The study's name.
    options : dict
        The options of this run (:meth:`Settings.as_dict` plus ``quick``).

    The file also keeps ``code``: what every process that added runs was made with (the
    commit checked out and the study's registry entry, :func:`gluon_bn.study.stated.code_state`),
    read when the record says whether its criterion was stated before the runs. It is not
    part of the options: progress is resumed whatever the commit.
    """

    def __init__(self, path: Path, study: str, options: Dict[str, object]):
        from gluon_bn.study.stated import code_state

        self.path, self.study, self.options = Path(path), study, clean(options)
        self.runs: Dict[str, Dict[str, dict]] = {}
        self.environments: List[dict] = []  # of the processes that ran them, in order
        self.codes: List[dict] = []  # their code states, in order (see above)
        self.code = code_state(study)  # this process's, taken before it trains
        self.discarded = False
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text())
            except (OSError, json.JSONDecodeError):
                data = {}
            same = (
                data.get("schema") == PROGRESS_SCHEMA
                and data.get("study") == study
                and data.get("options") == self.options
            )
            if same:
                self.runs = {name: dict(runs) for name, runs in data.get("runs", {}).items()}
                self.environments = list(data.get("environments", []))
                # runs stored by a process that kept no code state: not known
                self.codes = list(data.get("code", [UNSTAMPED] if self.runs else []))
            else:
                self.discarded = True

    def done(self, configuration: str, seed: int) -> Optional[dict]:
        """Return the finished run of `configuration` with `seed`, or None."""
        return self.runs.get(configuration, {}).get(str(seed))

    def count(self) -> int:
        """Return how many runs are finished."""
        return sum(len(runs) for runs in self.runs.values())

    def add(self, configuration: str, seed: int, run: dict, environment: dict) -> None:
        """Keep a finished run, and the environment it ran in, and write the file at once (atomically)."""
        self.runs.setdefault(configuration, {})[str(seed)] = clean(run)
        if not self.environments or self.environments[-1] != clean(environment):
            self.environments.append(clean(environment))
        if not self.codes or self.codes[-1] != self.code:
            self.codes.append(dict(self.code))
        text = (
            json.dumps(
                {
                    "schema": PROGRESS_SCHEMA,
                    "study": self.study,
                    "options": self.options,
                    "environments": self.environments,
                    "code": self.codes,
                    "runs": self.runs,
                },
                indent=1,
                allow_nan=False,
            )
            + "\n"
        )
        write_atomically(self.path, lambda p: p.write_text(text))

    def environment(self, current: dict) -> dict:
        """Return where the runs ran: the first process's environment, naming the runtimes of
        any that resumed them (``resumed_with``); `current` when no run is stored."""
        if not self.environments:
            return clean(current)
        first, later = self.environments[0], self.environments[1:]
        return {**first, "resumed_with": [e.get("runtime") for e in later]} if later else first

    def code_states(self) -> List[dict]:
        """Return the code state of every process that added runs, in order (see the class)."""
        return [dict(c) for c in self.codes]


def larger_on_disk(out_dir: Union[str, Path], study: str, settings) -> List[str]:
    """Return, per file of `study` in `out_dir` written at larger options than `settings`, why.

    The files read are the record (``NAME.json``) and the progress file
    (``NAME.progress.json``), whose finished runs a smaller run would set aside; files that
    are missing or unreadable count as nothing.

    Parameters
    ----------
    out_dir : str or Path
        The ``--out`` folder.
    study : str
        The study's name.
    settings : gluon_bn.study.settings.Settings
        What is about to run.
    """
    from gluon_bn.study.settings import smaller_than

    found = []
    for path, kind in (
        (Path(out_dir) / f"{study}.json", "record"),
        (Path(out_dir) / f"{study}.progress.json", "progress file"),
    ):
        try:
            options = json.loads(path.read_text()).get("options")
        except (OSError, ValueError, AttributeError):
            continue
        short = smaller_than(settings, options) if isinstance(options, dict) else []
        if short:
            found.append(f"{path} holds a larger {kind} ({', '.join(short)})")
    return found


def refuse_smaller(studies, out_dir: Union[str, Path], *, allowed: bool = False) -> None:
    """Refuse, in one line (ValueError), to write over larger records or progress before anything trains.

    Parameters
    ----------
    studies : sequence of (Study, Settings)
        What is about to run.
    out_dir : str or Path
        The ``--out`` folder.
    allowed : bool
        ``--allow-smaller``: replace them anyway.
    """
    if allowed:
        return
    found = [
        f"study {study.name}: {why}"
        for study, settings in studies
        for why in larger_on_disk(out_dir, study.name, settings)
    ]
    if found:
        raise ValueError(
            "; ".join(found) + "; these settings would replace it with a smaller "
            "one: write elsewhere with --out DIR (as --quick runs should), or add "
            "--allow-smaller"
        )
