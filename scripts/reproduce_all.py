#!/usr/bin/env python3
"""Regenerate every record under results/ with seeds 0 1 2, one process per record (`--dry-run` lists them).

Extra arguments go to each `gluon-bn reproduce` call (e.g. `--limit 2000 --epochs 1 --out /tmp/try`
to try it quickly). Document 004 runs on Fashion-MNIST here; where MNIST downloads, run
`scripts/reproduce_straight_dope.py --dataset mnist`.
"""

import sys

from gluon_bn.published import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
