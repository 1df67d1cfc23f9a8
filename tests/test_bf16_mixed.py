"""bf16 mixed precision on the CPU on every path: each shipped training config (found as tests/test_configs.py
finds them) trains one step under ``--trainer.precision bf16-mixed`` with finite losses and float32, finite
weights; a Segmentation checkpoint validates, tests and predicts under it, and ``sspcmr segment`` segments
under ``--precision bf16-mixed``. A hook on every convolution shows the network did run in bfloat16."""

from __future__ import annotations

import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

import sspcmr.commands.training
from sspcmr.commands.main import main
from sspcmr.commands.training import lightning_cli
from tests.test_configs import CONFIGS, portable_overrides, training_configs, values

CONFIG_PATHS = training_configs()
BASELINE = CONFIGS / "segmentation" / "baseline.yaml"
BF16 = ["--trainer.precision", "bf16-mixed"]


@pytest.fixture
def conv_dtypes(monkeypatch: pytest.MonkeyPatch) -> set[torch.dtype]:
    """The output dtypes of every ``Conv2d`` call during the test."""
    seen: set[torch.dtype] = set()
    forward = torch.nn.Conv2d.forward

    def recording(self, x):
        out = forward(self, x)
        seen.add(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.Conv2d, "forward", recording)
    return seen


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list:
    """The LightningCLIs that ``main`` builds and runs."""
    clis: list = []

    def keep(*args, **kwargs):
        clis.append(lightning_cli(*args, **kwargs))
        return clis[-1]

    monkeypatch.setattr(sspcmr.commands.training, "lightning_cli", keep)
    return clis


def tiny_data(prepared_tiny, size: str = "64") -> list[str]:
    prepared, split = prepared_tiny
    return ["--data.data_dir", str(prepared), "--data.split", str(split), "--data.output_size", size,
            "--data.batch_size", "2", "--data.val_batch_size", "2", "--data.num_workers", "0",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def assert_finite_float32(model: torch.nn.Module) -> None:
    for name, parameter in model.named_parameters():
        assert parameter.dtype == torch.float32 and torch.isfinite(parameter).all(), name


@pytest.mark.parametrize("config", CONFIG_PATHS, ids=[str(p.relative_to(CONFIGS)) for p in CONFIG_PATHS])
def test_every_config_trains_one_step_in_bf16_mixed(config: Path, prepared_tiny, tmp_path: Path, built: list,
                                                   conv_dtypes: set) -> None:
    args = ["fit", "--config", str(config), *portable_overrides(config, tmp_path), *BF16,
            "--trainer.fast_dev_run", "1", *tiny_data(prepared_tiny), "--model.init_args.channels", "[8,16,32,64]"]
    if (values(config).get("data") or {}).get("subset_subjects"):
        args += ["--data.subset_subjects", "null"]
    assert main(args) == 0
    trainer, model = built[0].trainer, built[0].model
    assert trainer.state.finished and trainer.global_step == 1 and trainer.precision == "bf16-mixed"
    assert torch.bfloat16 in conv_dtypes  # autocast ran the convolutions in bfloat16
    losses = {k: float(v) for k, v in trainer.callback_metrics.items() if "loss" in k}
    assert losses and all(math.isfinite(v) for v in losses.values()), losses
    assert_finite_float32(model)


@pytest.fixture(scope="module")
def checkpoint(prepared_tiny, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Segmentation trained for one step under bf16-mixed: its ``last.ckpt``."""
    root = tmp_path_factory.mktemp("bf16-segmentation")
    args = ["fit", "--config", str(BASELINE), *portable_overrides(BASELINE, root), *BF16, *tiny_data(prepared_tiny),
            "--model.init_args.channels", "[8,16,32,64]", "--model.init_args.log_images", "false",
            "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "1",
            "--trainer.num_sanity_val_steps", "0"]
    assert main(args) == 0
    (path,) = sorted(root.rglob("last.ckpt"))
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert all(v.dtype == torch.float32 for v in state["state_dict"].values() if v.is_floating_point())
    return path


def evaluation_args(command: str, prepared_tiny, checkpoint: Path, root: Path) -> list[str]:
    return [command, "--config", str(BASELINE), *portable_overrides(BASELINE, root), *BF16,
            *tiny_data(prepared_tiny), "--ckpt_path", str(checkpoint), "--model.init_args.channels", "[8,16,32,64]",
            "--model.init_args.log_images", "false"]


def test_validate_in_bf16_mixed(prepared_tiny, checkpoint: Path, tmp_path: Path, built: list,
                                conv_dtypes: set) -> None:
    args = evaluation_args("validate", prepared_tiny, checkpoint, tmp_path)
    assert main([*args, "--trainer.limit_val_batches", "2"]) == 0
    metrics = built[0].trainer.callback_metrics
    assert torch.bfloat16 in conv_dtypes and built[0].trainer.precision == "bf16-mixed"
    assert math.isfinite(float(metrics["val/loss"])) and 0 <= float(metrics["val/dice"]) <= 1


def test_test_in_bf16_mixed(prepared_tiny, checkpoint: Path, tmp_path: Path, built: list, conv_dtypes: set) -> None:
    results = tmp_path / "results"
    args = evaluation_args("test", prepared_tiny, checkpoint, tmp_path)
    assert main([*args, "--trainer.limit_test_batches", "2", "--model.init_args.results_dir", str(results)]) == 0
    assert torch.bfloat16 in conv_dtypes
    rows = (results / "volumes.csv").read_text().splitlines()
    assert len(rows) - 1 == 2  # one row per volume scored


def test_predict_in_bf16_mixed(prepared_tiny, checkpoint: Path, tmp_path: Path, conv_dtypes: set) -> None:
    out = tmp_path / "predictions"
    args = evaluation_args("predict", prepared_tiny, checkpoint, tmp_path)
    assert main([*args, "--trainer.limit_predict_batches", "2",
                 "--trainer.callbacks+=sspcmr.evaluation.writer.NiftiPredictionWriter",
                 "--trainer.callbacks.output_dir", str(out)]) == 0
    assert torch.bfloat16 in conv_dtypes
    written = sorted(out.glob("*_sa_pred.nii.gz"))
    assert written
    labels = np.asarray(nib.load(written[0]).dataobj)
    assert labels.ndim == 4 and set(np.unique(labels)) <= {0, 1, 2, 3}


def test_segment_in_bf16_mixed(tiny_dataset, checkpoint: Path, tmp_path: Path, conv_dtypes: set) -> None:
    cine = nib.load(next(iter(sorted(Path(tiny_dataset[0]).rglob("*_sa.nii.gz")))))
    volume = tmp_path / "in" / "frame0.nii.gz"  # one frame: a 3D volume keeps the test short
    volume.parent.mkdir()
    nib.save(nib.Nifti1Image(np.asarray(cine.dataobj)[..., 0], cine.affine, cine.header), volume)
    out = tmp_path / "out"
    assert main(["segment", "--ckpt", str(checkpoint), "--input", str(volume), "--out", str(out),
                 "--precision", "bf16-mixed"]) == 0
    assert torch.bfloat16 in conv_dtypes
    labels = np.asarray(nib.load(out / "frame0_pred.nii.gz").dataobj)
    assert labels.shape == cine.shape[:3] and set(np.unique(labels)) <= {0, 1, 2, 3}
