"""Shared fixtures: small synthetic data sets generated once per test session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sspcmr.phantom import generate_dataset, synthesise_subject


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """Both layouts, tiny size: 8 M&Ms subjects (2 per vendor A-D) and 3 M&Ms-2 subjects (A-C)."""
    root = tmp_path_factory.mktemp("synthetic")
    summary = generate_dataset(root, layout="mnms", subjects=8, seed=11, size="tiny", progress=False)
    summary += generate_dataset(root, layout="mnms2", subjects=3, seed=11, size="tiny", progress=False)
    return root, summary


@pytest.fixture(scope="session")
def small_subjects() -> list:
    """Eight in-memory `small` subjects (2 per vendor A-D), short axis only, for realism checks."""
    return [
        synthesise_subject(np.random.SeedSequence([2024, i]), "ABCD"[i % 4], "small", long_axis_views=())
        for i in range(8)
    ]


@pytest.fixture(scope="session")
def prepared_tiny(tiny_dataset, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``tiny_dataset`` prepared, with a scaled-down default split: (prepared folder, split YAML).

    Test: 1 M&Ms subject per vendor + M&Ms-2 003; development: the other 6, one of them validation.
    """
    from sspcmr.data.prepare import prepare_dataset
    from sspcmr.data.splits import default_split, write_split
    from sspcmr.data.store import PreparedDataset

    root = tmp_path_factory.mktemp("prepared")
    prepare_dataset(tiny_dataset[0], root, progress=False)
    split = default_split(PreparedDataset(root).metadata_frames(), per_vendor=1, mm2_test_ids=["003"],
                          remove_overlap=False)
    return root, write_split(split, root / "split.yaml")


@pytest.fixture
def one_cpu_thread():
    """Run tiny networks on one intra-op thread: on a busy 2-core machine two spinning OpenMP threads make
    each small convolution tens of times slower. Restored after the test."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
