"""MXNet's engine and threads are chosen before it loads, and every report says which ran."""
import json
import subprocess
import sys
import time

import pytest

from gluon_bn import runtime


def test_auto_tunes_only_the_fast_pipeline_on_the_cpu(monkeypatch):
    monkeypatch.setattr(runtime, "usable_cores", lambda: 2)
    tuned = runtime.Runtime("naive", 2)
    assert runtime.choose("auto", pipeline="fast", device="cpu") == tuned
    assert runtime.choose("auto", pipeline="fast", device="cpu:0,cpu:1") == tuned
    assert runtime.choose("auto", pipeline="d2l", device="cpu") == runtime.DEFAULT
    assert runtime.choose("auto", pipeline="both", device="cpu") == runtime.DEFAULT
    assert runtime.choose("auto", pipeline="fast", device="gpu:0") == runtime.DEFAULT
    assert runtime.choose("tuned", pipeline="d2l", device="gpu") == tuned
    assert runtime.choose("default", pipeline="fast", device="cpu") == runtime.DEFAULT
    monkeypatch.setattr(runtime, "cuda_build_installed", lambda: True)
    assert runtime.choose("auto", pipeline="fast", device="auto") == runtime.DEFAULT
    monkeypatch.setattr(runtime, "cuda_build_installed", lambda: False)
    assert runtime.choose("auto", pipeline="fast", device="auto") == tuned
    with pytest.raises(ValueError, match="runtime must be one of"):
        runtime.choose("fastest", pipeline="fast", device="cpu")


def test_apply_sets_variables_before_mxnet_loads_and_keeps_the_users():
    env = {}
    assert runtime.apply(runtime.Runtime("naive", 2), env, modules={}) == []
    assert env == {"MXNET_ENGINE_TYPE": "NaiveEngine", "OMP_NUM_THREADS": "2"}
    env = {"OMP_NUM_THREADS": "1"}
    notes = runtime.apply(runtime.Runtime("naive", 2), env, modules={})
    assert env == {"MXNET_ENGINE_TYPE": "NaiveEngine", "OMP_NUM_THREADS": "1"}
    assert notes and "keeping OMP_NUM_THREADS=1" in notes[0]
    assert runtime.apply(runtime.DEFAULT, {}, modules={}) == []


def test_apply_says_when_mxnet_is_already_loaded():
    env = {}
    notes = runtime.apply(runtime.Runtime("naive", 2), env, modules={"mxnet": object()})
    assert env == {} and "already loaded" in notes[0] and "MXNET_ENGINE_TYPE=NaiveEngine" in notes[0]
    assert runtime.apply(runtime.Runtime("naive", 2), {"MXNET_ENGINE_TYPE": "NaiveEngine",
                                                       "OMP_NUM_THREADS": "2"},
                         modules={"mxnet": object()}) == []


def test_busy_cores_are_warned_about_only_for_the_threaded_openmp_runtime():
    tuned = runtime.Runtime("naive", 2)
    assert runtime.busy_warning(tuned, busy=0.2) is None
    warning = runtime.busy_warning(tuned, busy=1.0)
    assert "about 1.0 of" in warning and "--runtime default" in warning
    assert runtime.busy_warning(runtime.DEFAULT, busy=2.0) is None
    assert runtime.busy_warning(runtime.Runtime("naive", 1), busy=2.0) is None


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


def test_fast_reproduction_runs_tuned_and_says_so(fashion_root, tmp_path):
    """A real process: the tuned runtime is set before MXNet loads and lands in the JSON."""
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("MXNET_ENGINE_TYPE", "OMP_NUM_THREADS")}
    proc = subprocess.run(
        [sys.executable, "-m", "gluon_bn.cli", "reproduce", "d2l-en", "--variant", "gluon",
         "--pipeline", "fast", "--device", "cpu", "--limit", "600", "--test-limit", "200",
         "--epochs", "1", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "runtime: engine NaiveEngine, OpenMP threads" in proc.stdout
    assert "epoch 1, loss" in proc.stdout
    result = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert result["environment"]["threads"]["MXNET_ENGINE_TYPE"] == "NaiveEngine"
    assert result["config"]["hybridize"] == "graph"
    assert "NaiveEngine" in (tmp_path / "d2l-en_fast_limit600.md").read_text()
