"""`gluon-bn bench` runs on a tiny fraction and writes what it says."""
import io
import json

from gluon_bn import cli


def test_bench_runs_on_a_tiny_fraction(fashion_root, tmp_path, capsys):
    status = cli.main(["bench", "--fraction", "0.01", "--pipeline", "fast", "--bn-impl", "fast",
                       "--repeat", "2", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 0
    result = json.loads((tmp_path / "bench.json").read_text())
    labels = [row["label"] for row in result["rows"]]
    assert labels == ["scratch fast / fast", "gluon / fast", "gluon hybrid / fast", "plain hybrid / fast",
                      "scratch fast graph / fast", "gluon graph / fast", "plain graph / fast"]
    assert result["environment"]["runtime"].startswith("engine ")
    for row in result["rows"]:
        assert row["timed_examples"] == 768  # 1% of 60000, rounded up to whole batches of 256
        assert row["seconds_per_epoch"] > row["timed_seconds"] > 0
        assert row["seconds_per_epoch"] == min(row["all_seconds_per_epoch"])
        assert len(row["all_seconds_per_epoch"]) == 2
    builtin = next(r for r in result["rows"] if r["label"] == "gluon / fast")
    assert builtin["ratio_to_builtin"] == 1.0
    table = (tmp_path / "bench.md").read_text()
    assert table.splitlines()[0].startswith("| path | s/epoch") and table.strip() in out
    assert (tmp_path / "bench.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_rejects_a_fraction_above_one(capsys):
    assert cli.main(["bench", "--fraction", "2"]) == 2
    assert "at most 1" in capsys.readouterr().err


def test_runtime_sweep_runs_each_runtime_in_its_own_process(fashion_root, tmp_path):
    """Two runtimes, one path: each child process reports the engine it was started with."""
    from gluon_bn.run.bench import BenchPlan, format_sweep, sweep_runtimes
    from gluon_bn.runtime import DEFAULT, Runtime

    plan = BenchPlan(fraction=0.005, pipelines=("fast",), impls=("fast",),
                     data_root=str(fashion_root))
    sweep = sweep_runtimes(plan, (DEFAULT, Runtime("naive", 1)), file=io.StringIO())
    engines = [run["result"]["environment"]["threads"]["MXNET_ENGINE_TYPE"] for run in sweep["runs"]]
    assert engines == [None, "NaiveEngine"]
    table = format_sweep(sweep).splitlines()
    assert table[0] == "| path | MXNet's default | NaiveEngine, OMP 1 |"
    assert len(table) == 2 + len(sweep["runs"][0]["result"]["rows"])


def test_the_bench_runs_runtimes_without_the_command_line():
    """The library never calls back up into its CLI: the sweep's children run this module."""
    import inspect
    from gluon_bn.run import bench
    assert "gluon_bn.cli" not in inspect.getsource(bench)
