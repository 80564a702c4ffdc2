"""`gluon-bn bench --scaling`: the FLOP count, the plan's checks, and a tiny run end to end."""

import json
import re

import pytest

from gluon_bn import cli
from gluon_bn.bench.scaling import PATHS, ScalingPlan, matmul_flops_per_example


def test_flop_count_is_the_lenets_products_counted_by_hand():
    from gluon_bn.models import build_net
    from gluon_bn.recipes import get_recipe

    # d2l-en LeNet on 28 x 28: conv 5x5 1->6 (24 x 24 out), pool, conv 5x5 6->16 (8 x 8 out),
    # pool, dense 256->120->84->10; every multiply-add is two FLOPs.
    macs = 6 * 24 * 24 * (1 * 5 * 5) + 16 * 8 * 8 * (6 * 5 * 5) + 256 * 120 + 120 * 84 + 84 * 10
    net = build_net(get_recipe("d2l-en"), "plain")
    assert matmul_flops_per_example(net, (1, 28, 28)) == 2 * macs


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"threads": ()}, "threads must be positive integers, got []"),
        ({"threads": (1,), "batch_sizes": (64, 0)}, "batch_sizes must be positive integers"),
        ({"threads": (1,), "fraction": 0.0}, "fraction must lie in (0, 1]"),
        ({"threads": (1,), "rounds": 0}, "rounds must be a positive integer"),
    ],
)
def test_the_plan_refuses_what_cannot_run(fields, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ScalingPlan(**fields)


def test_cells_run_in_the_same_order_every_round():
    plan = ScalingPlan(threads=(1, 2), batch_sizes=(64, 128))
    cells = plan.cells()
    assert len(cells) == 2 * 2 * len(PATHS) and len(set(cells)) == len(cells)
    assert cells == plan.cells()
    without = ScalingPlan(threads=(1, 2), batch_sizes=(64, 128), native=False).cells()
    assert without == [c for c in cells if c[0][1] != "native"] and len(without) == 2 * 2 * 2


def test_a_tiny_scaling_run_writes_its_table_and_chart(fashion_root, tmp_path, capsys):
    status = cli.main(
        [
            "bench",
            "--scaling",
            "--batch-sizes",
            "64",
            "--threads",
            "1",
            "--rounds",
            "1",
            "--fraction",
            "0.005",
            "--data-root",
            str(fashion_root),
            "--bn-impl",
            "fast",
            "--out",
            str(tmp_path),
        ]
    )  # no native: no compiler needed
    assert status == 0
    result = json.loads((tmp_path / "scaling.json").read_text())
    assert [c["label"] for c in result["cells"]] == [
        "gluon graph / fast",
        "scratch fast graph / fast",
    ]
    for cell in result["cells"]:
        assert (cell["batch_size"], cell["threads"], len(cell["seconds"])) == (64, 1, 1)
        assert cell["seconds_median"] > 0 and cell["floor_seconds"] > 0
        assert 100 < cell["peak_mib"] < 4000  # MXNet and the preloaded images, one process each
    assert result["flops_per_epoch"] == pytest.approx(3 * 60000 * 563280)
    table = (tmp_path / "scaling.md").read_text()
    assert (
        table.splitlines()[0].startswith("| path | threads | batch |")
        and table.strip() in capsys.readouterr().out
    )
    assert (tmp_path / "scaling.png").read_bytes()[:4] == b"\x89PNG"
