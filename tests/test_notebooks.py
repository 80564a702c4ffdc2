"""The companion notebooks: stored without outputs, and each one runs headless in smoke mode,
with the kernel's own inline backend and (one of them) with MPLBACKEND=Agg."""

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="pip install -e '.[test]' (nbformat)")

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
EXPECTED = (
    "d2l-1.0",
    "d2l-en",
    "d2l-0.17",
    "d2l-zh",
    "straight-dope",
    "scratch-vs-gluon",
    "claims",
)
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT = 300  # seconds per cell


def test_every_document_has_a_notebook():
    assert {p.stem for p in NOTEBOOKS} >= set(EXPECTED)


def test_notebooks_are_stored_without_outputs():
    dirty = []
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            if cell.get("outputs") or cell.get("execution_count") is not None:
                dirty.append(f"{path.name} cell {index}")
    assert not dirty, (
        "notebooks must be saved without outputs or execution counts "
        "(clear them before saving): " + ", ".join(dirty)
    )


def test_notebooks_have_the_smoke_switch():
    switch = 'SMOKE = os.environ.get("GLUON_BN_SMOKE") == "1"'
    missing = [
        p.name
        for p in NOTEBOOKS
        if not any(switch in c.source for c in nbformat.read(p, as_version=4).cells)
    ]
    assert not missing, f"no smoke switch in: {missing}"


# The notebook run a second time with MPLBACKEND=Agg, as headless machines and many CI
# systems set it: it trains (the Animator) and draws figures, so a broken matplotlib/IPython
# pairing fails on its first plotting import.
AGG_NOTEBOOK = "d2l-en"


def _run_notebook(path):
    nbclient = pytest.importorskip("nbclient", reason="pip install -e '.[test]' (nbclient)")
    pytest.importorskip("ipykernel", reason="pip install -e '.[test]' (ipykernel)")
    pytest.importorskip("d2l", reason="pip install -e '.[test]' (d2l, for its Animator)")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error


def test_ipython_still_has_what_this_matplotlib_imports():
    """matplotlib < 3.9 (d2l pins 3.7.2) imports IPython.core.pylabtools.backend2gui in a kernel
    whose backend is not inline; IPython 9.16 removed it (pyproject pins ipython<9.16)."""
    pytest.importorskip("IPython")
    import warnings

    import matplotlib
    from IPython.core import pylabtools

    major_minor = tuple(int(part) for part in matplotlib.__version__.split(".")[:2])
    if major_minor >= (3, 9):
        pytest.skip(f"matplotlib {matplotlib.__version__} resolves backends itself")
    with warnings.catch_warnings():  # IPython >= 8.24 deprecates the name it still has
        warnings.simplefilter("ignore", DeprecationWarning)
        present = hasattr(pylabtools, "backend2gui")
    assert present, (
        f"matplotlib {matplotlib.__version__} needs IPython.core.pylabtools.backend2gui, which "
        f"this IPython lacks: pip install -e '.[cpu,test]' (pins ipython<9.16)"
    )


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_smoke_mode(path, fashion_root, monkeypatch):
    # The kernel inherits this process's environment. Without MPLBACKEND, ipykernel selects
    # matplotlib-inline's backend, as Jupyter does on a desktop.
    monkeypatch.setenv("GLUON_BN_SMOKE", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)
    _run_notebook(path)


@pytest.mark.slow
def test_notebook_runs_with_mplbackend_agg(fashion_root, monkeypatch):
    monkeypatch.setenv("GLUON_BN_SMOKE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    _run_notebook(NOTEBOOK_DIR / f"{AGG_NOTEBOOK}.ipynb")


def test_no_code_cell_of_five_lines_is_copied_between_notebooks():
    """Issue 13, item 7: what several notebooks need is a package function (most of them in
    gluon_bn.walkthrough) that each calls in a short cell, not a cell copied between them."""
    seen = {}
    for path in NOTEBOOKS:
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.cell_type != "code":
                continue
            source = cell.source.strip()
            if source.count("\n") + 1 >= 5:
                seen.setdefault(source, []).append(f"{path.name}[{index}]")
    copied = {
        source.splitlines()[0][:80]: where for source, where in seen.items() if len(where) > 1
    }
    assert not copied, (
        "code cells of five or more lines copied between notebooks (move the "
        f"code into a function of gluon_bn and call it): {copied}"
    )
