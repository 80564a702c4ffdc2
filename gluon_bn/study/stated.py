"""What was stated before a study's runs: the git commits of its criterion and of its runs.

A study's criterion is its entry (a ``Study(...)`` in :mod:`~gluon_bn.study.claims_effects`
or :mod:`~gluon_bn.study.claims_layer`: measurement, criterion, comparisons, margins, scale)
with the named constants the entry reads, wherever among :data:`STATED_FILES` they are
defined. Its *stated content* is the entry's syntax tree and those constants' (formatting,
comments and the file an entry sits in do not count), so that moving an entry or
reformatting it leaves its criterion where it was. Two things are kept:

- when the runs are made (:func:`code_state`, stored by the progress file): the commit
  checked out, the entry's fingerprint (its stated content and the study as loaded, hashed)
  and whether the content differed from that commit's (uncommitted);
- when a record is judged (:func:`criterion_state`): the oldest commit since which the stated
  content is today's (the commits that touched :data:`STATED_FILES`, newest first), the
  fingerprint now, and whether the content is uncommitted now.

:func:`stated_before` compares them: the criterion was stated before the runs only when the
runs were made under today's content (with git: the content at the runs' commit; without:
the fingerprints) and that content was committed when they were made. Without git (an
installed wheel, no repository) the commits are None and the answer is "unknown". No MXNet.
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
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[2]  # the repository, when the package runs from one
REGISTRY = "gluon_bn/study/registry.py"
# where the entries and the named constants they read are written, searched in this order
# after the entry's own file (the registry held every entry until the entries moved out)
STATED_FILES = (
    "gluon_bn/study/claims_effects.py",
    "gluon_bn/study/claims_layer.py",
    REGISTRY,
    "gluon_bn/study/settings.py",
    "gluon_bn/study/stats.py",
    "gluon_bn/study/distributions.py",
)
CONSTANT = re.compile(r"[A-Z][A-Z0-9_]{2,}")  # a named constant: SPEED_MARGIN, FASTER_TARGET


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


@functools.lru_cache(maxsize=256)
def _tree(text: str) -> Optional[ast.Module]:
    """`text` parsed (None when empty or not Python); cached: one commit's files serve every
    study, and most files are the same from commit to commit (callers never change a tree)."""
    try:
        return ast.parse(text) if text else None
    except SyntaxError:
        return None


def find_entry(tree: ast.AST, name: str) -> Optional[ast.Call]:
    """Return the ``Study(...)`` call whose ``name`` keyword is `name` in `tree`, or None."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", None) == "Study"
            and any(
                k.arg == "name" and isinstance(k.value, ast.Constant) and k.value.value == name
                for k in node.keywords
            )
        ):
            return node
    return None


def find_constant(tree: ast.Module, constant: str) -> Optional[ast.expr]:
    """Return the value assigned to module-level `constant` in `tree` (an import is not a definition)."""
    for node in tree.body:
        if isinstance(node, ast.Assign):
            if any(isinstance(t, ast.Name) and t.id == constant for t in node.targets):
                return node.value
        elif isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == constant:
            return node.value
    return None


def _located(
    trees: Mapping[str, Optional[ast.Module]], name: str
) -> Optional[Tuple[str, ast.Call]]:
    """The first of :data:`STATED_FILES` whose tree writes study `name`'s entry, and the entry."""
    for path in STATED_FILES:
        entry = find_entry(trees[path], name) if trees[path] is not None else None
        if entry is not None:
            return path, entry
    return None


def _trees(sources: Mapping[str, str]) -> Dict[str, Optional[ast.Module]]:
    return {path: _tree(sources.get(path, "")) for path in STATED_FILES}


def entry_file(sources: Mapping[str, str], name: str) -> Optional[str]:
    """Return which of `sources` (path to text) writes study `name`'s entry, or None."""
    found = _located(_trees(sources), name)
    return found[0] if found else None


def stated_content(sources: Mapping[str, str], name: str) -> Optional[str]:
    """Return study `name`'s stated content in `sources`: its entry and named constants, as trees.

    Parameters
    ----------
    sources : mapping of str to str
        Source text by path (:data:`STATED_FILES`; a missing path reads as empty).
    name : str
        The study.

    Returns
    -------
    str or None
        One line with the entry's syntax tree, then one per named constant (the upper-case
        names the entry reads, sorted), each with its value's tree, looked up in the entry's
        file first, then in :data:`STATED_FILES`' order; None when no file writes the entry.
    """
    trees = _trees(sources)
    found = _located(trees, name)
    if found is None:
        return None
    home, entry = found
    names = sorted(
        {n.id for n in ast.walk(entry) if isinstance(n, ast.Name) and CONSTANT.fullmatch(n.id)}
    )
    lines = [f"entry {ast.dump(entry)}"]
    order = [home] + [path for path in STATED_FILES if path != home]
    for constant in names:
        for path in order:
            value = find_constant(trees[path], constant) if trees[path] else None
            if value is not None:
                lines.append(f"{constant} = {ast.dump(value)}")
                break
    return "\n".join(lines)


