"""``python -m gluon_bn.cli``: the same as ``gluon-bn``."""

import sys

from gluon_bn.cli import main

if __name__ == "__main__":
    sys.exit(main())
