"""Every committed result parses, matches its recipe, and its tables are what the package generates."""
import json
from pathlib import Path

import pytest

from gluon_bn import get_recipe
from gluon_bn.report import markdown_report
from gluon_bn.results import render_readme

RESULTS = Path(__file__).resolve().parent.parent / "results"
FILES = sorted(RESULTS.glob("*.json"))


def test_there_are_results():
    assert FILES, "results/ holds no JSON"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_result_matches_its_recipe_and_its_tables(path):
    result = json.loads(path.read_text())
    recipe = get_recipe(result["recipe"])
    cfg = result["config"]
    if not cfg.get("limit"):  # full-length runs use the document's set-up
        assert cfg["epochs"] == recipe.num_epochs
        assert cfg["batch_size"] == recipe.batch_size
        assert cfg["lr"] == recipe.learning_rate
    assert result["recipe_data"]["conventions"] == json.loads(json.dumps(
        result["recipe_data"]["conventions"]))
    assert result["recipe_data"]["conventions"]["momentum_on"] == recipe.conventions.momentum_on
    runs = {(r["variant"], r["seed"]) for r in result["runs"]}
    assert runs == {(v, s) for v in cfg["variants"] for s in cfg["seeds"]}
    for run in result["runs"]:
        assert [h["epoch"] for h in run["history"]] == list(range(1, cfg["epochs"] + 1))
    for ext in ("md", "png"):
        assert path.with_suffix(f".{ext}").exists()
    assert path.with_suffix(".md").read_text() == markdown_report(result) + "\n"


def test_readme_is_generated_from_the_json():
    assert (RESULTS / "README.md").read_text() == render_readme(RESULTS)
