"""The benchmark scripts still run against the library (they are not imported by anything else, so an API change
would otherwise break them silently): each runs one tiny CPU step and prints its table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def run(script: str, *args: str, cwd: Path) -> str:
    result = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], cwd=cwd, env=ENV,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_pretrain_step_runs_each_method_with_its_own_augmentation(tmp_path):
    out = run("pretrain_step.py", "--device", "cpu", "--size", "tiny", "--threads", "1", "--steps", "1",
              "--warmup", "0", "--with-augmentation", cwd=tmp_path)
    assert all(f"| {name} | tiny |" in out for name in ("simclr", "pcl", "dino", "mim")), out


@pytest.mark.slow
def test_loader_and_train_step_run_on_prepared_data(prepared_tiny, tmp_path):
    root, split = prepared_tiny
    out = run("loader.py", "--prepared", str(root), "--split", str(split), "--modes", "segment", "dino",
              "--batch-size", "4", "--batches", "1", "--warmup", "0", "--rounds", "1", "--aug-repeats", "1",
              cwd=tmp_path)
    assert "segment" in out and "dino" in out and "speed-up" in out, out
    out = run("train_step.py", "--device", "cpu", "--batch-size", "2", "--size", "64", "--steps", "1", "--warmup",
              "0", "--threads", "1", "--prepared", str(root), "--split", str(split), "--workers", "0",
              "--precisions", "32-true", cwd=tmp_path)
    assert "loader" in out and "synthetic" in out, out
