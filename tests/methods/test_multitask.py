"""``Multitask``: the orientation and location losses summed on one shared U-Net (Zhang et al. 4.3)."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from sspcmr.data.datamodule import CineDataModule
from sspcmr.methods import Multitask, Orientation, Segmentation
from sspcmr.methods.transfer import MANIFEST_KEY

TINY = [8, 16, 32, 64]
GRID = {"output_size": 64, "output_spacing": 2.5}  # the models' output grid: the data module's


def _fit(model, prepared_tiny, tmp_path) -> L.Trainer:
    root, split = prepared_tiny
    data = CineDataModule(str(root), str(split), mode="pretrain", long_axis_only=True,
                          batch_size=4, val_batch_size=8, num_workers=0, output_size=64, output_spacing=2.5)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, limit_train_batches=2, limit_val_batches=2,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, log_every_n_steps=1)
    trainer.fit(model, datamodule=data)
    return trainer


def test_loss_is_the_weighted_sum_of_both_tasks(prepared_tiny, tmp_path):
    root, split = prepared_tiny
    data = CineDataModule(str(root), str(split), mode="pretrain", long_axis_only=True,
                          batch_size=4, num_workers=0, output_size=64, output_spacing=2.5)
    data.setup("fit")
    torch.manual_seed(0)
    model = Multitask(channels=TINY, **GRID, orientation_weight=0.3, location_weight=2.0)
    batch = model.augment(next(iter(data.train_dataloader())), training=True)  # views and heatmap targets
    out = model._step(batch)
    expected = 0.3 * out["orientation_loss"] + 2.0 * out["location_loss"]
    assert torch.allclose(out["loss"], expected)
    torch.manual_seed(0)
    alone = Orientation(channels=TINY, **GRID)
    alone.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("location_head.")})
    assert torch.allclose(alone._step(batch)["loss"], out["orientation_loss"])  # the same heatmap term
    manual = torch.nn.functional.mse_loss(out["location"], batch["location"].float())
    assert torch.allclose(out["location_loss"], manual)
    with pytest.raises(ValueError, match="not both 0"):
        Multitask(channels=TINY, **GRID, orientation_weight=0, location_weight=0)


def test_multitask_trains_logs_both_tasks_and_transfers(prepared_tiny, tmp_path):
    torch.manual_seed(0)
    model = Multitask(channels=TINY, **GRID)
    before = {k: v.clone() for k, v in model.backbone.encoder.state_dict().items()}
    trainer = _fit(model, prepared_tiny, tmp_path)
    metrics = trainer.callback_metrics
    for key in ("train/orientation_loss_epoch", "train/location_loss_epoch", "val/orientation_loss",
                "val/location_loss",
                "val/location_r2", "val/location_mae", "val/peak_distance_px", "val/loss"):
        assert key in metrics and torch.isfinite(metrics[key]), key
    assert any(not torch.equal(v, before[k]) for k, v in model.backbone.encoder.state_dict().items())
    path = tmp_path / "multitask.ckpt"
    trainer.save_checkpoint(path)
    manifest = torch.load(path, weights_only=False)[MANIFEST_KEY]
    assert manifest["method"] == "multitask" and manifest["transferable"] == ["encoder", "decoder"]
    tuned = Segmentation(channels=TINY, **GRID, log_images=False, init_from=str(path), transfer="encoder+decoder")
    tuned.apply_init_from()
    source = model.backbone.state_dict()
    assert all(torch.equal(v, source[k]) for k, v in tuned.net.state_dict().items()
               if k.startswith(("encoder.", "decoder.")))
