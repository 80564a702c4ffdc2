"""The one bench harness: alternating rounds, medians and ranges, fresh processes, the writer."""

import ast
import io
import os
from pathlib import Path

import pytest

from gluon_bn import harness
from gluon_bn.harness import (
    FAILURES,
    alternate,
    markdown_table,
    ratios,
    run_json_child,
    runtime_environment,
    span,
    spread,
    summarize,
    write_outputs,
)


def recorder(values):
    """A run that answers `values[cell]` (a list taken in turn, or an exception); keeps calls."""
    calls = []

    def run(cell):
        calls.append(cell)
        value = values[cell]
        if isinstance(value, Exception):
            raise value
        return value[calls.count(cell) - 1]

    run.calls = calls
    return run


def test_rounds_repeat_the_same_order_and_report_every_measurement():
    run, turns = recorder({"a": [1, 2], "b": [3, 4], "c": [5, 6]}), []
    rounds = alternate(["a", "b", "c"], run, 2, report=turns.append)
    assert run.calls == ["a", "b", "c", "a", "b", "c"]
    assert rounds.values == {"a": [1, 2], "b": [3, 4], "c": [5, 6]} and rounds.failures == {}
    assert [(t.round, t.index, t.done, t.key, t.value) for t in turns][3:] == [
        (2, 1, 4, "a", 2),
        (2, 2, 5, "b", 4),
        (2, 3, 6, "c", 6),
    ]
    assert {(t.rounds, t.count, t.total) for t in turns} == {(2, 3, 6)}
    assert [t.ends_round for t in turns] == [False, False, True] * 2


def test_reversed_rounds_turn_the_order_every_other_round():
    run = recorder({"a": [1, 1, 1], "b": [2, 2, 2]})
    rounds = alternate(["a", "b"], run, 3, reverse=True)
    assert run.calls == ["a", "b", "b", "a", "a", "b"]
    assert list(rounds.values) == ["a", "b"]  # the result keeps the first round's order


def test_a_key_names_cells_that_are_not_their_own_name():
    cells = [("idle", 1), ("busy", 2)]
    rounds = alternate(cells, lambda cell: cell[1] * 10, 2, key=lambda cell: cell[0])
    assert rounds.values == {"idle": [10, 10], "busy": [20, 20]}


def test_the_probes_rule_times_a_clear_loser_once():
    """The runtime probe's measure: a later round runs only those within `contend` of the
    fastest median so far; values rounded to 3 decimals by the caller."""
    run = recorder({"one": [40, 41], "spin": [20, 22], "sleep": [24, 23], "mxnet": [60, 60]})
    rounds = alternate(
        ["one", "spin", "sleep", "mxnet"],
        lambda c: round(run(c), 3),
        2,
        contend=1.25,
        catch=FAILURES,
    )
    assert run.calls == ["one", "spin", "sleep", "mxnet", "spin", "sleep"]
    assert rounds.values == {"one": [40], "spin": [20, 22], "sleep": [24, 23], "mxnet": [60]}


def test_a_failed_cell_is_dropped_and_named_by_its_errors_last_line():
    run = recorder(
        {
            "one": [30, 30],
            "spin": RuntimeError("probe failed (exit 1):\nlibgomp: boom"),
            "sleep": [35, 35],
            "mxnet": ValueError(""),
        }
    )
    rounds = alternate(["one", "spin", "sleep", "mxnet"], run, 2, catch=FAILURES)
    assert rounds.failures == {"spin": "libgomp: boom", "mxnet": "failed"}
    assert rounds.values == {"one": [30, 30], "sleep": [35, 35]}
    assert run.calls.count("spin") == 1
    with pytest.raises(RuntimeError, match="boom"):  # the benches let failures stop the run
        alternate(["spin"], run, 1)


