"""The runtime chosen by measurement: the choice from probe timings, the per-machine cache and
its bad input, the collapse guard, and the oneDNN instruction-set cap."""

import json

import pytest

from gluon_bn.runtime import machine, probe, watch


def stub(ms):
    """A probe that answers `ms[name]` (a number, a list taken in turn, or an exception)."""
    calls = []

    def run(candidate):
        calls.append(candidate.name)
        value = ms[candidate.name]
        if isinstance(value, Exception):
            raise value
        if isinstance(value, list):
            return value[sum(1 for c in calls if c == candidate.name) - 1]
        return value

    run.calls = calls
    return run


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "runtime" / "runtime.json"


def test_the_fastest_candidate_wins_and_a_tie_goes_to_the_safer_one():
    assert probe.decide({"one": [33], "spin": [21, 21.5], "sleep": [50], "mxnet": [31]}) == "spin"
    # within 5 % of the fastest counts as the same speed: sleeping bounds later load better
    assert probe.decide({"spin": [20.0], "sleep": [20.9], "one": [40]}) == "sleep"
    assert probe.decide({"spin": [20.0], "sleep": [21.5], "one": [40]}) == "spin"
    assert probe.decide({"spin": [30.0], "one": [29.5], "mxnet": [30.1]}) == "one"
    assert probe.decide({"spin": [20.0], "sleep": []}) == "spin"  # a failed probe has no values
    with pytest.raises(ValueError, match="no runtime candidate was measured"):
        probe.decide({"spin": []})


def test_the_candidates_are_one_thread_spinning_sleeping_and_mxnets_own():
    names = [c.name for c in probe.candidates(2)]
    assert names == ["one", "spin", "sleep", "mxnet"]
    by = {c.name: c.runtime for c in probe.candidates(4)}
    assert by["one"].variables() == {"MXNET_ENGINE_TYPE": "NaiveEngine", "OMP_NUM_THREADS": "1"}
    assert by["spin"].variables() == {"MXNET_ENGINE_TYPE": "NaiveEngine", "OMP_NUM_THREADS": "4"}
    assert by["sleep"].variables()["OMP_WAIT_POLICY"] == "PASSIVE"
    assert by["mxnet"].variables() == {}
    assert [c.name for c in probe.candidates(1)] == ["one", "mxnet"]  # one core: nothing to wait on


def test_rounds_alternate_and_a_clear_loser_is_not_timed_again():
    run = stub({"one": [40, 41], "spin": [20, 22], "sleep": [24, 23], "mxnet": [60, 60]})
    timings, failures = probe.measure(probe.candidates(2), rounds=2, run=run)
    assert run.calls == ["one", "spin", "sleep", "mxnet", "spin", "sleep"]
    assert timings == {"one": [40], "spin": [20, 22], "sleep": [24, 23], "mxnet": [60]}
    assert failures == {}


def test_a_probe_that_fails_is_left_out_and_named():
    run = stub(
        {
            "one": 30,
            "spin": RuntimeError("probe failed (exit 1):\nlibgomp: boom"),
            "sleep": 35,
            "mxnet": 31,
        }
    )
    timings, failures = probe.measure(probe.candidates(2), rounds=2, run=run)
    assert "spin" not in timings and failures == {"spin": "libgomp: boom"}
    assert run.calls.count("spin") == 1


def test_the_probe_runs_once_per_machine_then_the_cache_decides(cache):
    run = stub({"one": 33, "spin": 21, "sleep": 50, "mxnet": 32})
    first = probe.choose(cores=2, path=cache, run=run)
    assert (first.candidate.name, first.reason) == ("spin", "probe")
    line = first.line()
    assert (
        line.startswith("spinning chosen by a ") and "spinning 21.0" in line and "ms/step" in line
    )
    assert "sleeping 50.0" in line and "one thread 33.0" in line
    saved = json.loads(cache.read_text())
    assert saved["key"] == machine.machine_key() and saved["timings"]["spin"] == [21, 21]
    calls = len(run.calls)
    again = probe.choose(cores=2, path=cache, run=run)
    assert (again.candidate.name, again.reason, len(run.calls)) == ("spin", "cache", calls)
    assert "cached probe (--retune measures again)" in again.line()
    retuned = probe.choose(cores=2, path=cache, run=run, retune=True)
    assert retuned.reason == "probe" and len(run.calls) > calls


