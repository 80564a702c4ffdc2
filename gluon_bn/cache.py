"""Where gluon-bn keeps what it measured or built once per machine (no MXNet imported)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """Return gluon-bn's cache directory: ``$GLUON_BN_CACHE``, else ``$XDG_CACHE_HOME/gluon_bn``,
    else ``~/.cache/gluon_bn`` (compiled operators under ``native/``, runtime probes under
    ``runtime/``)."""
    root = os.environ.get("GLUON_BN_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "gluon_bn",
    )
    return Path(root)
