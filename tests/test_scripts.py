"""The scripts are thin: each names a known recipe and runs end to end on a tiny slice."""

import re
import subprocess
import sys
from pathlib import Path

from gluon_bn import RECIPES

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def test_one_script_per_recipe():
    named = {
        re.search(r'"reproduce", "([^"]+)"', p.read_text())[1]
        for p in SCRIPTS.glob("reproduce_*.py")
        if p.name != "reproduce_all.py"
    }
    assert named == set(RECIPES)


def test_script_runs_end_to_end(fashion_root, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPTS / "reproduce_d2l_zh.py"),
            "--variant",
            "gluon",
            "--limit",
            "256",
            "--test-limit",
            "128",
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^epoch 1, loss \d\.\d{4}, train acc", proc.stdout, re.M)
    assert (tmp_path / "d2l-zh_limit256.json").exists()
