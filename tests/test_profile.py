"""`gluon-bn bench --profile`: per-operator tables of one training step, from MXNet's profiler."""

import json

from gluon_bn import cli
from gluon_bn.bench.profile import format_profile


def test_a_profile_names_the_operators_of_each_path(fashion_root, tmp_path, capsys):
    status = cli.main(
        [
            "bench",
            "--profile",
            "--pipeline",
            "fast",
            "--bn-impl",
            "fast",
            "--steps",
            "2",
            "--data-root",
            str(fashion_root),
            "--out",
            str(tmp_path),
        ]
    )
    assert status == 0
    result = json.loads((tmp_path / "profile.json").read_text())
    profiles = {p["label"]: p for p in result["profiles"]}
    assert "gluon graph / fast" in profiles and "scratch fast graph / fast" in profiles
    for p in profiles.values():
        names = [row[0] for row in p["operators"]]
        assert p["batches"] == 2 and "Convolution" in names
        assert p["wall_ms"] >= p["operator_ms"] > 0
        assert [row[2] for row in p["operators"]] == sorted(
            (row[2] for row in p["operators"]), reverse=True
        )
    # the built-in layer runs MXNet's BatchNorm operator; the scratch layer never does
    assert "BatchNorm" in [r[0] for r in profiles["gluon / fast"]["operators"]]
    assert "BatchNorm" not in [r[0] for r in profiles["scratch fast / fast"]["operators"]]
    table = (tmp_path / "profile.md").read_text()
    assert table.strip() in capsys.readouterr().out and not (tmp_path / "profile.png").exists()


def test_the_table_sums_the_rest_and_keeps_the_time_outside_operators():
    profile = {
        "label": "x",
        "batches": 4,
        "wall_ms": 10.0,
        "operator_ms": 8.0,
        "outside_ms": 2.0,
        "operators": [["a", 1, 5.0], ["b", 2, 2.0], ["c", 1, 0.5], ["d", 3, 0.5]],
    }
    lines = format_profile([profile], top=2).splitlines()
    assert lines[0] == "**x**: 10.00 ms per step (4 steps profiled)"
    assert lines[4:] == [
        "| `a` | 1 | 5.00 | 50% |",
        "| `b` | 2 | 2.00 | 20% |",
        "| 2 other operators | 4 | 1.00 | 10% |",
        "| outside operators (Python, autograd, calls) |  | 2.00 | 20% |",
    ]


def test_a_compiled_segment_is_named_by_its_first_operators():
    from gluon_bn.bench.profile import operator_name

    assert operator_name("Convolution") == "`Convolution`"
    assert (
        operator_name("BatchNorm,Activation,Pooling,Convolution,BatchN")
        == "segment `BatchNorm,Activation,Pooling,...`"
    )
