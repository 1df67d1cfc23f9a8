"""Native-space test metrics under a real 2-process CPU DDP (gloo) equal the single-process ones:
every volume scored exactly once, none dropped."""

from __future__ import annotations

import lightning as L
import pandas as pd
import pytest
import torch

from sspcmr.data.datamodule import CineDataModule
from sspcmr.methods import Segmentation

pytestmark = pytest.mark.slow  # multi-process runs: `pytest -m "not slow"` skips them


def _test(prepared_tiny, results, devices: int, strategy: str) -> pd.DataFrame:
    root, split = prepared_tiny
    torch.manual_seed(0)
    model = Segmentation(channels=[8, 16, 32], output_size=64, output_spacing=4.0, log_images=False,
                         results_dir=str(results))
    with torch.no_grad():  # a head biased towards LV, so the metrics are not all zero
        model.net.heads[0].bias.copy_(torch.tensor([0.0, 0.3, 0.0, 0.0]))
    data = CineDataModule(str(root), str(split), mode="segment", output_size=64, output_spacing=4.0, num_workers=0)
    trainer = L.Trainer(accelerator="cpu", devices=devices, strategy=strategy, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.test(model, datamodule=data)
    return pd.read_csv(results / "volumes.csv", dtype={"subject": str})


def test_ddp_test_metrics_equal_single_process(prepared_tiny, tmp_path):
    single = _test(prepared_tiny, tmp_path / "single", 1, "auto")
    ddp = _test(prepared_tiny, tmp_path / "ddp", 2, "ddp_spawn")
    keys = ["dataset", "subject", "phase"]
    assert not ddp.duplicated(keys).any()
    assert len(ddp) == len(single) and len(single) % 2 == 0  # every (subject, phase) once
    pd.testing.assert_frame_equal(single.sort_values(keys).reset_index(drop=True),
                                  ddp.sort_values(keys).reset_index(drop=True))
