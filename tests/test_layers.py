"""The house's rules, checked with the suite: the import layers and no cycle (import-linter,
imports inside functions included), and ruff's lint and format check, as pyproject.toml
configures them."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def tool(name: str) -> str:
    """The console script `name` of this environment, or skip saying how to install it."""
    found = Path(sys.executable).with_name(name)
    if found.exists():
        return str(found)
    on_path = shutil.which(name)
    if on_path is None:
        pytest.skip(f"{name} is not installed: pip install -e '.[test]'")
    return on_path


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True)


def test_imports_keep_the_layers_and_make_no_cycle():
    proc = run(tool("lint-imports"), "--no-cache")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    """The contract can fail: a runtime module importing the command line is caught."""
    probe = ROOT / "gluon_bn" / "runtime" / "_upward_probe.py"
    probe.write_text("def f():\n    from gluon_bn import cli  # noqa: F401\n")
    try:
        proc = run(tool("lint-imports"), "--no-cache")
    finally:
        probe.unlink()
    assert proc.returncode != 0
    assert "gluon_bn.runtime._upward_probe -> gluon_bn.cli" in proc.stdout


def test_ruff_lint_is_clean():
    proc = run(tool("ruff"), "check", ".")
    assert proc.returncode == 0, proc.stdout[-4000:]


def test_ruff_format_is_clean():
    proc = run(tool("ruff"), "format", "--check", ".")
    assert proc.returncode == 0, proc.stdout[-4000:]
