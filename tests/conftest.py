"""Shared fixtures: where the real Fashion-MNIST is, and skips when it or a C++ compiler is not."""

from pathlib import Path

import pytest

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(scope="session")
def fashion_root() -> Path:
    """The real Fashion-MNIST directory (apt package dataset-fashion-mnist), or skip."""
    if not (DEBIAN_FASHION / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("real Fashion-MNIST not installed: apt-get install dataset-fashion-mnist")
    return DEBIAN_FASHION


def pytest_collection_modifyitems(config, items):
    """Skip tests marked ``native`` (they build the C++ operator) where it cannot be built."""
    native = [item for item in items if item.get_closest_marker("native")]
    if not native:
        return
    from gluon_bn.bn.native import unavailable_reason

    reason = unavailable_reason()  # builds and loads it once, here, when it can
    if reason:
        for item in native:
            item.add_marker(pytest.mark.skip(reason=f"impl='native' unavailable: {reason}"))


@pytest.fixture
def numpy_mode():
    """MXNet's numpy mode (``npx.set_np()``, document 000) for one test, the previous mode after.

    Numpy mode is process-wide: every test that needs it takes this fixture, so that it never
    leaks into the legacy-API tests of the same process. Yields the ``mx.np`` module.
    """
    from gluon_bn.bn.dialect import numpy_mode as mode
    from gluon_bn.runtime.loader import mx

    with mode():
        yield mx.np


# Hypothesis profiles for tests/test_bn_properties.py: "ci" by default (bounded runtime),
# HYPOTHESIS_PROFILE=thorough for many more examples.
try:
    import os

    from hypothesis import settings
except ImportError:  # hypothesis is in the `test` extra; without it those tests skip
    pass
else:
    settings.register_profile("ci", max_examples=25, deadline=None, print_blob=True)
    settings.register_profile("thorough", max_examples=400, deadline=None, print_blob=True)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
