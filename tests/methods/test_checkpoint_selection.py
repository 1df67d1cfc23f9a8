"""``--checkpoint.*``: best.ckpt (validation loss), best-train.ckpt (training loss) and epoch snapshots beside
last.ckpt, under stable names; only last.ckpt by default; a best.ckpt initialises a fine-tuning strictly."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from sspcmr.commands.training import CheckpointSelection, loss_keys, trainer_defaults
from sspcmr.methods import DINO, MIM, Segmentation, SimCLR

GRID = {"output_size": 32, "output_spacing": 3.0}


def tiny_fit_args(prepared_tiny, root: Path, epochs: int) -> list[str]:
    """A 2-stage MIM on 32 px: two training batches and one validation batch per epoch, at a learning rate so
    high (0.5) that the validation loss jumps (about 5e3, 5e4, 9e3 over three epochs): its best epoch is not the
    last, so best.ckpt and last.ckpt differ."""
    prepared, split = prepared_tiny
    return ["--config", "configs/pretrain/mim.yaml", "--trainer.accelerator", "cpu", "--trainer.devices", "1",
            "--trainer.precision", "32-true", "--trainer.max_epochs", str(epochs),
            "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
            "--trainer.num_sanity_val_steps", "0", "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false", "--trainer.log_every_n_steps", "1",
            "--trainer.default_root_dir", str(root), "--trainer.logger.init_args.save_dir", str(root),
            "--data.data_dir", str(prepared), "--data.split", str(split), "--data.output_size", "32",
            "--data.output_spacing", "3.0", "--data.batch_size", "4", "--data.val_batch_size", "4",
            "--data.num_workers", "0", "--model.init_args.channels", "[8,16]", "--model.init_args.patch_size", "8",
            "--model.init_args.lr", "0.5"]


class LossRecorder(L.Callback):
    """The epoch losses as the trainer saw them, for an independent check of what the checkpoints chose."""

    def __init__(self) -> None:
        self.validation: list[float] = []
        self.training: list[float] = []

    def on_validation_end(self, trainer, pl_module) -> None:
        self.validation.append(float(trainer.callback_metrics["val/loss"]))

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.training.append(float(trainer.callback_metrics["train/loss_epoch"]))


def fit(args: list[str], resume: Path | None = None) -> tuple[Path, LossRecorder]:
    """Run ``sspcmr fit ARGS`` in this process (resuming from ``resume``); returns the checkpoint folder and the
    recorded losses."""
    from sspcmr.commands.training import lightning_cli

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cli = lightning_cli(args, run=False)
        recorder = LossRecorder()
        cli.trainer.callbacks.append(recorder)
        cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=resume)
    finally:
        torch.set_num_threads(threads)
    return Path(cli.trainer.log_dir) / "checkpoints", recorder


@pytest.fixture(scope="module")
def kept(prepared_tiny, tmp_path_factory) -> tuple[Path, LossRecorder]:
    """Three epochs keeping every kind of checkpoint."""
    root = tmp_path_factory.mktemp("kept")
    return fit([*tiny_fit_args(prepared_tiny, root, 3), "--checkpoint.best", "true", "--checkpoint.best_train",
                "true", "--checkpoint.every_n_epochs", "1"])


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_by_default_only_last_ckpt_is_written(prepared_tiny, tmp_path) -> None:
    folder, _ = fit(tiny_fit_args(prepared_tiny, tmp_path, 2))
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt"]


def test_asked_for_checkpoints_have_stable_names(kept) -> None:
    folder, _ = kept
    assert sorted(p.name for p in folder.iterdir()) == [
        "best-train.ckpt", "best.ckpt", "epoch=0000.ckpt", "epoch=0001.ckpt", "epoch=0002.ckpt", "last.ckpt"]
    assert torch.load(folder / "epoch=0001.ckpt", weights_only=True)["epoch"] == 1  # after the 2nd epoch


@pytest.mark.parametrize(("name", "losses"), [("best.ckpt", "validation"), ("best-train.ckpt", "training")])
def test_best_checkpoints_hold_the_epoch_with_the_lowest_loss(kept, name: str, losses: str) -> None:
    folder, recorder = kept
    values = getattr(recorder, losses)
    assert len(values) == 3
    epoch = min(range(3), key=values.__getitem__)
    content = torch.load(folder / name, map_location="cpu", weights_only=True)
    assert content["epoch"] == epoch
    if name == "best.ckpt":  # else the test could not tell best from last
        assert epoch != 2, f"the validation losses {values} no longer jump; raise the learning rate"
    # the same weights as that epoch's snapshot, an independent copy written by another callback
    snapshot = weights(folder / f"epoch={epoch:04d}.ckpt")
    assert all(torch.equal(snapshot[key], value) for key, value in content["state_dict"].items())
    states = [state for key, state in content["callbacks"].items() if f"'filename': '{name[:-5]}'" in key]
    assert len(states) == 1 and float(states[0]["best_model_score"]) == pytest.approx(min(values))


def test_a_resumed_fit_goes_on_with_its_best_so_far(prepared_tiny, tmp_path) -> None:
    args = [*tiny_fit_args(prepared_tiny, tmp_path, 2), "--checkpoint.best", "true",
            "--trainer.logger.init_args.version", "0"]
    folder, first = fit([*args, "--trainer.max_steps", "2"])  # killed after the first of two epochs
    _, second = fit(args, resume=folder / "last.ckpt")
    values = first.validation + second.validation
    assert values[0] < values[1]  # so a best state lost on resuming would show (epoch 1 saved as best)
    content = torch.load(folder / "best.ckpt", map_location="cpu", weights_only=True)
    assert content["epoch"] == 0
    state = next(state for key, state in content["callbacks"].items() if "'filename': 'best'" in key)
    assert float(state["best_model_score"]) == pytest.approx(values[0])


def test_a_best_checkpoint_initialises_a_fine_tuning_strictly(kept) -> None:
    folder, _ = kept
    model = Segmentation(channels=[8, 16], init_from=str(folder / "best.ckpt"), transfer="encoder+decoder", **GRID)
    report = model.apply_init_from()
    source = weights(folder / "best.ckpt")
    assert report.loaded and report.manifest["method"] == "mim"
    own = model.net.state_dict()
    for key in report.loaded:  # the U-Net's encoder... / decoder... <- the checkpoint's backbone.encoder... / ...
        assert torch.equal(own[key], source["backbone." + key]), key
    assert {key.split(".")[0] for key in report.loaded} == {"encoder", "decoder"}  # never the heads
    assert len(report.loaded) == len([k for k in own if k.startswith(("encoder.", "decoder."))])


def test_the_monitored_losses_are_the_ones_each_method_logs() -> None:
    assert loss_keys(Segmentation(channels=[8, 16], **GRID)) == ("val/loss", "train/loss")
    assert loss_keys(MIM(channels=[8, 16], patch_size=8, **GRID)) == ("val/loss", "train/loss_epoch")
    assert loss_keys(SimCLR(channels=[8, 16], **GRID)) == ("val/loss", "train/loss_epoch")
    # DINO logs no validation loss: its best is on the training loss, as the reference's
    dino = DINO(channels=[8, 16], output_dim=64, hidden_dim=32, bottleneck_dim=16, **GRID)
    assert loss_keys(dino) == ("train/loss_epoch", "train/loss_epoch")
    chosen = CheckpointSelection(best=True, best_train=True, every_n_epochs=1).callbacks(dino)
    assert [(c.filename, c.monitor) for c in chosen] == [
        ("best", "train/loss_epoch"), ("best-train", "train/loss_epoch"), ("epoch={epoch:04d}", None)]
    assert chosen[0]._save_on_train_epoch_end is True  # a training metric: saved when its epoch ends
    # two callbacks on one metric and a snapshot every epoch next to last.ckpt: Lightning accepts them only
    # with distinct state keys (else "more than one stateful callback")
    trainer = L.Trainer(callbacks=[*trainer_defaults()["callbacks"], *chosen], logger=False,
                        enable_progress_bar=False)
    keys = [c.state_key for c in trainer.checkpoint_callbacks]
    assert len(keys) == len(set(keys)) == 4
    own = CheckpointSelection(best=True, monitor="val/probe_position_mae").callbacks(dino)
    assert own[0].monitor == "val/probe_position_mae" and own[0]._save_on_train_epoch_end is False


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="every_n_epochs"):
        CheckpointSelection(every_n_epochs=-1)
    with pytest.raises(ValueError, match="monitor"):
        CheckpointSelection(best=True, monitor=" ")
