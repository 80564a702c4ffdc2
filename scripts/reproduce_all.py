#!/usr/bin/env python3
"""Reproduce every document at full length with three seeds, as published under results/.

Extra arguments go to each `gluon-bn reproduce` call (e.g. `--limit 2000 --epochs 1 --out /tmp/try`
to try it quickly). Document 004 runs on Fashion-MNIST here; where MNIST downloads, run
`scripts/reproduce_straight_dope.py --dataset mnist`.
"""
import sys

from gluon_bn.cli import reproduce_all

if __name__ == "__main__":
    sys.exit(reproduce_all(sys.argv[1:]))
