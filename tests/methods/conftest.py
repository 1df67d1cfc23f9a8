"""Fixtures of the method tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_cpu_thread(one_cpu_thread):
    """Every method test runs on one intra-op thread (tests/conftest.py)."""
    yield