def test_spreads_ratios_and_the_summary_per_round():
    assert spread([4.0, 6.0, 5.0]) == {"median": 5.0, "min": 4.0, "max": 6.0}
    assert ratios([4.0, 6.0], [2.0, 3.0]) == [2.0, 2.0]
    summary = summarize({"a": [4.0, 6.0, 5.0], "ref": [4.0, 4.0, 5.0]}, "ref")
    assert summary["ratios"] == {"a": [1.0, 1.5, 1.0], "ref": [1.0, 1.0, 1.0]}
    assert summary["summary"]["a"]["ratio"] == {"median": 1.0, "min": 1.0, "max": 1.5}
    assert span(spread([1.0, 1.2, 1.1])) == "1.10 (1.00-1.20)"
    assert span(spread([296.4, 270.2]), 0, ", 2.0x") == "283 (270-296, 2.0x)"


def test_a_markdown_table_aligns_the_columns_it_is_told_to():
    assert markdown_table(["path", "s", ""], [["a / fast", 1, ""]], align="lr") == [
        "| path | s |  |",
        "|---|---:|---|",
        "| a / fast | 1 |  |",
    ]


def test_the_record_and_table_are_written_whole_and_named(tmp_path):
    out, printed = tmp_path / "new", io.StringIO()
    paths = write_outputs(
        out,
        "x",
        {"a": [1.5]},
        "| t |",
        file=printed,
        plot=lambda record, path: path.write_bytes(b"\x89PNG"),
    )
    assert [p.name for p in paths] == ["x.json", "x.md", "x.png"]
    assert (out / "x.json").read_text() == '{\n "a": [\n  1.5\n ]\n}\n'
    assert (out / "x.md").read_text() == "| t |\n" and (out / "x.png").read_bytes() == b"\x89PNG"
    assert printed.getvalue() == "| t |\n" + "".join(f"wrote {p}\n" for p in paths)
    assert sorted(p.name for p in out.iterdir()) == ["x.json", "x.md", "x.png"]


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    (tmp_path / "x.png").write_bytes(b"old")

    def broken(record, path):
        path.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_outputs(tmp_path, "x", {}, "t", file=io.StringIO(), plot=broken)
    assert (tmp_path / "x.png").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json", "x.md", "x.png"]


def test_a_child_gets_the_runtime_it_is_given_and_nothing_inherited(monkeypatch):
    from gluon_bn.runtime import RECORDED, VARIABLES

    assert harness.RUNTIME_VARIABLES == VARIABLES
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.setenv("GOMP_SPINCOUNT", "1")
    env = runtime_environment({"MXNET_ENGINE_TYPE": "NaiveEngine"})
    assert "OMP_NUM_THREADS" not in env and env["MXNET_ENGINE_TYPE"] == "NaiveEngine"
    assert env["GOMP_SPINCOUNT"] == "1"
    assert "GOMP_SPINCOUNT" not in runtime_environment({}, drop=RECORDED)
    assert runtime_environment({"OMP_NUM_THREADS": "2"}, drop=())["OMP_NUM_THREADS"] == "2"


CHILD = """
from gluon_bn.harness import json_child_main
raise SystemExit(json_child_main(None, prog="echo", description="echo",
                                 answer=lambda job: {"twice": 2 * job["n"]}))
"""


def test_a_json_child_answers_on_its_last_line_and_fails_with_its_stderr(tmp_path):
    (tmp_path / "echo_child.py").write_text(CHILD)
    paths = [str(tmp_path), str(Path(harness.__file__).parents[1]), os.environ.get("PYTHONPATH")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    assert run_json_child("echo_child", {"n": 21}, what="echo", env=env) == {"twice": 42}
    with pytest.raises(RuntimeError, match=r"(?s)echo 2 failed \(exit 2\):.*must be a JSON object"):
        run_json_child("echo_child", [1], what="echo 2", env=env)


def test_the_harness_imports_nothing_of_the_package_and_no_mxnet():
    """The runtime probe, below everything that loads MXNet, measures with it."""
    tree = ast.parse(Path(harness.__file__).read_text())
    names = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    ]
    froms = [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert all(node.level == 0 for node in froms)  # nothing relative to the package either
    names += [node.module for node in froms]
    assert "subprocess" in names
    assert not [n for n in names if n.split(".")[0] in ("gluon_bn", "mxnet")]
