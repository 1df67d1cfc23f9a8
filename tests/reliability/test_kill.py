"""SIGKILL during a fit: the last checkpoint on disk is whole (written by rename, never in place) and
``--ckpt_path last`` finishes the run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sspcmr.commands.main import main
from tests.test_cli import fit_args

pytestmark = pytest.mark.slow  # multi-process runs: `pytest -m "not slow"` skips them

ROOT = Path(__file__).resolve().parents[2]


def test_sigkill_during_fit_leaves_a_whole_checkpoint_that_resumes(prepared_tiny, tmp_path):
    root = tmp_path / "runs"
    args = fit_args(prepared_tiny, root, "--trainer.max_epochs", "200")
    checkpoint = root / "sspcmr" / "version_0" / "checkpoints" / "last.ckpt"
    process = subprocess.Popen([sys.executable, "-m", "sspcmr", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 240
        while not checkpoint.is_file() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
        assert checkpoint.is_file(), "no checkpoint within the time limit"
        first = checkpoint.stat().st_mtime_ns
        while checkpoint.stat().st_mtime_ns == first and time.monotonic() < deadline:
            time.sleep(0.05)  # kill while epochs (and checkpoint writes) follow each other
        time.sleep(0.3)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    state = torch.load(checkpoint, weights_only=True)  # whole, not truncated
    killed_at = state["epoch"]
    assert 1 <= killed_at < 199
    assert not [p for p in checkpoint.parent.iterdir() if p.name != "last.ckpt"], "no partial files left"
    code = main(fit_args(prepared_tiny, root, "--trainer.max_epochs", str(killed_at + 2), "--ckpt_path", "last"))
    assert code == 0
    assert torch.load(checkpoint, weights_only=True)["epoch"] == killed_at + 1
