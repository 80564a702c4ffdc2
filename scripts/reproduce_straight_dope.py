#!/usr/bin/env python3
"""Reproduce the `straight-dope` document (see `gluon-bn list`); extra arguments go to `gluon-bn reproduce`."""

import sys

from gluon_bn.cli import main

if __name__ == "__main__":
    sys.exit(main(["reproduce", "straight-dope", *sys.argv[1:]]))