@pytest.mark.parametrize(
    "content, says",
    [
        ("{not json", "ignoring the runtime cache"),
        ("[1, 2]", "not a JSON object"),
        ('{"key": {}, "timings": {"spin": ["fast"]}}', "timings are not lists of numbers"),
        ('{"key": {}}', "ignoring the runtime cache"),
        ('{"key": {"cpu_model": "another CPU"}, "timings": {"one": [1.0]}}', "another machine"),
    ],
)
def test_a_corrupt_or_foreign_cache_is_ignored_with_one_line_and_measured_again(
    cache, content, says
):
    cache.parent.mkdir(parents=True)
    cache.write_text(content)
    notes = []
    run = stub({"one": 33, "spin": 21, "sleep": 50, "mxnet": 32})
    choice = probe.choose(cores=2, path=cache, run=run, notes=notes)
    assert choice.reason == "probe" and run.calls
    assert len(notes) == 1 and says in notes[0] and "\n" not in notes[0]
    assert json.loads(cache.read_text())["key"] == machine.machine_key()  # replaced


def test_a_busy_machine_gets_the_load_choice_without_a_probe(cache):
    run = stub({})
    choice = probe.choose(cores=2, busy=True, path=cache, run=run)
    assert choice.reason == "load" and choice.candidate.name == "sleep" and run.calls == []
    assert not cache.exists()
    assert "load" in choice.line()


def test_when_every_probe_fails_the_run_takes_one_thread_and_says_why(cache):
    notes = []
    run = stub({name: OSError("no such file") for name in ("one", "spin", "sleep", "mxnet")})
    choice = probe.choose(cores=2, path=cache, run=run, notes=notes)
    assert (choice.candidate.name, choice.reason) == ("one", "fallback")
    assert len(notes) == 4 and all("runtime probe failed" in n for n in notes)
    assert "one thread" in choice.line() and not cache.exists()


def test_thread_counts_asked_for_use_the_wait_the_probe_preferred(cache):
    assert probe.spinning_preferred(cache) is False  # nothing measured: sleeping threads
    probe.write_cache(cache, machine.machine_key(), {"spin": [20.0], "sleep": [40.0]})
    assert probe.spinning_preferred(cache) is True
    probe.write_cache(cache, machine.machine_key(), {"spin": [40.0], "sleep": [20.0]})
    assert probe.spinning_preferred(cache) is False


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def feed(guard, clock, seconds, batches):
    notes = []
    for _ in range(batches):
        clock.now += seconds
        note = guard.after_batch()
        if note:
            notes.append(note)
    return notes


def test_the_guard_drops_to_one_thread_when_steps_collapse_and_records_where():
    clock, dropped = Clock(), []
    guard = watch.LoadWatch(2, allowed=True, clock=clock, drop=dropped.append)
    guard.begin({"variant": "gluon", "seed": 0})
    assert feed(guard, clock, 0.03, 60) == []  # steady: nothing
    guard.epoch_ended()
    clock.now += 5.0  # the test pass is not a step
    assert feed(guard, clock, 0.03, 3) == []
    notes = feed(guard, clock, 0.09, 30)  # 3x slower: load arrived
    assert len(notes) == 1 and "drops from 2 OpenMP threads to 1" in notes[0]
    assert dropped == [1]
    (event,) = guard.events
    assert event["variant"] == "gluon" and event["epoch"] == 2 and event["from"] == 2
    assert event["to"] == 1 and event["slowdown"] == pytest.approx(3.0, rel=0.01)
    assert feed(guard, clock, 0.3, 50) == [] and dropped == [1]  # once


def test_the_guard_leaves_a_requested_count_alone_and_says_so_once():
    clock, dropped = Clock(), []
    guard = watch.LoadWatch(2, allowed=False, clock=clock, drop=dropped.append)
    feed(guard, clock, 0.03, 30)
    notes = feed(guard, clock, 0.1, 60)
    assert len(notes) == 1 and "--threads fixes the count at 2" in notes[0]
    assert dropped == [] and guard.events == []


def test_each_run_gets_its_own_baseline_and_one_thread_is_never_watched():
    clock, dropped = Clock(), []
    guard = watch.LoadWatch(2, allowed=True, clock=clock, drop=dropped.append)
    guard.begin({"variant": "gluon"})
    feed(guard, clock, 0.01, 40)
    guard.begin({"variant": "scratch"})  # 7x slower by design, not load
    assert feed(guard, clock, 0.07, 80) == [] and dropped == []
    single = watch.LoadWatch(1, allowed=True, clock=clock, drop=dropped.append)
    feed(single, clock, 0.01, 30)
    assert feed(single, clock, 1.0, 60) == [] and dropped == []


