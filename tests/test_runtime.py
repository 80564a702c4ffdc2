"""MXNet's engine and threads are chosen before it loads, and every report says which ran."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from gluon_bn import runtime


def test_auto_tunes_every_pipeline_on_the_cpu_with_the_chosen_threads(monkeypatch):
    two = runtime.choose_threads(2)
    tuned = runtime.Runtime("naive", 2, "PASSIVE")
    assert runtime.requested_runtime("auto", device="cpu", threads=two) == tuned
    assert runtime.requested_runtime("auto", device="cpu:0,cpu:1", threads=two) == tuned
    assert runtime.requested_runtime("auto", device="gpu:0", threads=two) == runtime.DEFAULT
    assert runtime.requested_runtime("tuned", device="gpu", threads=two) == tuned
    assert runtime.requested_runtime("default", device="cpu", threads=two) == runtime.DEFAULT
    one = runtime.choose_threads(2, requested=1)
    assert runtime.requested_runtime("default", device="cpu", threads=one) == runtime.Runtime(
        omp_threads=1
    )
    assert runtime.requested_runtime("auto", device="cpu", threads=one) == runtime.Runtime(
        "naive", 1
    )
    monkeypatch.setattr(runtime.settings, "cuda_build_installed", lambda: True)
    assert runtime.requested_runtime("auto", device="auto", threads=two) == runtime.DEFAULT
    monkeypatch.setattr(runtime.settings, "cuda_build_installed", lambda: False)
    assert runtime.requested_runtime("auto", device="auto", threads=two) == tuned
    with pytest.raises(ValueError, match="runtime must be one of"):
        runtime.requested_runtime("fastest", device="cpu")


@pytest.mark.parametrize(
    "cores, busy, requested, threads, reason",
    [
        (2, None, None, 2, "idle"),  # load unknown: the idle choice
        (2, 0.0, None, 2, "idle"),
        (2, 0.4, None, 2, "idle"),  # a little background work does not take a core
        (2, 0.5, None, 1, "busy"),  # half a core or more counts as one
        (2, 1.0, None, 1, "busy"),
        (2, 2.0, None, 1, "busy"),  # never fewer than one
        (8, 2.6, None, 5, "busy"),
        (1, 0.0, None, 1, "idle"),
        (2, 1.0, 2, 2, "requested"),  # --threads wins over the load
        (2, None, 3, 3, "requested"),
    ],
)
def test_the_thread_count_follows_the_free_cores_unless_requested(
    cores, busy, requested, threads, reason
):
    choice = runtime.choose_threads(cores, busy, requested)
    assert (choice.threads, choice.reason, choice.idle) == (threads, reason, cores)


def test_a_count_other_than_the_idle_one_is_said_in_one_line_with_the_flag_to_undo_it():
    note = runtime.choose_threads(2, busy=1.0).note()
    assert "\n" not in note and "1 OpenMP thread(s) instead of 2" in note
    assert "--threads 2" in note and "omp_threads" in note
    assert runtime.choose_threads(2, busy=0.1).note() is None
    assert runtime.choose_threads(2, busy=1.0, requested=1).note() is None  # asked for it
    with pytest.raises(ValueError, match="at least 1"):
        runtime.choose_threads(2, requested=0)


def test_the_request_comes_from_the_flag_then_the_environment():
    assert runtime.requested_threads(3, {"OMP_NUM_THREADS": "1"}) == (3, [])
    value, notes = runtime.requested_threads(None, {"OMP_NUM_THREADS": "1"})
    assert value == 1 and "OMP_NUM_THREADS=1" in notes[0]
    assert runtime.requested_threads(None, {}) == (None, [])
    value, notes = runtime.requested_threads(None, {"OMP_NUM_THREADS": "many"})
    assert value is None and "ignoring" in notes[0]


def test_records_know_the_thread_count_mxnet_ran_with():
    assert runtime.threads_in_effect({"OMP_NUM_THREADS": "3"}, cores=8) == 3
    assert runtime.threads_in_effect({"OMP_NUM_THREADS": "3", "MXNET_OMP_MAX_THREADS": "2"}) == 2
    assert runtime.threads_in_effect({}, cores=2) == runtime.mxnet_default_threads(2)
    assert runtime.mxnet_default_threads(2, "x86_64") == 1  # MXNet halves x86 processors
    assert runtime.mxnet_default_threads(1, "x86_64") == 1
    assert runtime.mxnet_default_threads(4, "aarch64") == 4


def test_a_slower_epoch_is_reported_once_and_only_for_several_threads():
    def watch(threads):  # off NaiveEngine the watch compares whole epochs
        w = runtime.LoadWatch(threads, allowed=False, synchronous=False)
        return lambda epoch, seconds: w.epoch_ended(SimpleNamespace(epoch=epoch, seconds=seconds))

    observe = watch(2)
    assert [observe(e, s) for e, s in [(1, 5.0), (2, 2.0), (3, 3.9)]] == [None] * 3
    note = observe(4, 4.5)
    assert "epoch 4" in note and "2.2x" in note and "--threads 1" in note
    assert observe(5, 9.0) is None  # once
    single = watch(1)
    assert [single(e, s) for e, s in [(1, 1.0), (2, 1.0), (3, 9.0)]] == [None] * 3
    fresh = watch(2)
    fresh(1, 1.0), fresh(2, 1.0)
    assert fresh(1, 5.0) is None  # a new run starts over


def test_apply_sets_variables_before_mxnet_loads_and_keeps_the_users():
    env = {}
    assert runtime.apply(runtime.Runtime("naive", 2), env, modules={}) == []
    assert env == {"MXNET_ENGINE_TYPE": "NaiveEngine", "OMP_NUM_THREADS": "2"}
    env = {"MXNET_ENGINE_TYPE": "ThreadedEnginePerDevice", "OMP_NUM_THREADS": "1"}
    notes = runtime.apply(runtime.Runtime("naive", 2), env, modules={})
    # the thread count was chosen from the user's OMP_NUM_THREADS already: it is set as chosen
    assert env == {"MXNET_ENGINE_TYPE": "ThreadedEnginePerDevice", "OMP_NUM_THREADS": "2"}
    assert notes and "keeping MXNET_ENGINE_TYPE=ThreadedEnginePerDevice" in notes[0]
    assert runtime.apply(runtime.DEFAULT, {}, modules={}) == []


def test_apply_says_when_mxnet_is_already_loaded():
    env = {}
    notes = runtime.apply(runtime.Runtime("naive", 2), env, modules={"mxnet": object()})
    assert (
        env == {} and "already loaded" in notes[0] and "MXNET_ENGINE_TYPE=NaiveEngine" in notes[0]
    )
    assert (
        runtime.apply(
            runtime.Runtime("naive", 2),
            {"MXNET_ENGINE_TYPE": "NaiveEngine", "OMP_NUM_THREADS": "2"},
            modules={"mxnet": object()},
        )
        == []
    )


def test_busy_cores_counts_a_process_that_spins():
    idle = runtime.busy_cores(0.2)
    if idle is None:
        pytest.skip("no /proc/stat here")
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)
        assert runtime.busy_cores(0.5) >= 0.7  # the spinner holds one core
    finally:
        spinner.kill()


def test_runtime_rejects_what_mxnet_does_not_have():
    with pytest.raises(ValueError, match="engine must be one of"):
        runtime.Runtime("parallel")
    with pytest.raises(ValueError, match="omp_threads must be a positive int"):
        runtime.Runtime("naive", 0)
    with pytest.raises(ValueError, match="wait must be PASSIVE or ACTIVE"):
        runtime.Runtime("naive", 2, "lazy")


def test_fast_reproduction_runs_tuned_and_says_so(fashion_root, tmp_path):
    """A real process: the tuned runtime is set before MXNet loads and lands in the JSON."""
    env = {
        k: v
        for k, v in __import__("os").environ.items()
        if k not in ("MXNET_ENGINE_TYPE", "OMP_NUM_THREADS")
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gluon_bn.cli",
            "reproduce",
            "d2l-en",
            "--variant",
            "gluon",
            "--pipeline",
            "fast",
            "--device",
            "cpu",
            "--limit",
            "600",
            "--test-limit",
            "200",
            "--epochs",
            "1",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "runtime: engine NaiveEngine, OpenMP threads" in proc.stdout
    assert "epoch 1, loss" in proc.stdout
    result = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert result["environment"]["threads"]["MXNET_ENGINE_TYPE"] == "NaiveEngine"
    assert result["environment"]["omp_threads"] == runtime.usable_cores() or "busy" in proc.stdout
    assert result["config"]["hybridize"] == "graph"
    assert "NaiveEngine" in (tmp_path / "d2l-en_fast_limit600.md").read_text()


@pytest.mark.skipif(shutil.which("taskset") is None, reason="taskset (util-linux) not installed")
def test_a_thread_count_repeats_its_numbers_on_one_core_or_all(tmp_path):
    """The numbers follow --threads, not the cores the run may use (nor their load)."""
    env = {k: v for k, v in os.environ.items() if k not in runtime.VARIABLES}
    command = [
        sys.executable,
        "-m",
        "gluon_bn.cli",
        "reproduce",
        "d2l-en",
        "--variant",
        "gluon",
        "--pipeline",
        "fast",
        "--device",
        "cpu",
        "--limit",
        "512",
        "--test-limit",
        "256",
        "--epochs",
        "1",
        "--threads",
        "1",
        "--quiet",
    ]
    lines, records = [], []
    for index, prefix in enumerate([[], ["taskset", "-c", "0"]]):
        out = tmp_path / str(index)
        proc = subprocess.run(
            prefix + command + ["--out", str(out)],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert proc.returncode == 0, proc.stderr
        lines.append(
            re.sub(r", time \S+ sec", "", re.search(r"^epoch 1, .*$", proc.stdout, re.M)[0])
        )
        records.append(json.loads(next(out.glob("*.json")).read_text()))
    assert lines[0] == lines[1]
    assert [r["environment"]["omp_threads"] for r in records] == [1, 1]


def test_runs_started_together_see_each_others_threads(tmp_path):
    """The second of two runs started at once gets what the first left free."""
    choose = lambda others: runtime.choose_threads(2, others or None)  # noqa: E731
    first = runtime.claim_threads(choose, str(tmp_path))
    assert first.threads == 2 and (tmp_path / str(os.getpid())).read_text() == "2"
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    (tmp_path / finished.stdout.strip()).write_text("2")  # a run that has ended
    (tmp_path / str(os.getpid())).rename(tmp_path / str(os.getppid()))  # a live other run
    second = runtime.claim_threads(choose, str(tmp_path))
    assert (second.threads, second.reason) == (1, "busy")
    assert not (tmp_path / finished.stdout.strip()).exists()  # the dead run's note is gone
    (tmp_path / "file").write_text("")  # not a directory: no claims
    assert runtime.claim_threads(choose, str(tmp_path / "file" / "x")).threads == 2


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_threads_flag_refuses_what_is_not_a_positive_count(value, capsys):
    from gluon_bn import cli

    with pytest.raises(SystemExit) as exit_:
        cli.main(["reproduce", "d2l-en", "--threads", value])
    assert exit_.value.code == 2
    assert "argument --threads" in capsys.readouterr().err


def test_a_stopped_run_claims_no_threads(tmp_path):
    """A run paused with Ctrl-Z (SIGSTOP) computes nothing: a new run may use its cores."""
    import signal

    choose = lambda others: runtime.choose_threads(2, others or None)  # noqa: E731
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / str(sleeper.pid)).write_text("2")
        sleeper.send_signal(signal.SIGSTOP)
        time.sleep(0.2)
        assert runtime.claim_threads(choose, str(tmp_path)).threads == 2
        assert (tmp_path / str(sleeper.pid)).exists()  # kept: it claims again when continued
        sleeper.send_signal(signal.SIGCONT)
        time.sleep(0.2)
        assert runtime.claim_threads(choose, str(tmp_path)).threads == 1
    finally:
        sleeper.kill()
