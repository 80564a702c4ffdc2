"""What was stated before a study's runs: the git commits of its criterion and of its runs.

A study's criterion is its registry entry (:mod:`gluon_bn.study.registry`: measurement,
criterion, comparisons, margins, scale) with the named constants the entry reads (defined
in the registry or in :mod:`~gluon_bn.study.settings`, :mod:`~gluon_bn.study.stats`,
:mod:`~gluon_bn.study.distributions`). Two things are kept:

- when the runs are made (:func:`code_state`, stored by the progress file): the commit
  checked out, the entry's fingerprint (its source lines and the study as loaded, hashed)
  and whether those lines differed from that commit's (uncommitted);
- when a record is judged (:func:`criterion_state`): the last commit that changed those
  lines (``git log -L``), the fingerprint now, and whether the lines are uncommitted now.

:func:`stated_before` compares them: the criterion was stated before the runs only when the
runs were made under today's entry and that entry was committed when they were made. Without
git (an installed wheel, no repository) the commits are None and the answer is "unknown".
No MXNet.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import json
import re
import subprocess
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[2]  # the repository, when the package runs from one
REGISTRY = "gluon_bn/study/registry.py"
# where the named constants an entry reads are defined (the registry first)
CONSTANT_FILES = (
    REGISTRY,
    "gluon_bn/study/settings.py",
    "gluon_bn/study/stats.py",
    "gluon_bn/study/distributions.py",
)
Span = Tuple[int, int]  # 1-based, inclusive line numbers


def git(*args: str) -> Optional[str]:
    """Return git's output (stripped) run in :data:`ROOT`, or None when git or the repository is missing."""
    try:
        done = subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def in_repository() -> bool:
    """Return True when the package runs from a git checkout that tracks the registry.

    An installed wheel inside some other repository (a virtual environment in a project)
    does not count: the repository's top level must be the package's own root.
    """
    top = git("rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != ROOT:
        return False
    return git("ls-files", "--error-unmatch", REGISTRY) is not None


def entry_span(text: str, name: str) -> Optional[Span]:
    """Return the lines of the registry entry of study `name` in registry source `text`, or None.

    The entry is the ``Study(...)`` call whose ``name`` is `name`: from its first line to its
    closing parenthesis, however it is formatted.
    """
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", None) == "Study"
            and any(
                k.arg == "name" and isinstance(k.value, ast.Constant) and k.value.value == name
                for k in node.keywords
            )
        ):
            return node.lineno, node.end_lineno
    return None


def constant_span(text: str, constant: str) -> Optional[Span]:
    """Return the lines that define module-level `constant` in source `text` (its bracketed
    continuation included), or None."""
    lines = text.splitlines()
    pattern = re.compile(rf"^{re.escape(constant)}\s*(:[^=]*)?=")
    for i, line in enumerate(lines):
        if pattern.match(line):
            end, depth = i, _depth(line)
            while depth > 0 and end + 1 < len(lines):
                end += 1
                depth += _depth(lines[end])
            return i + 1, end + 1
    return None


def _depth(line: str) -> int:
    code = line.split("#", 1)[0]
    return sum(code.count(c) for c in "([{") - sum(code.count(c) for c in ")]}")


def stated_spans(sources: Mapping[str, str], name: str) -> Dict[str, List[Span]]:
    """Return, per file, the lines that state study `name`: its entry and the constants it names.

    Parameters
    ----------
    sources : mapping of str to str
        Source text by path (:data:`CONSTANT_FILES`, the registry among them).
    name : str
        The study.
    """
    entry = entry_span(sources.get(REGISTRY, ""), name)
    if entry is None:
        return {}
    spans: Dict[str, List[Span]] = {REGISTRY: [entry]}
    body = "\n".join(sources[REGISTRY].splitlines()[entry[0] - 1 : entry[1]])
    for constant in sorted(set(re.findall(r"\b[A-Z][A-Z0-9_]{2,}\b", body))):
        for path in CONSTANT_FILES:
            span = constant_span(sources.get(path, ""), constant)
            if span:
                spans.setdefault(path, []).append(span)
                break
    return spans


def stated_text(sources: Mapping[str, str], name: str) -> str:
    """Return the lines that state study `name` (:func:`stated_spans`), joined, file by file."""
    parts = []
    for path, spans in sorted(stated_spans(sources, name).items()):
        lines = sources[path].splitlines()
        parts += [f"# {path}"] + [line for a, b in spans for line in lines[a - 1 : b]]
    return "\n".join(parts)


def _sources_now() -> Dict[str, str]:
    """The stated files as this process reads them (installed or checked out)."""
    texts = {}
    for path in CONSTANT_FILES:
        try:
            texts[path] = (ROOT / path).read_text()
        except OSError:
            texts[path] = ""
    return texts


def _sources_at(commit: str) -> Dict[str, str]:
    return {path: git("show", f"{commit}:{path}") or "" for path in CONSTANT_FILES}


