"""The documentation's claims point at things that exist: every cited test is a real test."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_every_cited_test_exists(doc):
    cited = set(re.findall(r"(tests/\w+\.py)::(\w+)", doc.read_text()))
    missing = [
        f"{path}::{name}"
        for path, name in sorted(cited)
        if not (ROOT / path).is_file()
        or not re.search(rf"^def {name}\b", (ROOT / path).read_text(), re.M)
    ]
    assert not missing, f"{doc.name} cites tests that do not exist: {missing}"