def _sources_now() -> Dict[str, str]:
    """The stated files as this process reads them (installed or checked out)."""
    texts = {}
    for path in STATED_FILES:
        try:
            texts[path] = (ROOT / path).read_text()
        except OSError:
            texts[path] = ""
    return texts


@functools.lru_cache(maxsize=64)
def _sources_at(commit: str) -> Mapping[str, str]:
    return {path: git("show", f"{commit}:{path}") or "" for path in STATED_FILES}


def fingerprint(name: str, sources: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """Return a short hash of study `name`'s stated content and of the study as loaded (None: unknown study).

    The loaded study (its texts with the constants' values in them, comparisons, scales)
    is hashed too, so that a changed value behind an unchanged name changes the print.
    """
    from gluon_bn.study.registry import STUDIES
    from gluon_bn.study.settings import without_first_seed_0

    study = STUDIES.get(name)
    if study is None:
        return None
    data = dataclasses.asdict(study)
    for settings in (data["defaults"], data["quick"]):
        without_first_seed_0(settings)
    loaded = json.dumps(
        {"study": data, "statement": study.statement()},
        sort_keys=True,
        default=str,
    )
    content = stated_content(sources or _sources_now(), name) or ""
    return hashlib.sha256((content + "\n" + loaded).encode()).hexdigest()[:16]


def code_state(name: str) -> Dict[str, object]:
    """Return what the runs of study `name` are made with: commit, fingerprint, uncommitted lines.

    ``commit`` is the commit checked out (None without git); ``uncommitted`` says whether the
    study's stated content differs from that commit's (None without git).
    """
    head = git("rev-parse", "HEAD") if in_repository() else None
    uncommitted = _uncommitted(name, head) if head else None
    return {"commit": head, "entry": fingerprint(name), "uncommitted": uncommitted}


def _uncommitted(name: str, head: str) -> bool:
    """Whether study `name`'s stated content as this process reads it differs from `head`'s."""
    return stated_content(_sources_now(), name) != stated_content(_sources_at(head), name)


@functools.lru_cache(maxsize=32)
def _last_change(head: str, name: str) -> Optional[str]:
    """The oldest commit since which study `name`'s stated content is `head`'s (None: not in head)."""
    today = stated_content(_sources_at(head), name)
    touched = git("log", "--format=%H", head, "--", *STATED_FILES)
    if today is None or not touched:
        return None
    since = None
    for commit in touched.split():  # newest first; between two of them the files stay put
        if stated_content(_sources_at(commit), name) != today:
            break
        since = commit
    return since


def criterion_state(name: str) -> Dict[str, object]:
    """Return study `name`'s criterion now: the commit since which its stated content is today's.

    ``commit`` is that commit (None without git, or when the entry is not in HEAD);
    ``uncommitted`` whether the content differs from HEAD's now; ``entry`` the fingerprint.
    """
    state = {"commit": None, "entry": fingerprint(name), "uncommitted": None}
    head = git("rev-parse", "HEAD") if in_repository() else None
    if not head:
        return state
    state["uncommitted"] = _uncommitted(name, head)
    state["commit"] = _last_change(head, name)
    return state


def made_under(name: str, commit: Optional[str]) -> Optional[bool]:
    """Return whether study `name`'s stated content at `commit` is HEAD's (None: unknown without git)."""
    if not commit or not in_repository():
        return None
    head = git("rev-parse", "HEAD")
    if git("cat-file", "-e", f"{commit}^{{commit}}") is None or not head:
        return None
    then = stated_content(_sources_at(commit), name)
    return then is not None and then == stated_content(_sources_at(head), name)


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
    same: Optional[Callable[[str], Optional[bool]]] = None,
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
    same : callable, optional
        ``commit -> bool or None``: whether the stated content at a run's commit is today's
        (``functools.partial(made_under, name)``); where it answers, it decides whether a
        committed run was made under today's criterion, else the fingerprints do.

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

    def under(run: Mapping[str, object]) -> bool:
        if same is not None and run.get("commit") and not run.get("uncommitted"):
            verdict = same(str(run["commit"]))
            if verdict is not None:
                return verdict
        return run.get("entry") == criterion.get("entry")

    if not all(under(r) for r in runs):
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
