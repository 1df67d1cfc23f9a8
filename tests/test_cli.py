"""The ``sspcmr`` command line: help, ``--print_config``, saved configs, resuming a killed run exactly,
``test`` results and the data commands, all through :func:`sspcmr.commands.main.main` on tiny synthetic data."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from sspcmr.commands.main import main

ROOT = Path(__file__).resolve().parents[1]
# A tiny, fast run: a 3-stage U-Net at 32 px on one training subject (3 steps per epoch).
TINY_MODEL = ["--model.class_path", "sspcmr.methods.Segmentation", "--model.init_args.channels", "[4,8,16]",
              "--model.init_args.log_images", "false"]


def fit_args(prepared_tiny: tuple[Path, Path], root: Path, *extra: str, command: str = "fit",
             config: Path | None = None) -> list[str]:
    """Arguments of a tiny CPU run that writes only below ``root`` (``--config`` first, so the rest override it)."""
    prepared, split = prepared_tiny
    return [
        command, *(["--config", str(config)] if config else []), *TINY_MODEL,
        "--data.data_dir", str(prepared), "--data.split", str(split), "--data.subset_subjects", "1",
        "--data.output_size", "32", "--data.output_spacing", "5.0", "--data.batch_size", "4",
        "--data.val_batch_size", "8", "--data.num_workers", "0",
        "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.default_root_dir", str(root),
        "--trainer.logger.init_args.save_dir", str(root), "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false", "--trainer.log_every_n_steps", "1",
        "--trainer.limit_val_batches", "1",
        *extra,
    ]


def last_checkpoint(root: Path) -> Path:
    """The single ``last.ckpt`` written below ``root``."""
    found = sorted(root.rglob("last.ckpt"))
    assert len(found) == 1, f"expected one last.ckpt below {root}, found {found}"
    return found[0]


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def steps_per_epoch(prepared_tiny: tuple[Path, Path], batch_size: int = 4) -> int:
    from sspcmr.data.datamodule import CineDataModule

    module = CineDataModule(str(prepared_tiny[0]), str(prepared_tiny[1]), subset_subjects=1)
    return len(module.slice_rows("train")) // batch_size


# -- help and configuration ------------------------------------------------------------------------


def test_module_help_lists_training_and_data_commands() -> None:
    result = subprocess.run([sys.executable, "-m", "sspcmr", "--help"], capture_output=True, text=True, cwd=ROOT,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    for word in ("fit", "prepare", "synth", "splits", "inspect"):
        assert word in result.stdout


def test_module_exit_code_reports_errors(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "sspcmr", "splits", "show", str(tmp_path / "missing.yaml")],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert "cannot read split file" in result.stderr
    assert result.returncode == 2


def test_fit_help_shows_data_and_model_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--data.mode" in out
    assert "--model" in out and "--ckpt_path" in out


def test_print_config_resolves_a_yaml_config(prepared_tiny, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    args = fit_args(prepared_tiny, tmp_path, "--print_config", config=ROOT / "configs/segmentation/baseline.yaml")
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert {"data", "model", "trainer"} <= set(printed)
    assert printed["model"]["class_path"] == "sspcmr.methods.Segmentation"
    assert printed["model"]["init_args"]["channels"] == [4, 8, 16]
    assert printed["model"]["init_args"]["momentum"] == 0.99  # from the YAML
    assert printed["data"]["data_dir"] == str(prepared_tiny[0])
    assert not list(tmp_path.iterdir()), "--print_config must not write anything"


# -- runs ---------------------------------------------------------------------------------------------


class Killed(Exception):
    """Stands in for a run killed between two epochs."""


@pytest.fixture
def epoch_watch(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Records the training epochs that start in ``watch["started"]``."""
    from sspcmr.methods import Segmentation

    watch: dict = {"started": []}
    original = Segmentation.on_train_epoch_start

    def on_train_epoch_start(self) -> None:
        watch["started"].append(self.current_epoch)
        original(self)

    monkeypatch.setattr(Segmentation, "on_train_epoch_start", on_train_epoch_start)
    return watch


