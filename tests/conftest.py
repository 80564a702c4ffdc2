"""Shared fixtures: where the real Fashion-MNIST is, and a skip when it is not."""
from pathlib import Path

import pytest

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(scope="session")
def fashion_root() -> Path:
    """The real Fashion-MNIST directory (apt package dataset-fashion-mnist), or skip."""
    if not (DEBIAN_FASHION / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("real Fashion-MNIST not installed: apt-get install dataset-fashion-mnist")
    return DEBIAN_FASHION
