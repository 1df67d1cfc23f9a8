"""Checkpoints are data, never code; a fine-tuned checkpoint owns its weights; ``--ckpt_path last`` resumes
this experiment only; another subcommand never overwrites the training run's saved config.

The crafted checkpoint's pickle, if ever unpickled with ``weights_only=False``, creates a marker file:
every command must refuse it in one line without creating that file.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml

from sspcmr.commands.main import main
from sspcmr.methods import Segmentation
from sspcmr.methods.transfer import MANIFEST_KEY, file_sha256
from sspcmr.models import UNet, UNetConfig
from tests.test_cli import fit_args, last_checkpoint

TINY = [4, 8, 16]


class _Payload:
    """Unpickling this runs ``os.system``: what a hostile checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def crafted_checkpoint(path: Path, marker: Path) -> Path:
    """A checkpoint-shaped file (state dict, manifest) whose pickle carries a shell command."""
    state = {f"net.{k}": v for k, v in UNet(UNetConfig(channels=tuple(TINY))).state_dict().items()}
    torch.save({"state_dict": state, MANIFEST_KEY: {"method": "segmentation", "prefix": "net."},
                "hyper_parameters": {"channels": TINY}, "payload": _Payload(marker)}, path)
    return path


def test_the_crafted_checkpoint_really_runs_code_when_unpickled(tmp_path):
    """Control: without weights_only the payload does run (so the refusals below are meaningful)."""
    marker = tmp_path / "pwned"
    path = crafted_checkpoint(tmp_path / "evil.ckpt", marker)
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.fixture(scope="module")
def backbone(tmp_path_factory) -> Path:
    """An exported backbone (plain state dict, reference key names) to fine-tune from."""
    torch.manual_seed(7)
    net = UNet(UNetConfig(channels=tuple(TINY)))
    path = tmp_path_factory.mktemp("backbone") / "backbone.pt"
    torch.save({k: v for k, v in net.state_dict().items() if k.startswith(("encoder.", "decoder."))}, path)
    return path


@pytest.fixture(scope="module")
def finetuned(prepared_tiny, backbone, tmp_path_factory) -> tuple[Path, Path, str]:
    """A 1-epoch fine-tuning from ``backbone`` whose pretraining file is then deleted: (run root, ckpt, sha256)."""
    root = tmp_path_factory.mktemp("finetuned")
    source = root / "pretrained.pt"
    shutil.copy(backbone, source)
    digest = file_sha256(source)
    code = main(fit_args(prepared_tiny, root, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
                         "--model.init_args.init_from", str(source), "--model.init_args.transfer", "encoder+decoder"))
    assert code == 0
    source.unlink()  # from now on, nothing may need it
    return root, last_checkpoint(root), digest


def test_finetuned_checkpoint_records_provenance_and_holds_the_transferred_weights(finetuned, backbone):
    _, ckpt, digest = finetuned
    content = torch.load(ckpt, weights_only=True)
    provenance = content[MANIFEST_KEY]["init_from"]
    assert provenance["sha256"] == digest and provenance["transfer"] == "encoder+decoder"
    assert provenance["path"].endswith("pretrained.pt") and provenance["loaded_tensors"] > 0
    run = ckpt.parents[1]
    assert (run / "transfer.json").is_file()


def test_finetuned_checkpoint_works_without_its_pretraining_file(finetuned, prepared_tiny, tmp_path):
    root, ckpt, _ = finetuned
    model = Segmentation.from_checkpoint(ckpt)
    assert model.init_provenance["sha256"] == finetuned[2]
    content = torch.load(ckpt, weights_only=True)
    for key, value in model.state_dict().items():
        assert torch.equal(value, content["state_dict"][key]), key
    # test, resume (one more epoch), evaluate: none of them looks for the deleted file.
    assert main(fit_args(prepared_tiny, tmp_path / "test", "--ckpt_path", str(ckpt), "--model.init_args.results_dir",
                         str(tmp_path / "results"), command="test")) == 0
    assert (tmp_path / "results" / "volumes.csv").is_file()
    resumed = tmp_path / "resumed"
    assert main(fit_args(prepared_tiny, resumed, "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "2",
                         "--model.init_args.init_from", str(root / "pretrained.pt"),
                         "--ckpt_path", str(ckpt))) == 0
    again = torch.load(last_checkpoint(resumed), weights_only=True)
    assert again["epoch"] == 1 and again[MANIFEST_KEY]["init_from"]["sha256"] == finetuned[2]
    prepared, split = prepared_tiny
    assert main(["evaluate", "--ckpt", str(ckpt), "--prepared", str(prepared), "--split", str(split),
                 "--out", str(tmp_path / "evaluated"), "--accelerator", "cpu", "--workers", "0"]) == 0


