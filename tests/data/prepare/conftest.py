"""Prepared copies of the synthetic data sets, made once per session (tests only read them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sspcmr.data.prepare import prepare_dataset
from sspcmr.phantom import generate_dataset

from .helpers import copy_raw, hash_tree


@pytest.fixture(scope="session")
def raw_tiny(tiny_dataset, tmp_path_factory) -> Path:
    """A private copy of the session's tiny raw data set (8 M&Ms + 3 M&Ms-2), truth sidecar included."""
    src, _ = tiny_dataset
    dst = copy_raw(src, tmp_path_factory.mktemp("raw_tiny"))
    (dst / "sspcmr_truth").symlink_to(src / "sspcmr_truth", target_is_directory=True)
    return dst


@pytest.fixture(scope="session")
def prepared_tiny(raw_tiny, tmp_path_factory):
    """``raw_tiny`` prepared (both data sets); returns (raw, out, report, raw hashes before preparing)."""
    before = hash_tree(raw_tiny / "MnM") | hash_tree(raw_tiny / "MnM2")
    out = tmp_path_factory.mktemp("prepared_tiny") / "prepared"
    report = prepare_dataset(raw_tiny, out, progress=False)
    return raw_tiny, out, report, before


@pytest.fixture(scope="session")
def raw_vendors(tmp_path_factory) -> Path:
    """M&Ms layout with every vendor convention A-E, two subjects each."""
    root = tmp_path_factory.mktemp("raw_vendors")
    generate_dataset(root, layout="mnms", subjects=10, seed=5, size="tiny", vendors=list("ABCDE"), progress=False)
    return root


@pytest.fixture(scope="session")
def prepared_vendors(raw_vendors, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared_vendors") / "prepared"
    report = prepare_dataset(raw_vendors, out, datasets=["mnms"], progress=False)
    return raw_vendors, out, report
