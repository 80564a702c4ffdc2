"""Runs fanned out over Dask: the same numbers as serial, nothing lost when a worker or the
coordinator dies, clear refusals of bad clusters, and no worker process left behind."""

import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gluon_bn.scale import backend as scale
from gluon_bn.scale import fanout

distributed = pytest.importorskip("distributed", reason="the distributed extra is not installed")

# A study grid of a few hundred images: 3 configurations x 2 seeds, one epoch each.
TINY = ["covariate-shift", "--quick", "--fraction", "0.005", "--seeds", "2", "--quiet"]
TIMES = ("seconds", "train_seconds", "time", "examples_per_sec")


def _cli(*args, env=None, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "gluon_bn.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        **kwargs,
    )


def _children(pid=None):
    """PIDs of the live processes whose parent is `pid` (default: this one)."""
    pid = pid or os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            try:  # Python's own helper for the interpreter's lifetime, not a worker
                if (
                    b"multiprocessing.resource_tracker"
                    in open(f"/proc/{entry}/cmdline", "rb").read()
                ):
                    continue
            except OSError:
                continue
            found.append(int(entry))
    return found


def _no_children(seconds=20):
    """True once this process has no child left (workers take a moment to exit); else the
    command lines of those left."""
    deadline = time.time() + seconds
    while _children() and time.time() < deadline:
        time.sleep(0.2)
    left = []
    for pid in _children():
        try:
            left.append(open(f"/proc/{pid}/cmdline").read().replace("\0", " ")[:200])
        except OSError:
            pass
    return left or True


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_gone(pgid, seconds=30):
    deadline = time.time() + seconds
    while _group_alive(pgid) and time.time() < deadline:
        time.sleep(0.2)
    return not _group_alive(pgid)


def _error_lines(stderr):
    """stderr without MXNet's own log lines (``[hh:mm:ss] ../src/...``)."""
    return [
        line for line in stderr.strip().splitlines() if not re.match(r"^\[\d\d:\d\d:\d\d\] ", line)
    ]


def _without_times(value):
    """A record's runs with every wall-clock figure removed (they are the only thing that may differ)."""
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items() if k not in TIMES}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


def _runs(path):
    record = json.loads(Path(path).read_text())
    return {c["name"]: _without_times(c["runs"]) for c in record["configurations"]}


