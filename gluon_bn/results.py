"""``python -m gluon_bn.results [DIR]``: regenerate the published results' tables (see :mod:`gluon_bn.report.results`)."""
from gluon_bn.report.results import main

if __name__ == "__main__":
    raise SystemExit(main())
