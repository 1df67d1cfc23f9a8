"""The grid a checkpoint was trained on: ``checkpoint_grid`` reads it, ``CineDataModule.for_checkpoint`` builds a
data module on it, and predicting with another grid fails naming both (the docs/evaluation.md example once
predicted a 64 px / 2.0 mm checkpoint at the data module's default 256 px / 1.25 mm without a word)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from sspcmr import CineDataModule, Segmentation, checkpoint_grid, read_manifest
from sspcmr.evaluation.writer import NiftiPredictionWriter
from sspcmr.methods.export import export_backbone
from sspcmr.methods.transfer import MANIFEST_KEY

GRID = {"output_size": 64, "output_spacing": 2.0}


pytestmark = pytest.mark.usefixtures("one_cpu_thread")  # tests/conftest.py


def _segmentation_checkpoint(path: Path) -> str:
    """What ``trainer.save_checkpoint`` keeps of a Segmentation at 64 px / 2.0 mm: weights, hyperparameters
    and the manifest."""
    model = Segmentation(channels=[8, 16, 32, 64], log_images=False, **GRID)
    checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
    model.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return str(path)


def test_grid_from_the_manifest_then_the_hyperparameters(tmp_path):
    path = _segmentation_checkpoint(tmp_path / "last.ckpt")
    assert checkpoint_grid(path) == GRID
    assert read_manifest(path)["manifest"]["preprocessing"]["output_size"] == 64
    content = torch.load(path, weights_only=True)
    content[MANIFEST_KEY]["preprocessing"] = None  # written without a data module: the method's own
    torch.save(content, tmp_path / "method.ckpt")
    assert checkpoint_grid(tmp_path / "method.ckpt") == GRID
    content["hyper_parameters"] = {}  # an older sspcmr: the data module's
    content["datamodule_hyper_parameters"] = {"output_size": 128, "output_spacing": 1.5}
    torch.save(content, tmp_path / "old.ckpt")
    assert checkpoint_grid(tmp_path / "old.ckpt") == {"output_size": 128, "output_spacing": 1.5}
    content["datamodule_hyper_parameters"] = {}
    torch.save(content, tmp_path / "none.ckpt")
    with pytest.raises(ValueError, match="records no output_size"):
        checkpoint_grid(tmp_path / "none.ckpt")


def test_grid_of_an_exported_backbone_from_its_json(tmp_path):
    out = export_backbone(_segmentation_checkpoint(tmp_path / "last.ckpt"), tmp_path / "backbone.pt")
    assert checkpoint_grid(out) == GRID
    out.with_name("backbone.pt.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot read .*backbone.pt.json as JSON"):
        checkpoint_grid(out)
    out.with_name("backbone.pt.json").unlink()
    with pytest.raises(ValueError, match="backbone.pt.json, the manifest `sspcmr export-backbone` writes"):
        checkpoint_grid(out)


def test_for_checkpoint_takes_the_grid_and_refuses_another(tmp_path):
    path = _segmentation_checkpoint(tmp_path / "last.ckpt")
    data = CineDataModule.for_checkpoint(path, "prepared", "split.yaml", batch_size=3, mode="volumes")
    assert (data.output_size, data.output_spacing, data.batch_size, data.mode) == (64, 2.0, 3, "volumes")
    assert CineDataModule.for_checkpoint(path, "prepared", "split.yaml", output_size=64).output_size == 64
    with pytest.raises(ValueError, match=r"trained at 64 px / 2.0 mm but the data module asks for 256 px / 1.25 mm"):
        CineDataModule.for_checkpoint(path, "prepared", "split.yaml", output_size=256, output_spacing=1.25)


def test_prediction_on_the_checkpoints_grid_or_a_clear_error(prepared_tiny, tmp_path):
    root, split = prepared_tiny
    path = _segmentation_checkpoint(tmp_path / "last.ckpt")
    model = Segmentation.from_checkpoint(path)
    trainer = L.Trainer(logger=False, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[NiftiPredictionWriter(tmp_path / "predictions")])
    default_grid = CineDataModule(str(root), str(split), num_workers=0)
    with pytest.raises(ValueError, match=r"resamples to 64 px at 2.0 mm but the data module to 256 px at 1.25 mm"):
        trainer.predict(model, datamodule=default_grid, return_predictions=False)
    data = CineDataModule.for_checkpoint(path, str(root), str(split), num_workers=0)
    trainer.predict(model, datamodule=data, return_predictions=False)
    assert len(list((tmp_path / "predictions").glob("*_sa_pred.nii.gz"))) == len(data.subject_indices("test"))
