"""Each pretraining method trains under a real 2-process CPU DDP (gloo) through the ``sspcmr fit`` CLI.

The losses' cross-rank equivalence (gathered negatives, positions and the DINO centre) is tested on the
losses themselves in ``tests/losses/test_contrastive_ddp.py``; this checks the methods run end to end in
DDP as users launch them (Lightning's subprocess launcher re-runs ``python -m sspcmr``) and that rank 0
writes a checkpoint with its manifest. Validation runs over the whole (unpadded, so unequally sharded)
validation set: a loss that gathered across ranks there would fail or hang.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sspcmr.methods.transfer import MANIFEST_KEY

pytestmark = pytest.mark.slow  # multi-process runs: `pytest -m "not slow"` skips them

# Every pretraining method: its gathered losses, synchronised logs and metrics, probes and mask streams cross
# ranks (Orientation and Multitask on the subjects with long-axis views).
METHODS = {
    "SimCLR": [],
    "PCL": [],
    "DINO": ["--model.hidden_dim", "32", "--model.bottleneck_dim", "16", "--model.output_dim", "64"],
    "MIM": ["--model.patch_size", "16"],
    "Inpainting": ["--model.patch_size", "16", "--model.bank_size", "8"],
    "SliceLocation": [],
    "Orientation": ["--data.long_axis_only", "true"],
    "Multitask": ["--data.long_axis_only", "true"],
}


@pytest.mark.parametrize("method", list(METHODS))
def test_two_process_fit_through_the_cli(method, prepared_tiny, tmp_path):
    root, split = prepared_tiny
    extra = METHODS[method]
    command = [sys.executable, "-m", "sspcmr", "fit", "--model", method, "--model.channels", "[8,16,32,64]", *extra,
               "--data.data_dir", str(root), "--data.split", str(split), "--data.mode", "pretrain",
               "--data.output_size", "64", "--data.output_spacing", "2.5",
               "--data.batch_size", "2", "--data.val_batch_size", "4", "--data.num_workers", "0",
               "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
               "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
               "--trainer.num_sanity_val_steps", "0", "--trainer.enable_progress_bar", "false",
               "--trainer.enable_model_summary", "false", "--trainer.default_root_dir", str(tmp_path),
               "--trainer.logger.init_args.save_dir", str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoints = list(Path(tmp_path).rglob("last.ckpt"))
    assert len(checkpoints) == 1, checkpoints
    checkpoint = torch.load(checkpoints[0], map_location="cpu", weights_only=False)
    assert checkpoint["global_step"] == 2  # 2 optimiser steps per rank, in lockstep
    assert checkpoint[MANIFEST_KEY]["method"] == {"SliceLocation": "slice_location"}.get(method, method.lower())
    events = list(Path(tmp_path).rglob("events.out.tfevents.*"))
    assert events, "rank 0 logged nothing"
