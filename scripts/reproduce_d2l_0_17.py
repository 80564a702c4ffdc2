#!/usr/bin/env python3
"""Reproduce the `d2l-0.17` document (see `gluon-bn list`); extra arguments go to `gluon-bn reproduce`."""

import sys

from gluon_bn.cli import main

if __name__ == "__main__":
    sys.exit(main(["reproduce", "d2l-0.17", *sys.argv[1:]]))
