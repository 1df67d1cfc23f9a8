"""Inpainting (context prediction and restoration): two real training steps on the tiny phantom in each mode,
its checkpoint manifest, the transfer into ``Segmentation``, and the repeatable validation draws."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from sspcmr.data.datamodule import CineDataModule
from sspcmr.losses.reconstruction import restoration_loss
from sspcmr.methods import Inpainting, Segmentation
from sspcmr.methods.transfer import MANIFEST_KEY

TINY = [8, 16, 32, 64]
SIZE = 64
GRID = {"output_size": SIZE, "output_spacing": 2.5}  # the models' output grid: the data module's
OPTIONS = {"channels": TINY, **GRID, "patch_size": 16, "bank_size": 8}


def fit(prepared_tiny, tmp_path: Path, model: Inpainting) -> L.Trainer:
    root, split = prepared_tiny
    data = CineDataModule(str(root), str(split), mode="pretrain", batch_size=4, val_batch_size=8,
                          num_workers=0, output_size=SIZE, output_spacing=2.5)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, limit_train_batches=2, limit_val_batches=1,
                        logger=CSVLogger(str(tmp_path)), enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, default_root_dir=str(tmp_path), log_every_n_steps=1,
                        enable_checkpointing=False)
    trainer.fit(model, datamodule=data)
    return trainer


@pytest.fixture(scope="module", params=["restoration", "prediction"])
def pretrained(request, prepared_tiny, tmp_path_factory):
    """(task, model, checkpoint, trainer) after 2 training steps and one validation batch; logged, so the
    model's and the data module's hyperparameters are merged (they must not clash)."""
    tmp_path = tmp_path_factory.mktemp(request.param)
    torch.manual_seed(0)
    model = Inpainting(task=request.param, **OPTIONS)
    trainer = fit(prepared_tiny, tmp_path, model)
    path = tmp_path / "inpainting.ckpt"
    trainer.save_checkpoint(path)
    return request.param, model, path, trainer


def test_two_steps_train_the_encoder_with_a_finite_loss(pretrained) -> None:
    mode, model, _, trainer = pretrained
    torch.manual_seed(0)
    fresh = Inpainting(task=mode, **OPTIONS)
    trained = model.backbone.encoder.state_dict()
    assert any(not torch.equal(v, fresh.backbone.encoder.state_dict()[k]) for k, v in trained.items())
    metrics = trainer.callback_metrics
    for key in ("train/loss_epoch", "val/loss", "val/loss_corrupted"):
        assert torch.isfinite(metrics[key]), key
    assert "train/embedding_std" in metrics and "train/effective_rank" in metrics
    assert model.bank(SIZE).mode == mode and len(model.bank(SIZE)) == 32


def test_the_checkpoint_offers_encoder_and_decoder_but_not_the_bank(pretrained) -> None:
    _, _, path, _ = pretrained
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    manifest = checkpoint[MANIFEST_KEY]
    assert manifest["method"] == "inpainting" and manifest["transferable"] == ["encoder", "decoder"]
    assert manifest["unet"]["channels"] == TINY and manifest["preprocessing"]["output_size"] == SIZE
    assert "sspcmr_mask_generator" in checkpoint
    assert not any("bank" in key or "mask" in key for key in checkpoint["state_dict"])
    resumed = Inpainting(**OPTIONS)
    resumed.on_load_checkpoint(checkpoint)
    assert torch.equal(resumed.mask_generator.get_state(), checkpoint["sspcmr_mask_generator"])


@pytest.mark.parametrize("transfer", ["encoder", "encoder+decoder"])
def test_transfer_into_segmentation(pretrained, transfer) -> None:
    _, model, path, _ = pretrained
    tuned = Segmentation(channels=TINY, **GRID, log_images=False, init_from=str(path), transfer=transfer)
    tuned.apply_init_from()
    source, target = model.backbone.state_dict(), tuned.net.state_dict()
    parts = tuple(f"{part}." for part in transfer.split("+"))
    assert tuned.transfer_report.loaded and all(key.startswith(parts) for key in tuned.transfer_report.loaded)
    for key in tuned.transfer_report.loaded:
        assert torch.equal(target[key], source[key]), key
    assert tuned.transfer_report.manifest["method"] == "inpainting"


def test_validation_draws_repeat_every_epoch() -> None:
    model = Inpainting(**OPTIONS)
    bank = model.bank(SIZE)
    draws = []
    for _ in range(2):  # two validation epochs see the same corruptions, so their losses are comparable
        model.on_validation_epoch_start()
        draws.append(bank.draw(16, model._val_generator))
    assert torch.equal(draws[0], draws[1])
    assert not torch.equal(bank.draw(16, model._train_generator()), draws[0])  # training has its own stream


def test_full_size_model_restores_one_channel_at_full_resolution() -> None:
    model = Inpainting().eval()
    assert model.backbone.num_outputs == 1 and model.hparams.task == "restoration"
    with torch.no_grad():
        assert model(torch.randn(1, 1, 256, 256)).shape == (1, 1, 256, 256)


def test_the_sum_reduction_is_the_mean_times_the_pixels() -> None:
    output, target = torch.randn(3, 1, 8, 8), torch.randn(3, 1, 8, 8)
    assert torch.allclose(restoration_loss(output, target, "sum"), 64 * restoration_loss(output, target, "mean"))


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="task must be"):
        Inpainting(channels=TINY, **GRID, task="jigsaw")
    with pytest.raises(ValueError, match="loss_reduction"):
        Inpainting(channels=TINY, **GRID, loss_reduction="max")
