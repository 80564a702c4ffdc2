"""scripts/reproduce_all.py: every committed record, three seeds, one task per run; --dry-run trains nothing."""

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
        ("d2l", "faithful", "none")
    ]


def test_dry_run_lists_every_command_and_trains_nothing(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "reproduce_all.py"),
            "--dry-run",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith(
        "would run 8 commands as tasks of one OpenMP thread each: 51 trainings "
        "(variant x seed), 351 epochs; no estimate (no earlier records)."
    )
    assert out.count("\n   writes ") == 8
    for stem in (p.stem for p in RESULTS.glob("*.json")):
        assert f"writes {tmp_path / stem}.json:" in out
    assert "1. gluon-bn reproduce d2l-en --seed 0 1 2 --out results --out" in out
    assert "loop train_ch5, pipeline d2l, BN faithful, hybridize none" in out
    assert list(tmp_path.iterdir()) == []


class StubTask:
    """Stands in for gluon_bn.run.tasks.reproduce_run: records its calls, trains nothing."""

    def __init__(self, fail=(), interrupt_after=None):
        self.calls, self.fail, self.interrupt_after = [], set(fail), interrupt_after

    def __call__(self, recipe, options, variant, seed, device):
        from gluon_bn.records import EpochStats, VariantRun

        self.calls.append((recipe, variant, seed))
        if self.interrupt_after is not None and len(self.calls) > self.interrupt_after:
            raise KeyboardInterrupt
        if (recipe, variant, seed) in self.fail:
            raise RuntimeError(f"boom\nlast line of {variant} {seed}")
        run = VariantRun(variant, seed, (EpochStats(1, 0.5, 0.8, 0.7, 1.0, 0.9, 1000.0),))
        from gluon_bn.report.provenance import environment

        return run, f"{recipe} / {variant} / seed {seed}\n", environment("cpu(0)")


def test_every_run_is_a_task_and_each_record_is_written_as_its_runs_finish(tmp_path, capsys):
    task = StubTask()
    code = published.reproduce_all(
        ["--epochs", "1", "--out", str(tmp_path)], ["d2l-zh_fast_bn-fast"], task=task
    )
    assert code == 0
    assert task.calls == [("d2l-zh", v, s) for s in (0, 1, 2) for v in ("scratch", "gluon")]
    written = tmp_path / "d2l-zh_fast_bn-fast.json"
    from gluon_bn.records import load_result

    record = load_result(written)
    assert [(r.variant, r.seed) for r in record.runs] == [
        (v, s) for s in (0, 1, 2) for v in ("scratch", "gluon")
    ]
    out = capsys.readouterr().out
    assert "6 run(s) for 1 record(s)" in out and "(6 of 6 runs)" in out


def test_a_failed_run_is_named_the_others_are_written_and_the_status_says_so(tmp_path, capsys):
    from gluon_bn.cli import EXIT_RUNS_FAILED

    task = StubTask(fail={("d2l-zh", "gluon", 1)})
    code = published.reproduce_all(
        ["--epochs", "1", "--out", str(tmp_path)], ["d2l-zh_fast_bn-fast"], task=task
    )
    assert code == EXIT_RUNS_FAILED and len(task.calls) == 6
    from gluon_bn.records import load_result

    assert len(load_result(tmp_path / "d2l-zh_fast_bn-fast.json").runs) == 5
    err = capsys.readouterr().err
    assert "d2l-zh_fast_bn-fast/gluon/seed-1: RuntimeError: last line of gluon 1" in err


def test_an_interrupt_stops_the_rest_and_keeps_what_finished(tmp_path):
    task = StubTask(interrupt_after=2)
    code = published.reproduce_all(
        ["--epochs", "1", "--out", str(tmp_path)], ["d2l-zh_fast_bn-fast"], task=task
    )
    assert code == EXIT_INTERRUPTED and len(task.calls) == 3
    from gluon_bn.records import load_result

    assert len(load_result(tmp_path / "d2l-zh_fast_bn-fast.json").runs) == 2


def test_only_runs_the_commands_of_the_named_records(tmp_path, capsys):
    task = StubTask()
    assert (
        published.reproduce_all(
            ["--epochs", "1", "--out", str(tmp_path)], ["d2l-zh_fast_bn-fast", "d2l-en"], task=task
        )
        == 0
    )
    assert {c[0] for c in task.calls} == {"d2l-en", "d2l-zh"}
    assert sorted(p.name for p in tmp_path.glob("*.json")) == [
        "d2l-en.json",
        "d2l-zh_fast_bn-fast.json",
    ]
    assert published.main(["--only", "d2l-fr"]) == 2
    err = capsys.readouterr().err
    assert "no published command writes d2l-fr; the records are: d2l-en, " in err
