"""`--portable` repeats a committed record digit for digit, on whatever x86-64 CPU runs it.

The record in tests/data/portable/ was made on a 2-vCPU AMD EPYC (AVX2) by

    gluon-bn reproduce d2l-en --pipeline fast --limit 512 --test-limit 256 --epochs 2 \
        --seed 0 --portable --out tests/data/portable

(only the JSON is kept). `--portable` means one OpenMP thread and oneDNN capped at AVX2, the
two settings that decide a seed's numbers beyond the command itself: so an AVX-512 Intel
host must print the same losses and accuracies as the AMD host that made it. The test runs
the command the record names (`ResolvedRun.command`) plus `--portable` and compares every
number but the wall-clock ones.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gluon_bn.records import load_result

RECORD = Path(__file__).parent / "data" / "portable" / "d2l-en_fast_limit512.json"
TIMES = ("seconds", "train_seconds", "examples_per_sec")


def _numbers(runs):
    """Every run of a record with its wall-clock figures removed."""
    return [
        {
            **run,
            "history": [
                {k: v for k, v in epoch.items() if k not in TIMES} for epoch in run["history"]
            ],
        }
        for run in runs
    ]


@pytest.mark.slow
def test_a_portable_run_repeats_the_committed_record_digit_for_digit(tmp_path, fashion_root):
    from gluon_bn.runtime.machine import onednn_isa

    if onednn_isa({"DNNL_MAX_CPU_ISA": "AVX2"}) not in (None, "Intel AVX2"):
        pytest.skip("this CPU cannot run oneDNN at AVX2, so --portable is refused here")
    committed = json.loads(RECORD.read_text())
    command = load_result(RECORD).run.command() + ["--portable", "--quiet", "--out", str(tmp_path)]
    proc = subprocess.run(
        [sys.executable, "-m", "gluon_bn.cli", *command],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    again = json.loads((tmp_path / RECORD.name).read_text())

    assert again["environment"]["omp_threads"] == committed["environment"]["omp_threads"] == 1
    assert (
        again["environment"]["onednn_isa"] == committed["environment"]["onednn_isa"] == "Intel AVX2"
    )
    assert again["config"] == committed["config"]
    assert _numbers(again["runs"]) == _numbers(committed["runs"])
