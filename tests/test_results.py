"""Every committed result parses, matches its recipe, and its tables are what the package generates."""

import json
from pathlib import Path

import pytest

from gluon_bn import get_recipe
from gluon_bn.records import SCHEMA_VERSION, Reproduction, dumps, load_result, migrate
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
    assert result["recipe_data"]["conventions"] == json.loads(
        json.dumps(result["recipe_data"]["conventions"])
    )
    assert result["recipe_data"]["conventions"]["momentum_on"] == recipe.conventions.momentum_on
    runs = {(r["variant"], r["seed"]) for r in result["runs"]}
    assert runs == {(v, s) for v in cfg["variants"] for s in cfg["seeds"]}
    for run in result["runs"]:
        assert [h["epoch"] for h in run["history"]] == list(range(1, cfg["epochs"] + 1))
    for ext in ("md", "png"):
        assert path.with_suffix(f".{ext}").exists()
    assert result["schema"] == SCHEMA_VERSION
    rep = load_result(path)
    assert path.with_suffix(".md").read_text() == markdown_report(rep) + "\n"
    assert path.read_text() == dumps(rep)  # the file is exactly its record's serialisation


def test_readme_is_generated_from_the_json():
    assert (RESULTS / "README.md").read_text() == render_readme(RESULTS)


@pytest.mark.parametrize("path", FILES[:2], ids=[p.stem for p in FILES[:2]])
def test_a_record_without_schema_migrates_to_the_same_record(path):
    """Version 1 files (before the schema key and the loop) load as the current ones do."""
    current = json.loads(path.read_text())
    old = {k: v for k, v in current.items() if k != "schema"}
    old["config"] = {k: v for k, v in current["config"].items() if k != "loop"}
    old["config"]["dataset"] = "auto"
    assert migrate(old)["config"] == current["config"]
    assert json.loads(dumps(Reproduction.from_json(old))) == current


def test_an_unknown_schema_is_refused_with_the_versions_read(tmp_path):
    data = json.loads(FILES[0].read_text())
    data["schema"] = 99
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="unknown result schema 99.*upgrade"):
        load_result(bad)
