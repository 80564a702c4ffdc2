"""`gluon-bn bench --layout`: LeNet's stages with each BN, timed in alternating turns."""

import json

import pytest

from gluon_bn import cli
from gluon_bn.bench.layout import KINDS, REFERENCE, STAGES, format_layout

pytestmark = pytest.mark.native


def test_a_tiny_layout_run_times_every_stage_with_every_bn(tmp_path, capsys):
    status = cli.main(
        ["bench", "--layout", "--steps", "1", "--rounds", "2", "--out", str(tmp_path)]
    )
    assert status == 0
    result = json.loads((tmp_path / "layout.json").read_text())
    assert result["kinds"] == list(KINDS) and list(result["stages"]) == [s[0] for s in STAGES]
    for stage, in_channels, side, channels in STAGES:
        entry = result["stages"][stage]
        assert entry["input"] == [256, in_channels, side, side] and entry["channels"] == channels
        for kind in KINDS:
            assert len(entry["seconds"][kind]) == 2 and min(entry["seconds"][kind]) > 0
            # each round's ratio divides by nn.BatchNorm's turn of the same round
            assert entry["ratios"][kind] == pytest.approx(
                [a / b for a, b in zip(entry["seconds"][kind], entry["seconds"][REFERENCE])]
            )
    table = (tmp_path / "layout.md").read_text()
    assert table == format_layout(result) + "\n"
    assert table.count("\n| conv") == len(STAGES) * len(KINDS)
    assert table.strip() in capsys.readouterr().out