@pytest.fixture(scope="module")
def serial_tiny(tmp_path_factory, fashion_root):
    """The tiny grid trained serially with --threads 1 (the reference of every Dask test)."""
    out = tmp_path_factory.mktemp("serial")
    proc = _cli("study", *TINY, "--threads", "1", "--out", str(out), timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out / "covariate-shift.json"


@pytest.mark.slow
def test_a_study_on_two_workers_gives_the_serial_numbers_digit_for_digit(serial_tiny, tmp_path):
    proc = _cli("study", *TINY, "--jobs", "2", "--out", str(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "6 run(s) on a local Dask cluster of 2 worker processes" in proc.stdout
    assert _runs(tmp_path / "covariate-shift.json") == _runs(serial_tiny)
    record = json.loads((tmp_path / "covariate-shift.json").read_text())
    assert record["environment"]["omp_threads"] == 1
    assert record["environment"]["runtime"] == "engine NaiveEngine, OpenMP threads 1"
    assert _no_children() is True


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_replaced_and_the_study_completes(serial_tiny, tmp_path):
    from gluon_bn.study.registry import get_study
    from gluon_bn.study.runner import run_study

    study = get_study("covariate-shift")
    settings = study.settings(quick=True, fraction=0.005, seeds=2)
    killed = []
    with scale.open_backend(2) as backend:
        pids = backend.client.run(os.getpid)

        def kill_a_busy_worker():
            deadline = time.time() + 120
            while time.time() < deadline and not killed:
                busy = [w for w, tasks in backend.client.processing().items() if tasks]
                if busy:
                    time.sleep(1.0)  # well inside the run: MXNet loaded, data read
                    os.kill(pids[busy[0]], signal.SIGKILL)
                    killed.append(busy[0])
                time.sleep(0.1)

        killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
        killer.start()
        record, _ = run_study(
            study, settings, tmp_path, file=io.StringIO(), progress=False, backend=backend
        )
        killer.join(5)
    assert killed, "no worker was busy to kill"
    assert all(len(c.runs) == 2 for c in record.configurations)
    assert _runs(tmp_path / "covariate-shift.json") == _runs(serial_tiny)
    assert _no_children() is True


@pytest.mark.slow
def test_the_same_command_resumes_after_the_coordinator_is_killed(serial_tiny, tmp_path):
    command = [
        sys.executable,
        "-m",
        "gluon_bn.cli",
        "study",
        *TINY,
        "--jobs",
        "2",
        "--out",
        str(tmp_path),
    ]
    progress = tmp_path / "covariate-shift.progress.json"
    coordinator = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.time() + 180
    while time.time() < deadline and coordinator.poll() is None:
        if progress.exists() and sum(
            len(r) for r in json.loads(progress.read_text())["runs"].values()
        ):
            break
        time.sleep(0.2)
    assert coordinator.poll() is None, "the study finished before it could be killed"
    os.killpg(coordinator.pid, signal.SIGKILL)  # the coordinator and its workers
    coordinator.wait(30)
    assert _wait_gone(coordinator.pid)
    finished = sum(len(r) for r in json.loads(progress.read_text())["runs"].values())
    assert 1 <= finished < 6
    # resumed serially: the progress file does not depend on how runs were distributed
    proc = _cli("study", *TINY, "--threads", "1", "--out", str(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"resuming: {finished} of 6 runs already finished" in proc.stdout
    assert len(re.findall(r"^   .+, seed \d: ", proc.stdout, re.M)) == 6 - finished  # only those
    assert _runs(tmp_path / "covariate-shift.json") == _runs(serial_tiny)


@pytest.mark.slow
def test_ctrl_c_shuts_the_cluster_down_and_names_the_command_that_resumes(tmp_path, fashion_root):
    coordinator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gluon_bn.cli",
            "study",
            *TINY,
            "--jobs",
            "2",
            "--out",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and coordinator.poll() is None:
        workers = [p for p in _children(coordinator.pid)]
        if len(workers) >= 1 and (tmp_path / "covariate-shift.progress.json").exists():
            break
        time.sleep(0.2)
    coordinator.send_signal(signal.SIGINT)
    _, err = coordinator.communicate(timeout=60)
    assert coordinator.returncode == 130, err
    assert "gluon-bn: interrupted." in err and "--jobs 2" in err
    assert _wait_gone(coordinator.pid), "worker processes were left behind"


def test_an_unreachable_scheduler_is_one_line_naming_it(tmp_path):
    start = time.time()
    proc = _cli(
        "study",
        *TINY,
        "--scheduler",
        "tcp://127.0.0.1:9",
        "--out",
        str(tmp_path),
        env={"GLUON_BN_CONNECT_TIMEOUT": "3"},
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(
        "gluon-bn: error: cannot reach the Dask scheduler at tcp://127.0.0.1:9 within 3 s"
    )
    assert len(_error_lines(proc.stderr)) == 1 and time.time() - start < 60
    assert not list(tmp_path.glob("*.progress.json"))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--jobs", "0"], "--jobs must be at least 1, got 0"),
        (["--jobs", "-2"], "--jobs must be at least 1, got -2"),
        (["--jobs", "2", "--scheduler", "tcp://127.0.0.1:8786"], "not both"),
    ],
)
def test_bad_jobs_are_refused_before_anything_runs(tmp_path, args, message):
    for command in (["study", *TINY], ["reproduce", "d2l-en", "--limit", "512"]):
        proc = _cli(*command, *args, "--out", str(tmp_path), timeout=120)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert len(_error_lines(proc.stderr)) == 1
    assert list(tmp_path.iterdir()) == []


def test_jobs_above_the_cores_are_clamped_in_one_line(monkeypatch):
    out = io.StringIO()
    with scale.open_backend(5, file=out, cores=1) as backend:
        assert not backend.distributed
    assert out.getvalue() == (
        "note: --jobs 5 is more than the 1 usable core(s): clamped to "
        "--jobs 1 (each worker trains with one OpenMP thread)\n"
    )


class FakeClient:
    def __init__(self, answers):
        self.answers = answers

    def run(self, fn, on_error="raise"):
        return self.answers


def test_workers_without_gluon_bn_or_with_another_version_are_refused():
    mine = scale.package_version()
    scale.check_workers(FakeClient({"tcp://w1": mine, "tcp://w2": mine}), "X")
    with pytest.raises(
        scale.BackendError,
        match=rf"worker tcp://w2 of X runs gluon-bn 0\.0\.1, this process {mine}",
    ):
        scale.check_workers(FakeClient({"tcp://w1": mine, "tcp://w2": "0.0.1"}), "X")
    with pytest.raises(
        scale.BackendError, match="cannot run gluon-bn .*No module named 'gluon_bn'"
    ):
        scale.check_workers(
            FakeClient({"tcp://w1": ModuleNotFoundError("No module named 'gluon_bn'")}), "X"
        )


def test_a_timed_study_never_runs_in_parallel(monkeypatch, tmp_path):
    from gluon_bn.cli import build_parser
    from gluon_bn.study import command as study_cli
    from gluon_bn.study import runner

    class Parallel(scale.SerialBackend):
        distributed = True

        def describe(self):
            return "a fake cluster"

    used = {}
    monkeypatch.setattr(scale, "open_backend", lambda *a, **k: Parallel())
    monkeypatch.setattr(
        runner,
        "run_study",
        lambda study, *a, backend=None, **k: (used.update({study.name: backend}), {}),
    )
    args = build_parser().parse_args(
        ["study", "all", "--quick", "--quiet", "--jobs", "2", "--out", str(tmp_path)]
    )
    out = io.StringIO()
    assert study_cli.main(args, out) == 0
    assert not used.pop("compiled-speed").distributed
    assert all(b.distributed for b in used.values()) and len(used) == 6
    assert (
        "note: study compiled-speed times its runs, so they run one after another in this "
        "process whatever --jobs/--scheduler say"
    ) in out.getvalue()


def test_a_run_that_raises_is_reported_and_the_others_finish(tmp_path):
    from gluon_bn.study.registry import get_study
    from gluon_bn.study.runner import run_study

    study = get_study("covariate-shift")
    settings = study.settings(quick=True, seeds=3)

    def measure(config, seed):
        if config.name == "BN" and seed == 1:
            raise RuntimeError("something broke\nCUDA: out of memory")
        return {"final_acc": 0.5, "curve": [0.5], "diverged": False}

    with pytest.raises(fanout.RunsFailed) as caught:
        run_study(study, settings, tmp_path, measure=measure, progress=False, file=io.StringIO())
    message = str(caught.value)
    assert "1 of 9 run(s) failed" in message
    assert message.splitlines()[-1] == "BN, seed 1: RuntimeError: CUDA: out of memory"
    progress = json.loads((tmp_path / "covariate-shift.progress.json").read_text())
    assert sum(len(r) for r in progress["runs"].values()) == 8