def fingerprint(name: str, sources: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """Return a short hash of study `name`'s stated lines and of the study as loaded (None: unknown study).

    The loaded study (its texts with the constants' values in them, comparisons, scales)
    is hashed too, so that a changed value behind an unchanged name changes the print.
    """
    from gluon_bn.study.registry import STUDIES

    study = STUDIES.get(name)
    if study is None:
        return None
    loaded = json.dumps(
        {"study": dataclasses.asdict(study), "statement": study.statement()},
        sort_keys=True,
        default=str,
    )
    text = stated_text(sources or _sources_now(), name)
    return hashlib.sha256((text + "\n" + loaded).encode()).hexdigest()[:16]


def code_state(name: str) -> Dict[str, object]:
    """Return what the runs of study `name` are made with: commit, fingerprint, uncommitted lines.

    ``commit`` is the commit checked out (None without git); ``uncommitted`` says whether the
    study's stated lines differ from that commit's (None without git).
    """
    head = git("rev-parse", "HEAD") if in_repository() else None
    uncommitted = None
    if head:
        uncommitted = stated_text(_sources_now(), name) != stated_text(_sources_at(head), name)
    return {"commit": head, "entry": fingerprint(name), "uncommitted": uncommitted}


@functools.lru_cache(maxsize=32)
def _last_change(head: str, ranges: Tuple[str, ...]) -> Optional[str]:
    args = [arg for r in ranges for arg in ("-L", r)]
    out = git("log", "-1", "--format=%H", "-s", *args, head)
    return out.split()[0] if out else None


def criterion_state(name: str) -> Dict[str, object]:
    """Return study `name`'s criterion now: the last commit that changed its stated lines.

    ``commit`` is that commit (None without git, or when the entry is not in HEAD);
    ``uncommitted`` whether the lines differ from HEAD's now; ``entry`` the fingerprint.
    """
    state = {"commit": None, "entry": fingerprint(name), "uncommitted": None}
    head = git("rev-parse", "HEAD") if in_repository() else None
    if not head:
        return state
    committed = _sources_at(head)
    state["uncommitted"] = stated_text(_sources_now(), name) != stated_text(committed, name)
    ranges = tuple(
        f"{a},{b}:{path}"
        for path, spans in sorted(stated_spans(committed, name).items())
        for a, b in spans
    )
    state["commit"] = _last_change(head, ranges) if ranges else None
    return state


def is_ancestor(older: str, newer: str) -> Optional[bool]:
    """Return whether commit `older` is `newer` or one of its ancestors (None: unknown)."""
    if not in_repository():
        return None
    try:
        done = subprocess.run(
            ["git", "-C", str(ROOT), "merge-base", "--is-ancestor", older, newer],
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return {0: True, 1: False}.get(done.returncode)


def _short(commit: Optional[str]) -> str:
    return commit[:10] if commit else "unknown"


def stated_before(
    criterion: Mapping[str, object],
    runs: Optional[Sequence[Mapping[str, object]]],
    ancestor: Optional[Callable[[str, str], Optional[bool]]] = None,
) -> Dict[str, object]:
    """Return whether the criterion was stated (committed) before the runs, and a sentence saying so.

    Parameters
    ----------
    criterion : mapping
        :func:`criterion_state` now.
    runs : sequence of mappings, optional
        :func:`code_state` of every process that made runs (None or empty: not recorded).
    ancestor : callable, optional
        ``(older, newer) -> bool or None`` (default :func:`is_ancestor`).

    Returns
    -------
    dict
        ``before``: True (stated before the runs), False (not: the runs predate the
        criterion, or it was not committed when they were made) or None (unknown), and
        ``note``, the report's sentence; with the criterion and the runs' states.
    """
    ancestor = ancestor or is_ancestor
    data = {"criterion": dict(criterion), "runs": [dict(r) for r in runs or []]}
    changed = f"its registry entry last changed at commit {_short(criterion.get('commit'))}" + (
        " and has uncommitted changes since" if criterion.get("uncommitted") else ""
    )
    if not runs:
        return {
            **data,
            "before": None,
            "note": (
                f"unknown: the runs were not stamped with the commit they were made at (records "
                f"made before the stamp); {changed}"
            ),
        }
    made = ", ".join(sorted({_short(r.get("commit")) for r in runs}))
    if any(r.get("entry") is None for r in runs):
        return {
            **data,
            "before": None,
            "note": (
                f"unknown: some runs were made by a process that did not stamp its commit; "
                f"{changed}"
            ),
        }
    if any(r.get("entry") != criterion.get("entry") for r in runs):
        return {
            **data,
            "before": False,
            "note": (
                f"no: the runs predate this criterion: they were made (at commit {made}) under "
                f"another version of the study's registry entry; {changed}"
            ),
        }
    if criterion.get("commit") is None or any(r.get("commit") is None for r in runs):
        return {
            **data,
            "before": None,
            "note": (
                f"unknown: the runs were made under this criterion, but without git the commits "
                f"are unknown ({changed}; runs at {made})"
            ),
        }
    if any(r.get("uncommitted") for r in runs) or criterion.get("uncommitted"):
        return {
            **data,
            "before": False,
            "note": (
                f"no: the runs were made under this criterion (at commit {made}) while it was not "
                f"committed, so it was not stated before them; {changed}"
            ),
        }
    if not all(ancestor(str(criterion["commit"]), str(r["commit"])) for r in runs):
        return {
            **data,
            "before": False,
            "note": (
                f"no: the criterion was committed (at {_short(criterion['commit'])}) after the "
                f"commit the runs were made at ({made})"
            ),
        }
    return {
        **data,
        "before": True,
        "note": (f"yes: {changed}; the runs were made at commit {made}, with that entry committed"),
    }
