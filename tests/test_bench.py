"""`gluon-bn bench` runs on a tiny fraction and writes what it says."""

import io
import json

import pytest

from gluon_bn import cli


def test_bench_runs_on_a_tiny_fraction(fashion_root, tmp_path, capsys):
    status = cli.main(
        [
            "bench",
            "--fraction",
            "0.01",
            "--pipeline",
            "fast",
            "--bn-impl",
            "fast",
            "--repeat",
            "2",
            "--out",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert status == 0
    result = json.loads((tmp_path / "bench.json").read_text())
    labels = [row["label"] for row in result["rows"]]
    assert labels == [
        "scratch fast / fast",
        "gluon / fast",
        "gluon hybrid / fast",
        "plain hybrid / fast",
        "scratch fast graph / fast",
        "gluon graph / fast",
        "plain graph / fast",
    ]
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
    from gluon_bn.bench.bench import BenchPlan
    from gluon_bn.bench.sweep import format_sweep, sweep_runtimes
    from gluon_bn.runtime import DEFAULT, Runtime

    plan = BenchPlan(
        fraction=0.005, pipelines=("fast",), impls=("fast",), data_root=str(fashion_root)
    )
    sweep = sweep_runtimes(plan, (DEFAULT, Runtime("naive", 1)), file=io.StringIO())
    engines = [
        run["result"]["environment"]["threads"]["MXNET_ENGINE_TYPE"] for run in sweep["runs"]
    ]
    assert engines == [None, "NaiveEngine"]
    table = format_sweep(sweep).splitlines()
    assert table[0] == "| path | MXNet's default | NaiveEngine, OMP 1 |"
    assert len(table) == 2 + len(sweep["runs"][0]["result"]["rows"])


def test_the_bench_runs_runtimes_without_the_command_line():
    """The library never calls back up into its CLI: the sweep's children run bench's main."""
    import inspect

    from gluon_bn.bench import bench, sweep

    assert "gluon_bn.cli" not in inspect.getsource(bench)
    assert "gluon_bn.cli" not in inspect.getsource(sweep) and sweep.CHILD == bench.__name__


@pytest.mark.parametrize(
    "modes, named",
    [
        (["--peer", "torch", "--scaling"], "--scaling and --peer torch"),
        (["--busy", "--scale-out", "--sweep-runtimes"], "--scale-out, --sweep-runtimes and --busy"),
    ],
)
def test_two_bench_modes_at_once_are_refused_in_one_line(tmp_path, capsys, modes, named):
    """Before any work (no runtime chosen, nothing timed or written): one mode at a time."""
    status = cli.main(["bench", *modes, "--out", str(tmp_path)])
    captured = capsys.readouterr()
    assert status == 2 and captured.out == "" and not any(tmp_path.iterdir())
    assert captured.err.splitlines() == [
        f"gluon-bn: error: {named} are separate benches; give one of them"
    ]


def test_busy_table_gives_median_range_and_ratio_to_the_defaults_idle():
    from gluon_bn.bench.contention import format_busy

    result = {
        "plan": {
            "limit": 6400,
            "rounds": 3,
            "scenarios": ["idle", "busy-core"],
            "timeout": 300.0,
            "cores": 2,
        },
        "contenders": [{"label": "default"}, {"label": "spin"}],
        "seconds": {
            "default": {"idle": [1.0, 1.2, 1.1], "busy-core": [1.5, 1.7, 1.6]},
            "spin": {"idle": [0.9, 1.0, 1.1], "busy-core": [30.0, 40.0, 300.0]},
        },
    }
    table = format_busy(result)
    assert "| default | 1.10 (1.00-1.20, 1.0x) | 1.60 (1.50-1.70, 1.5x) |" in table
    assert "| spin | 1.00 (0.90-1.10, 0.9x) | 40.00 (30.00-300.00, 36.4x) |" in table
    assert "300 s timeout counts as 300 s" in table


def test_busy_plan_refuses_what_it_cannot_run():
    from gluon_bn.bench.contention import BusyPlan, contenders

    with pytest.raises(ValueError, match="unknown scenario"):
        BusyPlan(scenarios=("idle", "crowded"))
    with pytest.raises(ValueError, match="--limit >= 512"):
        BusyPlan(limit=100)
    labels = [c.label for c in contenders(2)]
    assert labels[0].startswith("default") and "NaiveEngine, 1 thread" in labels


def test_one_busy_measurement_starts_and_stops_its_competitor(fashion_root, tmp_path):
    """A measured run beside a spinning core: its epoch-2 time comes back, nothing is left."""
    from gluon_bn.bench.contention import BusyPlan, Contender, measure

    plan = BusyPlan(limit=512, rounds=1, data_root=str(fashion_root), timeout=120)
    runs = measure(plan, "busy-core", Contender("one", ("--threads", "1")), str(tmp_path / "m"))
    assert len(runs) == 1 and 0 < runs[0][0] < 120 and runs[0][1] == 1


def test_scale_out_table_gives_ratios_rates_and_labels_oversubscription():
    from dataclasses import asdict

    from gluon_bn.bench.scaleout import ScaleOutPlan, format_scale_out

    plan = ScaleOutPlan(workers=(2, 4), rounds=3)
    serial, jobs = [40.0, 44.0, 42.0], [30.0, 29.0, 33.0]
    grid = {
        "serial --threads 2": [{"seconds": s, "load": 0.1} for s in serial],
        "--jobs 2": [{"seconds": s, "load": 0.0} for s in jobs],
    }
    workers = {
        str(w): [
            {
                "start_seconds": 2.0,
                "grid_seconds": 36.0 * w / 2,
                "runs": 12,
                "run_seconds": [1.5] * 12,
                "load": None,
            }
            for _ in range(3)
        ]
        for w in (2, 4)
    }
    overhead = [{"ms_per_task": ms} for ms in (3.0, 4.0, 5.0)]
    table = format_scale_out(
        {"plan": asdict(plan), "cores": 2, "grid": grid, "workers": workers, "overhead": overhead}
    )
    assert f"| --jobs 2 | 30.0 (29.0-33.0) | {30.0 / 42.0:.2f} |" in table
    assert f"| 2 | {3600 * 12 / 36:.0f} " in table
    assert "| 4 (oversubscribed) |" in table and "| 2 (oversubscribed)" not in table
    assert "4.0 (3.0-5.0) ms per empty task" in table
