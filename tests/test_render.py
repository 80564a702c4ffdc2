"""gluon_bn.render: a rendered copy has every output, figures included, and says how it was made.

Tiny notebooks only (a print and a figure): the real ones are rendered by
``scripts/render_notebooks.py``, not by the tests.
"""

import os

import pytest

nbformat = pytest.importorskip("nbformat", reason="pip install -e '.[test]' (nbformat)")
pytest.importorskip("nbclient", reason="pip install -e '.[test]' (nbclient)")
pytest.importorskip("ipykernel", reason="pip install -e '.[test]' (ipykernel)")

from gluon_bn.render import main, render_all, render_notebook  # noqa: E402

PRINT_SMOKE = 'import os\nprint("smoke:", os.environ.get("GLUON_BN_SMOKE"))'
FIGURE = "import matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0])\nplt.show()"


def write_notebook(path, *sources):
    """A notebook stored as the project stores them: a title, code cells without outputs."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_markdown_cell("# A tiny notebook")]
    nb.cells += [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(nb, str(path))
    return path


def outputs(nb):
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]


def test_render_keeps_outputs_and_figures_and_says_how(tmp_path):
    source = write_notebook(tmp_path / "tiny.ipynb", PRINT_SMOKE, FIGURE)
    stored = source.read_text()
    target = tmp_path / "docs" / "notebooks" / "tiny.ipynb"
    # MPLBACKEND=Agg (headless machines) would keep figures out of the outputs: it is dropped.
    rendered = render_notebook(
        source, target, smoke=True, note="A test render.", env={**os.environ, "MPLBACKEND": "Agg"}
    )
    assert source.read_text() == stored  # the stored notebook is never written
    written = nbformat.read(str(target), as_version=4)
    nbformat.validate(written)
    assert written == rendered
    header = written.cells[0]
    assert header.cell_type == "markdown"
    for words in (
        "Rendered copy",
        "notebooks/tiny.ipynb",
        "smoke configuration",
        "GLUON_BN_SMOKE=1",
        " UTC by gluon-bn ",
        "CPU core(s)",
        "MXNet ",
        "executing it took",
        "A test render.",
    ):
        assert words in header.source, words
    assert written.cells[1].source == "# A tiny notebook"
    texts = "".join(out.get("text", "") for out in outputs(written))
    assert "smoke: 1" in texts
    assert any("image/png" in out.get("data", {}) for out in outputs(written))


def test_render_all_runs_the_full_configuration_and_keeps_going_past_a_failure(
    tmp_path, monkeypatch
):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    write_notebook(notebooks / "good.ipynb", PRINT_SMOKE)
    write_notebook(notebooks / "bad.ipynb", 'raise ValueError("a broken cell")')
    out = tmp_path / "rendered"
    out.mkdir()
    (out / "bad.ipynb").write_text("the copy from before")
    monkeypatch.setenv("GLUON_BN_SMOKE", "1")  # set outside: the full configuration unsets it
    results = render_all(notebooks, out)
    assert [(r.source.name, r.error is None) for r in results] == [
        ("bad.ipynb", False),
        ("good.ipynb", True),
    ]
    assert results[0].error == "CellExecutionError: ValueError: a broken cell"
    assert (out / "bad.ipynb").read_text() == "the copy from before"
    good = nbformat.read(str(out / "good.ipynb"), as_version=4)
    assert "full configuration" in good.cells[0].source
    assert "smoke: None" in outputs(good)[0]["text"]
    with pytest.raises(SystemExit):  # an unknown name is a usage error, before any kernel
        main(["nope", "--source", str(notebooks), "--out", str(out)])
