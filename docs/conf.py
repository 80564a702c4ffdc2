"""Sphinx configuration of the gluon-bn site: ``python -m sphinx -W -b html docs docs/_build/html``.

The pages under ``documents/`` and ``studies/`` are generated from ``results/`` by the
extension :mod:`gluon_bn.site` when the build starts; the notebooks in ``notebooks/`` are the
rendered copies, shown as they are (none is executed).
"""

import gluon_bn

project = "gluon-bn"
author = "the gluon-bn developers"
copyright = "2026, the gluon-bn developers"
release = gluon_bn.__version__

extensions = [
    "myst_nb",  # Markdown pages and the rendered notebooks
    "sphinx.ext.autodoc",  # the API reference from the docstrings
    "sphinx.ext.napoleon",  # ... written in the NumPy style
    "gluon_bn.site",  # documents/ and studies/ from results/
]

# bench/ holds the raw records of docs/performance.md (its figures are shown from there).
exclude_patterns = ["_build", "bench", "**.ipynb_checkpoints"]

nb_execution_mode = "off"  # the copies in notebooks/ already hold their outputs
nb_ipywidgets_js = {}  # no widgets: load nothing from a CDN
myst_heading_anchors = 3  # links to a page's section (`page.md#heading`)
myst_enable_extensions = ["colon_fence"]

# autodoc imports the modules it documents. gluon_bn.data.book, gluon_bn.models.book and
# gluon_bn.run.book import d2l 1.0.3 (the book's classes they subclass), which the docs
# extra does not install: d2l pins numpy, matplotlib, pandas, scipy and Jupyter, none of which
# the site needs to read docstrings. autodoc stands a mock in for it while it imports, so
# `pip install -e '.[cpu,docs]'` builds the site, with d2l installed or not.
autodoc_mock_imports = ["d2l"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = False
napoleon_numpy_docstring = True

html_theme = "furo"
html_title = "gluon-bn"
html_static_path = ["_static"]
html_favicon = "_static/favicon.svg"  # else browsers ask for /favicon.ico and get a 404
