"""``SliceLocation``: the target, the loss and the validation metrics on hand-checkable values, and two real
training steps on the tiny phantom (metrics logged, manifest, transfer into ``Segmentation``)."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch

from sspcmr.data import keys as K
from sspcmr.data.datamodule import CineDataModule
from sspcmr.methods import Segmentation, SliceLocation
from sspcmr.methods.export import backbone_state_dict
from sspcmr.methods.slice_location import location_target, scatter_image, validation_metrics
from sspcmr.methods.transfer import MANIFEST_KEY

TINY = [8, 16, 32, 64]
SIZE = 64
GRID = {"output_size": SIZE, "output_spacing": 2.5}  # the models' output grid: the data module's
METRICS = ("val/mse", "val/mae", "val/pearson_r", "val/r2", "val/explained_variance")


def stubbed(centrosymmetric: bool = False) -> tuple[SliceLocation, dict]:
    """A tiny model whose pooled features are a batch's ``features`` and whose head reads feature 0 as is,
    so its predictions are chosen by the test; logging is captured in ``logged``."""
    model = SliceLocation(channels=TINY, **GRID, centrosymmetric=centrosymmetric, probe=False)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.weight[0, 0] = 1.0
        model.head.bias.zero_()
    logged: dict = {}
    model.encode = lambda images: images.flatten(1)[:, :TINY[-1]]  # the "image" carries the features
    model.log = lambda name, value, **kwargs: logged.__setitem__(name, value)
    model.log_dict = lambda values, **kwargs: logged.update(values)
    model.monitor_due = lambda: False
    return model, logged


def batch_of(prediction: list[float], location: list[float]) -> dict:
    features = torch.zeros(len(prediction), 1, 8, 8)
    features[:, 0, 0, 0] = torch.tensor(prediction)
    return {K.IMAGE: features, K.LOCATION: torch.tensor(location)}


def test_centrosymmetric_target_is_sin_pi_l():
    location = torch.tensor([0.0, 0.25, 0.5, 1.0])
    assert torch.equal(location_target(location), location)
    expected = torch.tensor([0.0, math.sqrt(0.5), 1.0, 0.0])
    assert torch.allclose(location_target(location, centrosymmetric=True), expected, atol=1e-6)


@pytest.mark.parametrize("centrosymmetric", [False, True])
def test_loss_is_the_batch_mse_against_the_target(centrosymmetric):
    model, logged = stubbed(centrosymmetric)
    prediction, location = [0.1, 0.5, 0.9, 0.2], [0.0, 0.5, 1.0, 0.25]
    target = [math.sin(math.pi * v) for v in location] if centrosymmetric else location
    expected = sum((p - t) ** 2 for p, t in zip(prediction, target, strict=True)) / 4
    loss = model.training_step(batch_of(prediction, location), 0)
    assert loss.dtype == torch.float32
    assert float(loss.detach()) == pytest.approx(expected, abs=1e-6)
    assert float(logged["train/loss_step"]) == pytest.approx(expected, abs=1e-6)


def test_metrics_on_hand_checkable_values():
    target = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])
    metrics = validation_metrics()
    metrics.update(target.clone(), target)
    perfect = {k: float(v) for k, v in metrics.compute().items()}
    assert perfect == pytest.approx({"mse": 0.0, "mae": 0.0, "pearson_r": 1.0, "r2": 1.0, "explained_variance": 1.0})
    metrics.reset()
    # A constant offset of 0.1: MSE 0.01, MAE 0.1, r 1, explained variance 1, but R^2 = 1 - 0.05 / 0.625.
    metrics.update(target[:2] + 0.1, target[:2])  # accumulated over batches, computed over the epoch
    metrics.update(target[2:] + 0.1, target[2:])
    offset = {k: float(v) for k, v in metrics.compute().items()}
    assert offset == pytest.approx({"mse": 0.01, "mae": 0.1, "pearson_r": 1.0, "r2": 0.92, "explained_variance": 1.0},
                                   abs=1e-5)


def test_validation_epoch_logs_the_metrics_of_all_its_batches():
    model, logged = stubbed()
    model.on_validation_epoch_start()
    model.validation_step(batch_of([0.1, 0.35], [0.0, 0.25]), 0)
    model.validation_step(batch_of([0.6, 0.85, 1.1], [0.5, 0.75, 1.0]), 1)
    model.on_validation_epoch_end()
    assert {k: float(logged[k]) for k in METRICS} == pytest.approx(
        {"val/mse": 0.01, "val/mae": 0.1, "val/pearson_r": 1.0, "val/r2": 0.92, "val/explained_variance": 1.0},
        abs=1e-5)
    model.on_validation_epoch_start()  # a new epoch starts from nothing
    model.validation_step(batch_of([0.0, 1.0], [0.0, 1.0]), 0)
    model.on_validation_epoch_end()
    assert float(logged["val/mse"]) == 0.0 and float(logged["val/r2"]) == 1.0


def test_a_single_validation_slice_skips_r2_instead_of_failing():
    model, logged = stubbed()
    model.on_validation_epoch_start()
    model.validation_step(batch_of([0.2], [0.0]), 0)
    model.on_validation_epoch_end()
    assert float(logged["val/mse"]) == pytest.approx(0.04) and "val/r2" not in logged


def test_scatter_puts_targets_right_and_predictions_up():
    image = scatter_image(torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0.0, 1.0, 0.5]), size=11)
    assert image.shape == (3, 11, 11)
    assert image[:, 10, 0].tolist() == [1.0] * 3  # (0, 0): bottom left
    assert image[:, 0, 10].tolist() == [1.0] * 3  # (1, 1): top right
    assert image[:, 0, 5].tolist() == [1.0] * 3  # prediction 2 clamped to the top
    assert image[0, 5, 5] == 0.4  # the diagonal


def test_adam_option_builds_adam_with_a_step_schedule():
    model = SliceLocation(channels=TINY, **GRID, optimizer="adam", lr=1e-3, weight_decay=0.0, step_size=100, gamma=0.5)
    config = model.configure_optimizers()
    optimizer, schedule = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.defaults["lr"] == 1e-3
    assert isinstance(schedule, torch.optim.lr_scheduler.StepLR)
    assert (schedule.step_size, schedule.gamma, config["lr_scheduler"]["interval"]) == (100, 0.5, "epoch")
    with pytest.raises(ValueError, match="optimizer"):
        SliceLocation(channels=TINY, **GRID, optimizer="lamb")


# -- two real steps on the tiny phantom ------------------------------------------------------------------------


def data(prepared_tiny) -> CineDataModule:
    root, split = prepared_tiny
    return CineDataModule(str(root), str(split), mode="pretrain", batch_size=4, val_batch_size=8,
                          num_workers=0, output_size=SIZE, output_spacing=2.5)


def trainer(root: Path, **overrides) -> L.Trainer:
    options = {"accelerator": "cpu", "devices": 1, "max_epochs": 1, "limit_train_batches": 2, "limit_val_batches": 2,
               "logger": False, "enable_progress_bar": False, "enable_model_summary": False,
               "num_sanity_val_steps": 0, "default_root_dir": str(root), "log_every_n_steps": 1,
               "enable_checkpointing": False, **overrides}
    return L.Trainer(**options)


@pytest.fixture(scope="module")
def pretrained(prepared_tiny, tmp_path_factory):
    """(model, trainer, checkpoint) after 2 training steps and a validation epoch, logged to TensorBoard."""
    from lightning.pytorch.loggers import TensorBoardLogger

    root = tmp_path_factory.mktemp("slice_location")
    torch.manual_seed(0)
    model = SliceLocation(channels=TINY, **GRID)
    fit = trainer(root, logger=TensorBoardLogger(str(root), name="tb"))
    fit.fit(model, datamodule=data(prepared_tiny))
    path = root / "slice_location.ckpt"
    fit.save_checkpoint(path)
    return model, fit, path


def test_two_steps_train_the_encoder_and_log_the_pretext_metrics(pretrained):
    model, fit, _ = pretrained
    torch.manual_seed(0)
    fresh = SliceLocation(channels=TINY, **GRID)
    trained = model.backbone.encoder.state_dict()
    assert any(not torch.equal(v, fresh.backbone.encoder.state_dict()[k]) for k, v in trained.items())
    assert all(torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point())
    metrics = fit.callback_metrics
    assert {*METRICS, "train/loss_epoch", "val/loss", "train/embedding_std", "train/effective_rank"} <= set(metrics)
    assert math.isfinite(float(metrics["train/loss_epoch"]))
    # val/loss averages the batch MSEs weighted by batch size: the MSE of the whole epoch, as val/mse.
    assert float(metrics["val/mse"]) == pytest.approx(float(metrics["val/loss"]), rel=1e-4)
    assert 0 <= float(metrics["val/mae"]) <= math.sqrt(float(metrics["val/mse"])) + 1e-6
    optimizer = fit.optimizers[0]
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["nesterov"]
    assert optimizer.defaults["momentum"] == 0.99 and optimizer.defaults["weight_decay"] == 3e-5


def test_scatter_is_logged_to_tensorboard(pretrained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, fit, _ = pretrained
    events = EventAccumulator(fit.logger.log_dir)
    events.Reload()
    assert "val/location_scatter" in events.Tags()["images"]


def test_manifest_and_encoder_transfer(pretrained):
    model, _, path = pretrained
    manifest = torch.load(path, map_location="cpu", weights_only=False)[MANIFEST_KEY]
    assert manifest["method"] == "slice_location" and manifest["transferable"] == ["encoder"]
    assert manifest["unet"]["channels"] == TINY and manifest["preprocessing"]["output_size"] == SIZE
    tuned = Segmentation(channels=TINY, **GRID, log_images=False, init_from=str(path), transfer="encoder")
    tuned.apply_init_from()
    source = model.backbone.state_dict()
    loaded = tuned.transfer_report.loaded
    assert loaded and all(key.startswith("encoder.") for key in loaded)
    assert len(loaded) == sum(1 for key in tuned.net.state_dict() if key.startswith("encoder."))
    assert all(torch.equal(tuned.net.state_dict()[key], source[key]) for key in loaded)
    with pytest.raises(ValueError, match="provides only encoder; use --model.transfer encoder"):
        Segmentation(channels=TINY, **GRID, init_from=str(path), transfer="encoder+decoder").apply_init_from()
    exported, _ = backbone_state_dict(path)  # export-backbone: the encoder under the reference names
    assert exported.keys() == {key for key in source if key.startswith("encoder.")}
    with pytest.raises(ValueError, match="encoder"):
        backbone_state_dict(path, parts="all")