def test_an_isa_the_cpu_lacks_is_refused_in_one_line(monkeypatch):
    monkeypatch.setattr(machine, "onednn_isa", lambda environ=None, path=None: "Intel AVX2")
    environ = {}
    with pytest.raises(ValueError, match=r"--isa avx512: this CPU runs oneDNN at 'Intel AVX2'"):
        machine.pin_isa("avx512", environ)
    assert "DNNL_MAX_CPU_ISA" not in environ
    line = machine.pin_isa("avx2", environ)
    assert environ["DNNL_MAX_CPU_ISA"] == "AVX2" and "Intel AVX2" in line
    with pytest.raises(ValueError, match="--isa must be one of"):
        machine.pin_isa("neon", {})


@pytest.mark.slow
def test_the_real_probe_and_onednn_answer_from_fresh_processes(tmp_path):
    ms = probe.probe(probe.by_name("one", 2))
    assert 0.5 < ms < 5000
    isa = machine.onednn_isa({}, path=tmp_path / "isa.json")
    assert isa is None or isa.startswith("Intel ")
    if isa is not None:  # cached: the second answer is the file's
        assert json.loads((tmp_path / "isa.json").read_text())["isa"] == isa
        capped = machine.onednn_isa({"DNNL_MAX_CPU_ISA": "SSE41"}, path=tmp_path / "isa2.json")
        assert capped == "Intel SSE4.1"


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["reproduce", "d2l-en", "--jobs", "2"], True),
        (["reproduce", "d2l-en"], False),
        (["study", "covariate-shift", "--jobs", "2"], True),
        (["study", "compiled-speed", "--jobs", "2"], False),  # timed here, serially
        (["study", "all", "--jobs", "2"], False),  # compiled-speed is among them
    ],
)
def test_the_probe_is_left_out_where_every_run_goes_to_workers(monkeypatch, argv, expected):
    from gluon_bn import cli, runtime

    monkeypatch.setattr(runtime, "usable_cores", lambda: 2)
    monkeypatch.delenv("GLUON_BN_SCHEDULER", raising=False)
    assert cli._only_coordinates(cli.build_parser().parse_args(argv)) is expected


def test_a_scheduler_in_the_environment_makes_this_process_only_coordinate(monkeypatch):
    from gluon_bn import cli

    monkeypatch.setenv("GLUON_BN_SCHEDULER", "tcp://127.0.0.1:1")
    assert cli._only_coordinates(cli.build_parser().parse_args(["reproduce", "d2l-en"]))


def test_with_this_machine_s_idle_steps_two_runs_started_together_are_caught(tmp_path):
    """Slow from the first step: the run's own first window would hide it, the idle time not."""
    idle = watch.IdleSteps(tmp_path / "idle.json")
    run = {
        "recipe": "d2l-en",
        "variant": "gluon",
        "pipeline": "fast",
        "hybridize": "graph",
        "batch_size": 256,
    }
    probe.seed_idle_steps({"spin": [30.0, 32.0], "one": [47.0]}, 2, idle)
    key = watch.signature(run, 2, None)
    assert idle.get(key) == pytest.approx(0.031)
    clock, dropped = Clock(), []
    guard = watch.LoadWatch(2, allowed=True, clock=clock, drop=dropped.append, idle=idle)
    guard.begin({"variant": "gluon", "seed": 0}, run)
    notes = feed(guard, clock, 0.031 * 2.5, 30)  # contended from the start
    assert len(notes) == 1 and "this machine's idle steps" in notes[0] and dropped == [1]
    own = watch.LoadWatch(2, allowed=True, clock=clock, drop=dropped.append)
    own.begin({"variant": "gluon", "seed": 0}, run)  # no idle time: its own baseline
    assert feed(own, clock, 0.031 * 2.5, 60) == []


def test_idle_steps_keep_the_fastest_a_run_saw_and_replace_the_probe_s_estimate(tmp_path):
    idle = watch.IdleSteps(tmp_path / "idle.json")
    idle.seed("k", 0.030)
    idle.offer("k", 0.060)  # 2x the probe's: load, not the run's idle steps
    assert idle.get("k") == 0.030
    idle.offer("k", 0.036)  # the run's own steps (data, metrics) near the probe's
    assert idle.get("k") == 0.036
    idle.offer("k", 0.050)
    idle.seed("k", 0.020)  # a run's measurement outranks a later probe's
    assert watch.IdleSteps(tmp_path / "idle.json").get("k") == 0.036
    (tmp_path / "idle.json").write_text("not json")
    assert watch.IdleSteps(tmp_path / "idle.json").get("k") is None
