"""scripts/reproduce_all.py: every committed record, three seeds, one process each; --dry-run trains nothing."""
import subprocess
import sys
from pathlib import Path

from gluon_bn import published
from gluon_bn.cli import EXIT_INTERRUPTED

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"


def test_the_plan_rewrites_every_committed_record_with_three_seeds():
    planned = published.plan(["--out", str(RESULTS)])
    assert {p.record for p in planned} == set(RESULTS.glob("*.json"))
    assert len({p.record for p in planned}) == len(planned)  # no record written twice
    for p in planned:
        assert len(p.run.seeds) >= 3 and p.run.seeds == (0, 1, 2)
        assert p.run.limit is None and p.run.epochs == p.run.recipe.num_epochs
        assert p.estimate is not None and p.estimate > 0  # by the record it replaces
    faithful = [p for p in planned if p.record.stem == "d2l-en"]
    assert [(p.run.pipeline, p.run.bn_impl, p.run.hybridize) for p in faithful] == [
        ("d2l", "faithful", "none")]


def test_dry_run_lists_every_command_and_trains_nothing(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "reproduce_all.py"), "--dry-run",
         "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("would run 8 commands, each in its own process: 51 trainings "
                          "(variant x seed), 351 epochs; no estimate (no earlier records).")
    assert out.count("\n   writes ") == 8
    for stem in (p.stem for p in RESULTS.glob("*.json")):
        assert f"writes {tmp_path / stem}.json:" in out
    assert "1. gluon-bn reproduce d2l-en --seed 0 1 2 --out results --out" in out
    assert "loop train_ch5, pipeline d2l, BN faithful, hybridize none" in out
    assert list(tmp_path.iterdir()) == []


def test_each_command_runs_in_its_own_process_and_the_worst_status_is_returned(monkeypatch):
    calls, codes = [], iter([0, 4, 0, 0, 0, 0, 0, 0])

    def fake_run(argv, **kwargs):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, next(codes))

    monkeypatch.setattr(published.subprocess, "run", fake_run)
    assert published.reproduce_all(["--epochs", "1"]) == 4
    assert [c[:3] for c in calls] == [[sys.executable, "-m", "gluon_bn.cli"]] * 8
    assert [c[3:] for c in calls] == published.published_commands(["--epochs", "1"])


def test_an_interrupted_command_stops_the_rest(monkeypatch):
    calls = []

    def fake_run(argv, **kwargs):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, EXIT_INTERRUPTED)

    monkeypatch.setattr(published.subprocess, "run", fake_run)
    assert published.reproduce_all() == EXIT_INTERRUPTED
    assert len(calls) == 1


def test_only_runs_the_commands_of_the_named_records(monkeypatch, capsys):
    calls = []

    def fake_run(argv, **kwargs):
        calls.append(argv[3:])
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(published.subprocess, "run", fake_run)
    assert published.main(["--only", "d2l-zh_fast_bn-fast", "d2l-en", "--epochs", "1"]) == 0
    commands = published.published_commands(["--epochs", "1"])
    assert calls == [commands[0], commands[2]]  # in the published order
    assert published.main(["--only", "d2l-fr"]) == 2 and calls == [commands[0], commands[2]]
    err = capsys.readouterr().err
    assert "no published command writes d2l-fr; the records are: d2l-en, " in err
