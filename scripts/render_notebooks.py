#!/usr/bin/env python3
"""Execute notebooks/*.ipynb and write copies with their outputs to docs/notebooks/.

`python scripts/render_notebooks.py` renders every notebook in its full configuration;
`--smoke` runs the tiny one, `NAME ...` only some notebooks, `--note TEXT` adds a sentence to
each copy's header. See gluon_bn.render.
"""

import sys

from gluon_bn.render import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
