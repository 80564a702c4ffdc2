#!/usr/bin/env python3
"""Reproduce the `d2l-en` document (see `gluon-bn list`); extra arguments go to `gluon-bn reproduce`."""

import sys

from gluon_bn.cli import main

if __name__ == "__main__":
    sys.exit(main(["reproduce", "d2l-en", *sys.argv[1:]]))
