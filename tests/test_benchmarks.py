"""The benchmark scripts still run against the library (they are not imported by anything else, so an API change
would otherwise break them silently): each runs one tiny CPU step and prints its table."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

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
              "--slice-dir", str(tmp_path / "slices"), cwd=tmp_path)
    assert "segment" in out and "dino" in out and "speed-up" in out and "fidelity: faithful" in out, out
    assert len(list((tmp_path / "slices").glob("*.npy"))) > 0  # the faithful baseline read one file per sample
    out = run("train_step.py", "--device", "cpu", "--batch-size", "2", "--size", "64", "--steps", "1", "--warmup",
              "0", "--threads", "1", "--prepared", str(root), "--split", str(split), "--workers", "0",
              "--precisions", "32-true", cwd=tmp_path)
    assert "loader" in out and "synthetic" in out, out


@pytest.mark.slow
def test_gpu_benchmark_toy_on_cpu_measures_every_method_and_records_what_it_skips(tmp_path, monkeypatch,
                                                                                   one_cpu_thread):
    # In-process (benchmarks/gpu.py's main), so the second run pays no second import of torch and Lightning.
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import gpu
    from gpu_parts.specs import CONFIGS

    work, out = tmp_path / "work", tmp_path / "out"
    results = gpu.main(["--device", "cpu", "--toy", "--work", str(work), "--out", str(out)])
    assert results["errors"] == [] and results["finished"]
    saved = json.loads((out / "gpu_benchmark.json").read_text())
    assert saved["machine"]["device_name"] == "cpu" and saved["machine"]["torch"] == torch.__version__
    views = {"simclr": 2, "pcl": 2, "dino": 8}  # DINO: 2 global + 6 local crops
    for method in CONFIGS:
        rows = [r for r in saved["steps"] if r["method"] == method]
        fp32 = [r for r in rows if r["variant"] == "fp32"]  # the configs' fp16 is not native here: fp32 stands in
        assert fp32 and all(math.isfinite(r["slices_per_s"]) and r["slices_per_s"] > 0 for r in rows), method
        assert {r["views_per_slice"] for r in rows} == {views.get(method, 1)}, method
        assert all(r["batch"] == 8 and r["px"] == 64 for r in rows), method
        (loading,) = [r for r in saved["loading"] if r["method"] == method]
        assert loading["workers"] == 1 and 0 <= loading["data_share"] < 1, loading
    assert saved["augmentation"][0]["median_ms"] > 0
    skipped = [s["label"] for s in saved["skipped"]]
    assert any(label.startswith("mim ") and label.endswith(" + compile") for label in skipped), skipped
    table = (out / "gpu_benchmark.md").read_text()
    assert "| segmentation | fp32 | 8 | 1 |" in table and "| dino | fp32 | 8 | 8 |" in table and "Skipped:" in table

    # A budget too small for anything: the data are reused and every measurement is listed as skipped.
    short = gpu.main(["--device", "cpu", "--toy", "--work", str(work), "--out", str(tmp_path / "short"),
                      "--budget-s", "0"])
    assert short["data"]["reused"] and short["steps"] == [] and short["loading"] == []
    out_of_time = [s for s in short["skipped"] if s["reason"].startswith("out of time")]
    measured = len(saved["augmentation"]) + len(saved["steps"]) + len(saved["loading"])
    assert len(out_of_time) == measured, out_of_time  # everything the first run measured
    assert "out of time" in (tmp_path / "short" / "gpu_benchmark.md").read_text()