@pytest.fixture(scope="module")
def uninterrupted(prepared_tiny, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run A: 4 epochs without interruption; the folder it wrote to."""
    root = tmp_path_factory.mktemp("uninterrupted")
    main(fit_args(prepared_tiny, root, "--trainer.max_epochs", "4"))
    return root


def test_fit_saves_the_resolved_config(prepared_tiny, uninterrupted: Path) -> None:
    run = last_checkpoint(uninterrupted).parents[1]  # <save_dir>/sspcmr/version_0
    assert run.relative_to(uninterrupted).parts == ("sspcmr", "version_0")
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["trainer"]["max_epochs"] == 4
    assert saved["model"]["class_path"] == "sspcmr.methods.Segmentation"
    assert saved["model"]["init_args"]["channels"] == [4, 8, 16]
    assert saved["data"]["split"] == str(prepared_tiny[1])
    assert saved["seed_everything"] == 0
    assert (run / "hparams.yaml").is_file()
    assert list(run.glob("events.out.tfevents.*")), "TensorBoard logs"


@pytest.fixture(scope="module")
def killed(prepared_tiny, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run B: the same as A, killed at the start of epoch 2 (after 2 of 4 epochs); the folder it wrote to."""
    from sspcmr.methods import Segmentation

    root = tmp_path_factory.mktemp("killed")
    original = Segmentation.on_train_epoch_start

    def on_train_epoch_start(self) -> None:
        if self.current_epoch == 2:
            raise Killed
        original(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Segmentation, "on_train_epoch_start", on_train_epoch_start)
        with pytest.raises(Killed):  # --debug: the error propagates instead of ending as one line
            main(fit_args(prepared_tiny, root, "--trainer.max_epochs", "4", "--debug"))
    return root


def assert_same_final_state(state_a: dict, state_b: dict) -> None:
    """Weights, optimiser momentum and augmentation stream of two final checkpoints agree."""
    assert state_b["global_step"] == state_a["global_step"]
    assert state_b["state_dict"].keys() == state_a["state_dict"].keys()
    for name, weight in state_a["state_dict"].items():
        other = state_b["state_dict"][name]
        if weight.is_floating_point():
            assert torch.allclose(weight, other, rtol=1e-6, atol=1e-8), name
        else:
            assert torch.equal(weight, other), name
    momentum_a, momentum_b = state_a["optimizer_states"][0]["state"], state_b["optimizer_states"][0]["state"]
    assert momentum_a.keys() == momentum_b.keys()
    for i in momentum_a:
        assert torch.allclose(momentum_a[i]["momentum_buffer"], momentum_b[i]["momentum_buffer"], atol=1e-8), i
    key = "sspcmr_augmentation_generator"  # the method's augmentation stream (sspcmr/methods/base.py)
    assert torch.equal(state_a[key], state_b[key])


def test_killed_run_left_a_checkpoint_of_its_last_epoch(prepared_tiny, uninterrupted: Path, killed: Path) -> None:
    steps = steps_per_epoch(prepared_tiny)
    state_a = load(last_checkpoint(uninterrupted))
    assert state_a["global_step"] == 4 * steps
    assert "sspcmr_augmentation_generator" in state_a  # the augmentation stream travels with the checkpoint
    # Written at the end of every epoch, not only when training ends.
    state_killed = load(last_checkpoint(killed))
    assert state_killed["global_step"] == 2 * steps
    # The last two epochs of A changed the weights (so equal final weights below are not trivial).
    assert any(not torch.equal(state_killed["state_dict"][k], v) for k, v in state_a["state_dict"].items()
               if v.is_floating_point())


def test_killed_run_resumes_with_ckpt_path_last(prepared_tiny, uninterrupted: Path, killed: Path, tmp_path: Path,
                                                epoch_watch: dict) -> None:
    """``--ckpt_path last`` in the killed run's folder finishes it, in that folder, with run A's weights."""
    root = tmp_path / "run"
    shutil.copytree(killed, root)
    main(fit_args(prepared_tiny, root, "--trainer.max_epochs", "4", "--ckpt_path", "last"))
    assert epoch_watch["started"] == [2, 3], "--ckpt_path last must resume the killed run, not start afresh"
    resumed = root / "sspcmr" / "version_0" / "checkpoints" / "last.ckpt"  # the killed run's own folder
    assert not (root / "sspcmr" / "version_1").exists()
    assert_same_final_state(load(last_checkpoint(uninterrupted)), load(resumed))


def test_killed_run_resumes_from_the_checkpoint_file(prepared_tiny, uninterrupted: Path, killed: Path,
                                                     tmp_path: Path, epoch_watch: dict) -> None:
    main(fit_args(prepared_tiny, tmp_path, "--trainer.max_epochs", "4", "--ckpt_path", str(last_checkpoint(killed))))
    assert epoch_watch["started"] == [2, 3]
    assert_same_final_state(load(last_checkpoint(uninterrupted)), load(last_checkpoint(tmp_path)))


def test_test_command_writes_results(prepared_tiny, uninterrupted: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    main(fit_args(prepared_tiny, tmp_path / "logs", "--ckpt_path", str(last_checkpoint(uninterrupted)),
                  "--model.init_args.results_dir", str(results), command="test"))
    assert (results / "volumes.csv").is_file()
    volumes = (results / "volumes.csv").read_text().splitlines()
    # One row per (test subject, phase): 5 test subjects x ED, ES in the tiny split.
    assert len(volumes) - 1 == 10, volumes[:3]
    assert len(list(results.iterdir())) > 1
    assert not list(uninterrupted.rglob("results")), "results go to results_dir only"


# -- data commands ------------------------------------------------------------------------------------


def test_data_commands_go_through_main(prepared_tiny, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prepared, split = prepared_tiny
    assert main(["splits", "show", str(split)]) == 0
    assert str(split) in capsys.readouterr().out
    subset = tmp_path / "subset.yaml"
    assert main(["splits", "subset", "--base", str(split), "--subjects", "2", "-o", str(subset)]) == 0
    assert subset.is_file()
    assert main(["inspect", "--prepared", str(prepared), "--split", str(subset)]) == 0
    assert "pretrain" in capsys.readouterr().out
    assert main(["splits", "subset", "--base", str(split), "--subjects", "999", "-o", str(tmp_path / "x.yaml")]) == 2