def test_a_crafted_file_named_by_init_from_is_never_read_after_fine_tuning(finetuned, prepared_tiny, tmp_path):
    """The checkpoint's hyperparameters name init_from; a hostile file put there later must not run."""
    root, ckpt, _ = finetuned
    marker = tmp_path / "pwned"
    crafted_checkpoint(root / "pretrained.pt", marker)
    try:
        Segmentation.from_checkpoint(ckpt)
        assert main(fit_args(prepared_tiny, tmp_path / "test", "--ckpt_path", str(ckpt),
                             "--model.init_args.results_dir", str(tmp_path / "results"), command="test")) == 0
        volume = tmp_path / "sa.nii.gz"
        nib.save(nib.Nifti1Image(np.random.default_rng(0).normal(100, 20, (40, 40, 3)).astype(np.float32),
                                 np.diag([2.0, 2.0, 8.0, 1.0])), volume)
        assert main(["segment", "--ckpt", str(ckpt), "--input", str(volume), "--out", str(tmp_path / "seg")]) == 0
    finally:
        (root / "pretrained.pt").unlink()
    assert not marker.exists()


@pytest.mark.parametrize("command", ["segment", "evaluate", "export-backbone", "init_from", "fit-ckpt", "test-ckpt"])
def test_crafted_checkpoint_is_refused_by_every_command(command, prepared_tiny, tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = crafted_checkpoint(tmp_path / "evil.ckpt", marker)
    prepared, split = prepared_tiny
    volume = tmp_path / "sa.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 2), np.float32), np.eye(4)), volume)
    args = {
        "segment": ["segment", "--ckpt", str(evil), "--input", str(volume), "--out", str(tmp_path / "out")],
        "evaluate": ["evaluate", "--ckpt", str(evil), "--prepared", str(prepared), "--split", str(split),
                     "--out", str(tmp_path / "out"), "--accelerator", "cpu", "--workers", "0"],
        "export-backbone": ["export-backbone", str(evil), "-o", str(tmp_path / "out.pt")],
        "init_from": fit_args(prepared_tiny, tmp_path / "runs", "--trainer.max_epochs", "1",
                              "--model.init_args.init_from", str(evil)),
        "fit-ckpt": fit_args(prepared_tiny, tmp_path / "runs", "--trainer.max_epochs", "1", "--ckpt_path", str(evil)),
        "test-ckpt": fit_args(prepared_tiny, tmp_path / "runs", "--ckpt_path", str(evil), command="test"),
    }[command]
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert not marker.exists(), "the checkpoint's pickle ran"
    assert err[-1].startswith(f"sspcmr {args[0]}: error: ") and str(evil) in err[-1], err
    assert "refused" in err[-1] and "data only" in err[-1], err[-1]
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.pt").exists()


def test_weights_only_false_is_refused(prepared_tiny, tmp_path, capsys):
    code = main(fit_args(prepared_tiny, tmp_path, "--ckpt_path", str(tmp_path / "x.ckpt"), "--weights_only", "false"))
    assert code == 2
    assert "--weights_only false is not supported" in capsys.readouterr().err


# -- --ckpt_path last ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_experiments(prepared_tiny, tmp_path_factory) -> Path:
    """Experiment A (lr 0.01) then B (lr 0.02), 1 epoch each, logged under the same name: A is version_0."""
    root = tmp_path_factory.mktemp("two_experiments")
    for lr in ("0.01", "0.02"):
        assert main(fit_args(prepared_tiny, root, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1",
                             "--model.init_args.lr", lr)) == 0
    return root


def test_ckpt_path_last_resumes_this_experiment_not_the_newest(prepared_tiny, two_experiments, tmp_path, caplog):
    root = tmp_path / "runs"
    shutil.copytree(two_experiments, root)
    a, b = (root / "sspcmr" / f"version_{i}" / "checkpoints" / "last.ckpt" for i in (0, 1))
    os.utime(b, ns=(b.stat().st_atime_ns, a.stat().st_mtime_ns + 10**9))  # B is the newest
    code = main(fit_args(prepared_tiny, root, "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "1",
                         "--model.init_args.lr", "0.01", "--ckpt_path", "last"))
    assert code == 0
    assert f"resuming from {a}" in caplog.text
    resumed = torch.load(a, weights_only=True)  # A's own folder, continued
    assert resumed["epoch"] == 1 and resumed["hyper_parameters"]["lr"] == 0.01
    assert torch.load(b, weights_only=True)["epoch"] == 0, "B untouched"
    assert sorted(p.name for p in (root / "sspcmr").iterdir()) == ["version_0", "version_1"]


def test_ckpt_path_last_without_a_matching_run_stops(prepared_tiny, two_experiments, tmp_path, capsys):
    root = tmp_path / "runs"
    shutil.copytree(two_experiments, root)
    code = main(fit_args(prepared_tiny, root, "--trainer.max_epochs", "2", "--model.init_args.lr", "0.05",
                         "--ckpt_path", "last"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "no earlier run of this experiment" in err[-1] and "leave --ckpt_path out" in err[-1]
    assert sorted(p.name for p in (root / "sspcmr").iterdir()) == ["version_0", "version_1"], "nothing started"
    empty = tmp_path / "empty"
    assert main(fit_args(prepared_tiny, empty, "--ckpt_path", "last")) == 2


def test_ckpt_path_last_with_a_fixed_version(prepared_tiny, two_experiments, tmp_path, capsys, caplog):
    root = tmp_path / "runs"
    shutil.copytree(two_experiments, root)
    code = main(fit_args(prepared_tiny, root, "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "1",
                         "--model.init_args.lr", "0.02", "--trainer.logger.init_args.version", "1",
                         "--ckpt_path", "last"))
    assert code == 0
    assert "resuming from" in caplog.text and "version_1/checkpoints/last.ckpt" in caplog.text
    code = main(fit_args(prepared_tiny, root, "--trainer.logger.init_args.version", "other", "--ckpt_path", "last"))
    assert code == 2 and "other/checkpoints/last.ckpt does not exist" in capsys.readouterr().err


# -- saved configs -------------------------------------------------------------------------------------


def test_test_and_validate_keep_the_training_config(prepared_tiny, two_experiments, tmp_path):
    root = tmp_path / "runs"
    shutil.copytree(two_experiments, root)
    run = root / "sspcmr" / "version_0"
    before = (run / "config.yaml").read_bytes()
    fixed = ["--trainer.logger.init_args.version", "0", "--ckpt_path", str(run / "checkpoints" / "last.ckpt")]
    assert main(fit_args(prepared_tiny, root, *fixed, "--model.init_args.results_dir", str(tmp_path / "r"),
                         command="test")) == 0
    assert main(fit_args(prepared_tiny, root, *fixed, command="validate")) == 0
    assert (run / "config.yaml").read_bytes() == before
    assert yaml.safe_load((run / "config-test.yaml").read_text())["ckpt_path"].endswith("last.ckpt")
    assert (run / "config-validate.yaml").is_file()


# -- segment outputs -----------------------------------------------------------------------------------


def test_segment_keeps_inputs_apart_and_never_overwrites(finetuned, tmp_path, capsys):
    _, ckpt, _ = finetuned
    rng = np.random.default_rng(0)
    inputs = []
    for folder in ("a", "b"):
        path = tmp_path / "in" / folder / "sa.nii.gz"
        path.parent.mkdir(parents=True)
        nib.save(nib.Nifti1Image(rng.normal(100, 20, (40, 40, 3)).astype(np.float32), np.diag([2, 2, 8, 1.0])), path)
        inputs.append(str(path))
    out = tmp_path / "out"
    assert main(["segment", "--ckpt", str(ckpt), "--input", *inputs, "--out", str(out)]) == 0
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.nii.gz"))
    assert written == ["a/sa_pred.nii.gz", "b/sa_pred.nii.gz"]
    stamp = (out / "a" / "sa_pred.nii.gz").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["segment", "--ckpt", str(ckpt), "--input", *inputs, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "exists already; pass --overwrite" in err and (out / "a" / "sa_pred.nii.gz").stat().st_mtime_ns == stamp
    assert main(["segment", "--ckpt", str(ckpt), "--input", *inputs, "--out", str(out), "--overwrite"]) == 0
    assert main(["segment", "--ckpt", str(ckpt), "--input", inputs[0], inputs[0], "--out", str(tmp_path / "o")]) == 2
    assert "same file twice" in capsys.readouterr().err
