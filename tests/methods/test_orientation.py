"""The orientation pretext task: two training steps on the tiny phantom's long-axis subjects, the masked loss,
the checkpoint manifest and the encoder + decoder transfer into ``Segmentation``."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch

from sspcmr.data import keys as K
from sspcmr.data.datamodule import CineDataModule
from sspcmr.losses.heatmap import heatmap_loss
from sspcmr.methods import Orientation, Segmentation
from sspcmr.methods.heatmaps import output_lines
from sspcmr.methods.orientation import TARGET, peak_distances
from sspcmr.methods.transfer import MANIFEST_KEY

TINY = [8, 16, 32, 64]
SIZE = 64
GRID = {"output_size": SIZE, "output_spacing": 2.5}  # the models' output grid: the data module's


@pytest.fixture(scope="module")
def pretrained(prepared_tiny, tmp_path_factory) -> tuple[Orientation, Path, dict]:
    """A tiny Orientation model trained for 2 steps on the long-axis subjects: (model, checkpoint, metrics)."""
    root, split = prepared_tiny
    tmp = tmp_path_factory.mktemp("orientation")
    data = CineDataModule(str(root), str(split), mode="pretrain", long_axis_only=True,
                          batch_size=4, val_batch_size=8, num_workers=0, output_size=SIZE, output_spacing=2.5)
    torch.manual_seed(0)
    model = Orientation(channels=TINY, **GRID, log_images=False)
    fit = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, limit_train_batches=2, limit_val_batches=1,
                    logger=False, enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                    default_root_dir=str(tmp), log_every_n_steps=1, enable_checkpointing=False)
    fit.fit(model, datamodule=data)
    path = tmp / "orientation.ckpt"
    fit.save_checkpoint(path)
    assert data.skipped_without_long_axis["train"] == 4  # the M&Ms training subjects have no long-axis views
    return model, path, {k: float(v) for k, v in fit.callback_metrics.items()}


def test_two_steps_train_the_encoder_with_finite_losses(pretrained):
    model, _, metrics = pretrained
    torch.manual_seed(0)
    fresh = Orientation(channels=TINY, **GRID)
    trained = model.backbone.encoder.state_dict()
    assert any(not torch.equal(v, fresh.backbone.encoder.state_dict()[k]) for k, v in trained.items())
    for key in ("train/loss_epoch", "val/loss", "val/heatmap_mse", "val/peak_distance_px"):
        assert math.isfinite(metrics[key]), key
    assert metrics["train/valid_fraction_epoch"] == 1.0  # only long-axis subjects
    assert 0 <= metrics["val/peak_distance_px"] <= SIZE * math.sqrt(2)


def test_manifest_offers_encoder_and_decoder(pretrained):
    _, path, _ = pretrained
    manifest = torch.load(path, map_location="cpu", weights_only=False)[MANIFEST_KEY]
    assert manifest["method"] == "orientation"
    assert manifest["transferable"] == ["encoder", "decoder"]
    assert manifest["unet"]["channels"] == TINY and manifest["unet"]["out_channels"] == 2
    assert manifest["preprocessing"]["output_size"] == SIZE


def test_transfer_into_segmentation_loads_encoder_and_decoder(pretrained):
    model, path, _ = pretrained
    torch.manual_seed(1)
    scratch = Segmentation(channels=TINY, **GRID, log_images=False)
    torch.manual_seed(1)
    tuned = Segmentation(channels=TINY, **GRID, log_images=False, init_from=str(path), transfer="encoder+decoder")
    tuned.apply_init_from()
    source, target = model.backbone.state_dict(), tuned.net.state_dict()
    for key, value in target.items():
        if key.startswith(("encoder.", "decoder.")):
            assert torch.equal(value, source[key]), key
        else:  # the 2-channel heatmap head never transfers
            assert torch.equal(value, scratch.net.state_dict()[key]), key
    assert tuned.transfer_report.manifest["method"] == "orientation"


def test_loss_ignores_invalid_channels():
    torch.manual_seed(0)
    pred, target = torch.rand(3, 2, 8, 8), torch.rand(3, 2, 8, 8)
    valid = torch.tensor([[True, False], [False, False], [True, True]])
    loss = heatmap_loss(pred, target, valid)
    expected = torch.stack([((pred[b, k] - target[b, k]) ** 2).mean() for b, k in ((0, 0), (2, 0), (2, 1))]).mean()
    torch.testing.assert_close(loss, expected)
    changed = pred.clone()
    changed[0, 1], changed[1] = 5.0, -5.0  # invalid channels and a row without any valid channel
    torch.testing.assert_close(heatmap_loss(changed, target, valid), loss)
    # No valid channel at all: a zero loss that still backpropagates (zero gradients).
    weights = pred.clone().requires_grad_(True)
    empty = heatmap_loss(weights, target, torch.zeros(3, 2, dtype=torch.bool))
    empty.backward()
    assert empty.item() == 0.0 and torch.equal(weights.grad, torch.zeros_like(pred))


def augmented_batch(valid: torch.Tensor) -> dict:
    """A hand-built augmented batch: 64 px images, identity-like theta over a 64 x 64 canvas."""
    b = valid.shape[0]
    generator = torch.Generator().manual_seed(0)
    theta = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).repeat(b, 1, 1)
    lines = torch.tensor([[[1.0, 0.0, -30.0], [0.0, 1.0, -20.0]]]).repeat(b, 1, 1)
    return {K.IMAGE: torch.randn(b, 1, SIZE, SIZE, generator=generator), K.THETA: theta, K.LA_LINES: lines,
            K.LA_VALID: valid, K.PADDED: torch.tensor([[SIZE, SIZE]] * b)}


def test_model_loss_skips_slices_without_targets():
    torch.manual_seed(0)
    model = Orientation(channels=TINY, **GRID, log_images=False).eval()  # BatchNorm running statistics
    valid = torch.tensor([[True, True], [True, False], [False, False]])
    batch = model.add_targets(augmented_batch(valid))
    with torch.no_grad():
        full = model._step(batch)
        first_two = model._step({k: v[:2] for k, v in batch.items()})
    torch.testing.assert_close(full["loss"], first_two["loss"])
    # Targets: identity theta on a canvas the size of the output, so output pixel = native pixel.
    assert full["target"][0, 0, 30].max() == 1.0 and full["target"][0, 1, :, 20].min() == 1.0
    assert not full["target"][2].any() and not full["target"][1, 1].any()


def test_views_used_selects_channels():
    model = Orientation(channels=TINY, **GRID, views_used=["4ch"], log_images=False).eval()
    assert model.backbone.config.out_channels == 1
    batch = augmented_batch(torch.ones(2, 2, dtype=torch.bool))
    target = model.add_targets(batch)[TARGET]
    assert target.shape == (2, 1, SIZE, SIZE) and target[0, 0, :, 20].min() == 1.0  # the 4ch line (w = 20)
    with pytest.raises(ValueError, match="views_used"):
        Orientation(channels=TINY, **GRID, views_used=["3ch"])


def test_lines_from_the_batch_canvas_tensor_equal_those_from_a_pair():
    # add_targets passes the batch's PADDED tensor (never read on the host); the maps built from it on the
    # device are the same float64 numbers as from the Python pair.
    generator = torch.Generator().manual_seed(2)
    lines = torch.randn(3, 2, 3, generator=generator)
    theta = torch.randn(3, 2, 3, generator=generator)
    pair = output_lines(lines, theta, (70, 90), SIZE)
    assert torch.equal(output_lines(lines, theta, torch.tensor([[70, 90]] * 3), SIZE), pair)
    assert torch.equal(output_lines(lines, theta, torch.tensor([70, 90]), SIZE), pair)
    assert not torch.equal(output_lines(lines, theta, (90, 70), SIZE), pair)


def test_peak_distance_is_zero_on_the_line():
    pred = torch.zeros(1, 2, SIZE, SIZE)
    pred[0, 0, 30, 5] = 1.0  # on the line row = 30
    pred[0, 1, 10, 27] = 1.0  # 7 px from column 20
    lines = torch.tensor([[[1.0, 0.0, -30.0], [0.0, 1.0, -20.0]]])
    torch.testing.assert_close(peak_distances(pred, lines), torch.tensor([[0.0, 7.0]]))


def test_adam_recipe(prepared_tiny, tmp_path):
    model = Orientation(channels=TINY, **GRID, optimizer="adam", lr=1e-3, log_images=False)
    model.trainer = L.Trainer(max_epochs=500, logger=False)
    config = model.configure_optimizers()
    assert isinstance(config["optimizer"], torch.optim.Adam) and config["lr_scheduler"]["scheduler"].step_size == 100
