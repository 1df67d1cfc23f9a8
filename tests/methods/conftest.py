"""Fixtures of the method tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_cpu_thread():
    """Run the tiny networks on one intra-op thread: on a busy 2-core machine two spinning OpenMP
    threads make each small convolution tens of times slower. Restored after each test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
