"""Every LightningCLI config under ``configs/`` (any YAML with a ``model:`` key, found automatically, so new
configs are covered): it parses with its full-size values and the model runs a forward pass, and it trains
one step on tiny synthetic data through the real ``sspcmr fit``."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
import yaml

import sspcmr.commands.training
from sspcmr.commands.main import main
from sspcmr.commands.training import lightning_cli

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def training_configs(root: Path = CONFIGS) -> list[Path]:
    """YAML files under ``root`` that configure a LightningCLI run (they have a top-level ``model``)."""
    found = []
    for path in sorted([*root.rglob("*.yaml"), *root.rglob("*.yml")]):
        content = yaml.safe_load(path.read_text())
        if isinstance(content, dict) and "model" in content:
            found.append(path)
    return found


CONFIG_PATHS = training_configs()
IDS = [str(path.relative_to(CONFIGS)) for path in CONFIG_PATHS]


def values(config: Path) -> dict:
    return yaml.safe_load(config.read_text())


def portable_overrides(config: Path, root: Path) -> list[str]:
    """Overrides that keep a config off the real data, GPUs and the repository: CPU, logs under ``root``,
    no checkpoint to initialise from and no raw folder to prepare."""
    content = values(config)
    overrides = ["--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.strategy", "auto",
                 "--trainer.default_root_dir", str(root), "--trainer.logger.init_args.save_dir", str(root)]
    if ((content.get("model") or {}).get("init_args") or {}).get("init_from"):
        overrides += ["--model.init_args.init_from", "null"]
    if (content.get("data") or {}).get("raw_dir"):
        overrides += ["--data.raw_dir", "null"]
    return overrides


def test_discovery_keeps_runnable_configs_and_skips_fragments_and_study_files(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "run.yaml").write_text("model:\n  class_path: sspcmr.methods.MIM\n")
    (tmp_path / "a" / "other.yml").write_text("model: {class_path: sspcmr.methods.DINO}\ndata: {}\n")
    (tmp_path / "trainer.yaml").write_text("trainer:\n  max_epochs: 3\n")  # a fragment: not runnable alone
    (tmp_path / "study.yaml").write_text("name: s\nscratch: {config: a/run.yaml}\n")  # a study file
    (tmp_path / "list.yaml").write_text("- model\n")  # not a mapping
    assert [p.relative_to(tmp_path).as_posix() for p in training_configs(tmp_path)] == ["a/other.yml", "a/run.yaml"]


def test_every_shipped_config_but_the_studies_is_covered() -> None:
    shipped = {p.relative_to(CONFIGS).as_posix() for p in [*CONFIGS.rglob("*.yaml"), *CONFIGS.rglob("*.yml")]}
    studies = {name for name in shipped if name.startswith("study/")}
    assert set(IDS) == shipped - studies  # a new config under configs/ is tested unless it is a study
    assert {"segmentation/baseline.yaml", "segmentation/finetune.yaml", "pretrain/simclr.yaml", "pretrain/pcl.yaml",
            "pretrain/dino.yaml", "pretrain/mim.yaml", "pretrain/slice_location.yaml", "pretrain/orientation.yaml",
            "pretrain/multitask.yaml", "pretrain/inpainting.yaml", "demo/mim.yaml"} <= set(IDS)


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIG_PATHS, ids=IDS)
def test_config_parses_at_full_size_and_the_model_runs(config: Path, tmp_path: Path) -> None:
    content = values(config)
    cli = lightning_cli(["--config", str(config), *portable_overrides(config, tmp_path)], run=False)
    model_config = cli.config.model
    module_name, _, class_name = content["model"]["class_path"].rpartition(".")
    model_class = getattr(importlib.import_module(module_name), class_name)
    for key, value in (content["model"].get("init_args") or {}).items():
        if key not in ("init_from",):
            assert model_config.init_args[key] == value, key
    for key, value in (content.get("data") or {}).items():
        if key != "raw_dir":
            assert cli.config.data[key] == value, key
    for key in ("max_epochs", "precision"):
        if key in (content.get("trainer") or {}):
            assert cli.config.trainer[key] == content["trainer"][key], key

    model = cli.model.eval()
    assert type(model) is model_class
    size = int(cli.config.data.output_size)
    with torch.no_grad():
        outputs = model(torch.randn(1, 1, size, size))
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    assert outputs and all(torch.isfinite(out).all() for out in outputs)
    assert all(out.shape[0] == 1 for out in outputs)
    hparams = model.hparams
    if "num_classes" in hparams:  # segmentation: logits per deep-supervision head, highest resolution first
        stages = len(hparams["channels"]) if hparams.get("channels") else 7
        heads = hparams.get("num_heads", -1)
        expected_heads = stages if heads == 0 else min(heads, stages) if heads > 0 else max(1, stages + heads)
        assert len(outputs) == expected_heads
        for level, out in enumerate(outputs):
            assert tuple(out.shape) == (1, hparams["num_classes"], size >> level, size >> level), level


@pytest.mark.parametrize("config", CONFIG_PATHS, ids=IDS)
def test_config_trains_one_step_on_tiny_data(config: Path, prepared_tiny, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    prepared, split = prepared_tiny
    args = ["fit", "--config", str(config), *portable_overrides(config, tmp_path),
            "--trainer.fast_dev_run", "1", "--trainer.enable_progress_bar", "false",
            "--data.data_dir", str(prepared), "--data.split", str(split), "--data.output_size", "64",
            "--data.batch_size", "2", "--data.val_batch_size", "2", "--data.num_workers", "0",
            "--model.init_args.channels", "[8,16,32,64]"]
    if (values(config).get("data") or {}).get("subset_subjects"):
        args += ["--data.subset_subjects", "null"]  # the tiny split has only a few training subjects
    built = []  # the LightningCLI that main() builds and runs

    def keep(*args, **kwargs):
        built.append(lightning_cli(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(sspcmr.commands.training, "lightning_cli", keep)
    assert main(args) == 0
    cli = built[0]
    trainer = cli.trainer
    assert trainer.state.finished
    assert trainer.global_step == 1
    assert all(torch.isfinite(p).all() for p in cli.model.parameters())
    assert list(cli.model.hparams["channels"]) == [8, 16, 32, 64]
    for key, value in (values(config)["model"].get("init_args") or {}).items():
        if key not in ("channels", "init_from"):
            assert cli.model.hparams[key] == value, key  # the config's values reach the model
    assert cli.datamodule.mode == (values(config).get("data") or {}).get("mode", "segment")

