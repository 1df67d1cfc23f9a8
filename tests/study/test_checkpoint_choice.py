"""A study with ``checkpoint: best`` on tiny data: the pretraining keeps best.ckpt, the fine-tuning starts from
it and is tested with its own best.ckpt; a best.ckpt that is missing fails the run with a clear message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from sspcmr.study.config import load_study
from sspcmr.study.grid import find_run
from sspcmr.study.runner import StudyRunner

REPO = Path(__file__).resolve().parents[2]

# Tiny runs: 2-stage U-Net, 32 px, two training batches and one validation batch per epoch, two epochs.
COMMON = {
    "trainer.accelerator": "cpu", "trainer.devices": 1, "trainer.precision": "32-true", "trainer.max_epochs": 2,
    "trainer.limit_train_batches": 2, "trainer.limit_val_batches": 1, "trainer.num_sanity_val_steps": 0,
    "trainer.enable_progress_bar": False, "trainer.enable_model_summary": False, "trainer.log_every_n_steps": 1,
    "model.init_args.channels": [8, 16], "model.init_args.log_images": False, "data.output_size": 32,
    "data.output_spacing": 3.0, "data.batch_size": 2, "data.val_batch_size": 4, "data.num_workers": 0,
}


def study_file(folder: Path, prepared_tiny, **extra) -> Path:
    prepared, split = prepared_tiny
    content = {
        "name": "best", "output_dir": str(folder / "study"), "data": {"data_dir": str(prepared), "split": str(split)},
        "seeds": [0], "subsets": [2], "common": COMMON, "checkpoint": "best",
        "scratch": {"config": str(REPO / "configs/segmentation/baseline.yaml")},
        "finetune": {"config": str(REPO / "configs/segmentation/finetune.yaml")},
        "methods": {"mim": {"label": "MIM", "config": str(REPO / "configs/pretrain/mim.yaml"),
                            "transfer": "encoder+decoder",
                            "overrides": {"model.init_args.patch_size": 8, "data.batch_size": 4}}},
        **extra,
    }
    path = folder / "best.yaml"
    path.write_text(yaml.safe_dump(content))
    return path


@pytest.fixture(scope="module")
def runner(prepared_tiny, tmp_path_factory) -> StudyRunner:
    """The pretraining and the fine-tuning of the study, run in this process (the scratch run is not needed)."""
    runner = StudyRunner(load_study(study_file(tmp_path_factory.mktemp("best"), prepared_tiny)), launcher="inline",
                         echo=lambda line: None)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for run_id in ("pretrain-mim", "mim-n2-s0"):
            assert runner.execute(find_run(runner.runs, run_id)) == "done", run_id
    finally:
        torch.set_num_threads(threads)
    return runner


def test_the_fine_tuning_starts_from_the_pretrainings_best_ckpt(runner) -> None:
    pretraining, finetuning = (find_run(runner.runs, run_id) for run_id in ("pretrain-mim", "mim-n2-s0"))
    best = runner.checkpoint_file(pretraining.id, "best")
    assert best.is_file() and "--checkpoint.best true" in (runner.run_dir(pretraining) / "fit.log").read_text()
    config = yaml.safe_load((runner.run_dir(finetuning) / "logs" / "fit" / "config.yaml").read_text())
    assert config["model"]["init_args"]["init_from"] == str(best) and config["checkpoint"]["best"] is True
    # the fine-tuned model records where its weights came from: that file, by content
    manifest = torch.load(runner.checkpoint(finetuning), map_location="cpu", weights_only=True)["sspcmr_manifest"]
    from sspcmr.data.store.reader import sha256_file

    assert manifest["init_from"]["path"] == str(best.resolve()) and manifest["init_from"]["sha256"] == sha256_file(best)


def test_the_fine_tuning_is_tested_with_its_own_best_ckpt(runner) -> None:
    finetuning = find_run(runner.runs, "mim-n2-s0")
    own = runner.checkpoint_file(finetuning.id, "best")
    record = json.loads((runner.run_dir(finetuning) / "run.json").read_text())
    assert record["test_args"][record["test_args"].index("--ckpt_path") + 1] == str(own) and own.is_file()
    assert f"--ckpt_path {own}" in (runner.run_dir(finetuning) / "test.log").read_text()
    assert (runner.run_dir(finetuning) / "results" / "volumes.csv").is_file()
    rows = {row["id"]: row for row in runner.listing()}
    assert (rows["mim-n2-s0"]["init_ckpt"], rows["mim-n2-s0"]["test_ckpt"], rows["mim-n2-s0"]["state"]) == \
        ("best", "best", "done")


def test_a_missing_best_ckpt_fails_the_run_clearly(runner, tmp_path) -> None:
    # A pretraining finished before the study asked for best.ckpt (the same runs, another output folder).
    other = StudyRunner(load_study(runner.study.path, output_dir=tmp_path / "other"), launcher="inline")
    pretraining = find_run(other.runs, "pretrain-mim")
    other.run_dir(pretraining).mkdir(parents=True)
    (other.run_dir(pretraining) / "status.json").write_text(json.dumps({"state": "done", "fitted": True}))
    finetuning = find_run(other.runs, "mim-n2-s0")
    assert other.execute(finetuning) == "failed"
    error = json.loads((other.run_dir(finetuning) / "status.json").read_text())["error"]
    assert "best.ckpt is missing" in error and "pretrain-mim" in error
    assert not (other.run_dir(finetuning) / "fit.log").exists()  # refused before any training


def test_a_fit_that_never_logs_its_monitored_loss_fails_clearly(prepared_tiny, tmp_path) -> None:
    # no validation within max_epochs: MIM's best.ckpt (validation loss) is never written
    path = study_file(tmp_path, prepared_tiny, subset_overrides={})
    content = yaml.safe_load(path.read_text())
    content["methods"]["mim"]["overrides"].update({"trainer.max_epochs": 1, "trainer.check_val_every_n_epoch": 2})
    path.write_text(yaml.safe_dump(content))
    other = StudyRunner(load_study(path), launcher="inline")
    pretraining = find_run(other.runs, "pretrain-mim")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert other.execute(pretraining) == "failed"
    finally:
        torch.set_num_threads(threads)
    error = json.loads((other.run_dir(pretraining) / "status.json").read_text())["error"]
    assert "without" in error and "best.ckpt" in error and other.checkpoint(pretraining).is_file()
