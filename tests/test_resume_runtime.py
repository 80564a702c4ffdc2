"""A resumed run continues the same run: the checkpoint keeps the runtime it trained with
(threads, engine, wait policy, oneDNN's cap and instruction set) and ``--resume`` restores it
whatever the load; a ``--threads``/``--isa`` that contradicts it is refused in one line."""

import json
import subprocess
import sys
import time

import pytest
from _run_helpers import GLUON_BN, epoch_lines

from gluon_bn.run.resume import saved_runtime
from gluon_bn.runtime.select import Request, select

RUN = [
    "reproduce",
    "d2l-en",
    "--variant",
    "gluon",
    "--pipeline",
    "fast",
    "--limit",
    "3000",
    "--test-limit",
    "1000",
    "--epochs",
    "3",
    "--quiet",
    "--device",
    "cpu",
]
TIMEOUT = 300


def gluon_bn(*args, cwd):
    proc = subprocess.run(
        [GLUON_BN, *RUN, *args], cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def killed_after_epoch_1(tmp_path, *args):
    """Start the run with checkpoints and SIGKILL it once epoch 1's checkpoint is complete."""
    manifest = tmp_path / "ck" / "d2l-en" / "gluon-seed0" / "epoch-0001" / "manifest.json"
    proc = subprocess.Popen(
        [GLUON_BN, *RUN, *args, "--out", "first", "--checkpoint-dir", "ck"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + TIMEOUT
    while not manifest.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert manifest.exists(), "the first run never finished epoch 1"


@pytest.mark.slow
def test_a_run_killed_after_epoch_1_and_resumed_beside_a_busy_process_ends_the_same(tmp_path):
    whole = epoch_lines(gluon_bn("--threads", "2", "--out", "whole", cwd=tmp_path))
    manifest_dir = tmp_path / "ck" / "d2l-en" / "gluon-seed0"
    killed_after_epoch_1(tmp_path, "--threads", "2")
    config = json.loads((manifest_dir / "epoch-0001" / "config.json").read_text())
    assert config["runtime"]["omp_threads"] == 2
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1)  # the load the runtime choice would see
        resumed = subprocess.run(
            [GLUON_BN, *RUN, "--out", "again", "--checkpoint-dir", "ck", "--resume"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    finally:
        busy.kill()
        busy.wait()
    assert "restored from the checkpoint" in resumed.stdout, resumed.stdout + resumed.stderr
    assert "OpenMP threads 2" in resumed.stdout
    assert epoch_lines(resumed.stdout)[3] == whole[3]


def test_a_count_or_isa_that_contradicts_the_checkpoint_is_refused_in_one_line():
    saved = {
        "omp_threads": 2,
        "engine": "NaiveEngine",
        "wait": None,
        "isa_cap": "AVX2",
        "onednn_isa": "Intel AVX2",
        "checkpoint": "ck/d2l-en/gluon-seed0/epoch-0001",
    }
    with pytest.raises(
        ValueError,
        match=r"^--threads 1: the checkpoint ck/d2l-en/gluon-seed0/"
        r"epoch-0001 trained with 2 OpenMP thread\(s\)",
    ):
        select(Request(threads=1, restore=saved))
    with pytest.raises(ValueError, match=r"^--threads 1: .* trained with 2"):
        select(Request(portable=True, restore=saved))  # --portable means --threads 1
    with pytest.raises(ValueError, match=r"^--isa avx512: .* capped at AVX2.*drop --isa"):
        select(Request(threads=2, isa="avx512", restore=saved))


def test_the_saved_runtime_is_the_last_checkpointed_run_s(tmp_path):
    assert saved_runtime(tmp_path, "d2l-en", ["gluon"], [0]) is None  # nothing to resume
    for variant, threads in (("scratch", 2), ("gluon", 1)):  # gluon ran after scratch
        epoch = tmp_path / "d2l-en" / f"{variant}-seed0" / "epoch-0001"
        epoch.mkdir(parents=True)
        (epoch / "config.json").write_text(json.dumps({"runtime": {"omp_threads": threads}}))
        (epoch / "manifest.json").write_text("{}")
    assert saved_runtime(tmp_path, "d2l-en", ["scratch", "gluon"], [0])["omp_threads"] == 1
    incomplete = tmp_path / "d2l-en" / "gluon-seed0" / "epoch-0002"
    incomplete.mkdir()
    (incomplete / "config.json").write_text(json.dumps({"runtime": {"omp_threads": 7}}))
    assert saved_runtime(tmp_path, "d2l-en", ["scratch", "gluon"], [0])["omp_threads"] == 1
    old = tmp_path / "old" / "d2l-en" / "gluon-seed0" / "epoch-0001"
    old.mkdir(parents=True)
    (old / "config.json").write_text("{}")
    (old / "manifest.json").write_text("{}")
    assert saved_runtime(tmp_path / "old", "d2l-en", ["gluon"], [0]) == {}
