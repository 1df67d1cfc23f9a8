"""TensorBoard images: on the global-step axis of the scalars, none from Lightning's sanity check."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sspcmr.data.datamodule import CineDataModule
from sspcmr.methods import MIM, Segmentation

GRID = {"output_size": 64, "output_spacing": 2.5}


def image_steps(model, prepared_tiny, tmp_path, mode: str, tag: str) -> list[int]:
    root, split = prepared_tiny
    data = CineDataModule(str(root), str(split), mode=mode, batch_size=4, val_batch_size=8, num_workers=0, **GRID)
    trainer = L.Trainer(accelerator="cpu", max_epochs=2, limit_train_batches=3, limit_val_batches=1,
                        num_sanity_val_steps=1, logger=TensorBoardLogger(str(tmp_path), name="tb"),
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=data)
    events = EventAccumulator(trainer.logger.log_dir)
    events.Reload()
    return [event.step for event in events.Images(tag)]


def test_segmentation_overlays_sit_at_the_global_step_after_each_epoch(prepared_tiny, tmp_path):
    model = Segmentation(channels=[8, 16, 32, 64], **GRID)
    assert image_steps(model, prepared_tiny, tmp_path, "segment", "val/overlays") == [3, 6]  # no sanity-check image


def test_reconstructions_sit_at_the_global_step(prepared_tiny, tmp_path):
    model = MIM(channels=[8, 16, 32, 64], patch_size=16, **GRID)
    assert image_steps(model, prepared_tiny, tmp_path, "pretrain", "val/reconstructions") == [3, 6]
