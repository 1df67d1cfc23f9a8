"""docs/reliability.md is honest: every test its catalogue names exists (a renamed or deleted test fails here)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _named_tests() -> list[tuple[str, str]]:
    """(file, test name) for every `tests/...py::name` and `...::name` (same file as the previous one) cited."""
    text = (ROOT / "docs" / "reliability.md").read_text()
    named, current = [], None
    for path, name in re.findall(r"`(tests/[\w/]+\.py|\.\.\.)::(\w+)`", text):
        current = current if path == "..." else path
        named.append((current, name))
    return named


def test_the_catalogue_names_only_tests_that_exist():
    named = _named_tests()
    assert len(named) >= 40, named
    missing = [f"{path}::{name}" for path, name in named
               if not re.search(rf"^def {name}\(", (ROOT / path).read_text(), flags=re.MULTILINE)]
    assert not missing, missing


def test_every_reliability_test_is_in_the_catalogue():
    cited = {(path, name) for path, name in _named_tests()}
    for path in sorted((ROOT / "tests" / "reliability").glob("test_*.py")):
        if path.name == "test_catalogue.py":
            continue
        relative = str(path.relative_to(ROOT))
        for name in re.findall(r"^def (test_\w+)\(", path.read_text(), flags=re.MULTILINE):
            assert (relative, name) in cited, f"{relative}::{name} is not in docs/reliability.md"
