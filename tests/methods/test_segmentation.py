"""``Segmentation``: slice Dice, the reference optimiser and poly schedule, training on the tiny data,
frozen-encoder epochs and the native-space test
(docs/reference.md#segmentation-loss, #optimisation, #transfer, #evaluation)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pandas as pd
import pytest
import torch

from sspcmr.data import keys as K
from sspcmr.data.datamodule import CineDataModule
from sspcmr.methods.segmentation import Segmentation, slice_dice

TINY = [8, 16, 32]
GRID = {"output_size": 32}  # the models' output grid: the data module's


def _model(**kwargs) -> Segmentation:
    return Segmentation(channels=TINY, **{**GRID, "log_images": False, **kwargs})


def _data(prepared_tiny, **kwargs) -> CineDataModule:
    root, split = prepared_tiny
    options = {"mode": "segment", "output_size": 32, "batch_size": 4, "num_workers": 0, **kwargs}
    return CineDataModule(str(root), str(split), **options)


def _trainer(**kwargs) -> L.Trainer:
    options = {"max_epochs": 1, "accelerator": "cpu", "devices": 1, "logger": False, "enable_checkpointing": False,
               "enable_progress_bar": False, "enable_model_summary": False, **kwargs}
    return L.Trainer(**options)


def _optimizer(model: Segmentation, max_epochs: int):
    model.trainer = SimpleNamespace(max_epochs=max_epochs)  # what configure_optimizers reads
    config = model.configure_optimizers()
    return config["optimizer"], config["lr_scheduler"]


# -- slice Dice ------------------------------------------------------------------------------------


def test_slice_dice_golden_values():
    pred = torch.tensor([
        [[1, 1, 0, 0],
         [0, 0, 0, 0],
         [0, 0, 0, 3],
         [0, 0, 0, 0]],
        [[1, 0, 0, 0],
         [0, 0, 0, 0],
         [0, 0, 3, 3],
         [0, 0, 0, 0]],
    ])
    target = torch.tensor([
        [[1, 1, 1, 0],
         [0, 0, 0, 0],
         [0, 0, 0, 0],
         [0, 0, 0, 0]],
        [[1, 0, 0, 0],
         [0, 2, 2, 0],
         [0, 0, 0, 3],
         [0, 0, 3, 0]],
    ])
    dice = slice_dice(pred, target)
    assert dice.shape == (2, 3) and dice.dtype == torch.float32
    expected = torch.tensor([
        [2 * 2 / (2 + 3), 1.0, 0.0],  # LV overlap 2 of 2+3; MYO empty in both: 1; RV only predicted: 0
        [1.0, 0.0, 2 * 1 / (2 + 2)],  # LV exact; MYO only in the target: 0; RV overlap 1 of 2+2
    ])
    torch.testing.assert_close(dice, expected)
    torch.testing.assert_close(slice_dice(pred, target, classes=(0,)),
                               torch.tensor([[2 * 12 / (13 + 13)], [2 * 10 / (13 + 11)]]))


def test_slice_dice_empty_rules():
    empty = torch.zeros(3, 5, 5, dtype=torch.long)
    assert torch.equal(slice_dice(empty, empty), torch.ones(3, 3))
    full = torch.full((3, 5, 5), 2)
    assert torch.equal(slice_dice(full, empty), torch.tensor([[1.0, 0.0, 1.0]] * 3))
    assert torch.equal(slice_dice(empty, full), torch.tensor([[1.0, 0.0, 1.0]] * 3))
    assert torch.equal(slice_dice(full, full), torch.ones(3, 3))


# -- optimiser and schedule --------------------------------------------------------------------


def test_optimizer_is_reference_sgd_on_all_parameters():
    model = _model()
    optimizer, scheduler = _optimizer(model, 1000)
    assert type(optimizer) is torch.optim.SGD
    assert len(optimizer.param_groups) == 1
    group = optimizer.param_groups[0]
    assert group["nesterov"] is True and group["momentum"] == 0.99
    assert group["weight_decay"] == 3e-5 and group["lr"] == 0.01
    assert group["dampening"] == 0
    assert {id(p) for p in group["params"]} == {id(p) for p in model.parameters()}
    assert len(group["params"]) == len(list(model.parameters()))
    # BN affine parameters and biases are decayed too (no exclusion group)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = [names[id(p)] for p in group["params"]]
    assert any(".bn1.weight" in n for n in decayed) and any(n.endswith(".bias") for n in decayed)
    assert scheduler["interval"] == "epoch"
    assert isinstance(scheduler["scheduler"], torch.optim.lr_scheduler.LambdaLR)


def _lr_by_epoch(model: Segmentation, max_epochs: int) -> list[float]:
    optimizer, scheduler = _optimizer(model, max_epochs)
    scheduler = scheduler["scheduler"]
    rates = []
    for _ in range(max_epochs):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()  # no gradients: nothing changes, but the scheduler sees the usual order
        scheduler.step()
    return rates


@pytest.mark.parametrize("lr, scale", [(0.01, 1.0), (0.005, 0.5)])
def test_poly_schedule_reference_numbers(lr, scale):
    rates = _lr_by_epoch(_model(lr=lr), 1000)
    # docs/reference.md#optimisation: lr_e = lr_0 (1 - e / 1000)^0.9; fine-tuning (0.005) halves every epoch's rate.
    golden = {0: 0.01, 1: 0.009991, 500: 0.0053589, 999: 1.9953e-5}
    for epoch, value in golden.items():
        assert rates[epoch] == pytest.approx(scale * value, rel=1e-4), epoch
    for epoch in (0, 1, 250, 500, 999):
        assert rates[epoch] == pytest.approx(lr * (1 - epoch / 1000) ** 0.9, rel=1e-9)
    assert all(a > b > 0 for a, b in zip(rates, rates[1:], strict=False))  # monotone, never 0 within the run


def test_poly_schedule_follows_max_epochs_and_power():
    rates = _lr_by_epoch(_model(lr=0.02, poly_power=2.0), 4)
    assert rates == pytest.approx([0.02, 0.02 * 0.75**2, 0.02 * 0.5**2, 0.02 * 0.25**2])


@pytest.mark.parametrize("max_epochs", [None, -1, 0])
def test_poly_schedule_needs_finite_max_epochs(max_epochs):
    # Trainer(max_steps=...) or Trainer(max_time=...) leaves max_epochs at -1: the decay would reach lr 0
    # after the first epoch and train silently at lr 0 from then on.
    with pytest.raises(ValueError, match="finite trainer.max_epochs"):
        _optimizer(_model(), max_epochs)


def test_fit_by_max_steps_is_refused(prepared_tiny):
    trainer = _trainer(max_epochs=None, max_steps=5, limit_val_batches=0)
    with pytest.raises(ValueError, match="finite trainer.max_epochs"):
        trainer.fit(_model(), datamodule=_data(prepared_tiny))


def test_bad_hyperparameters_fail():
    for kwargs in ({"lr": 0.0}, {"momentum": 1.0}, {"weight_decay": -1.0}, {"freeze_encoder_epochs": -1}):
        with pytest.raises(ValueError):
            _model(**kwargs)


# -- training --------------------------------------------------------------------------------------


class _Recorder(L.Callback):
    """Per epoch: learning rate, whether the encoder trains, and snapshots of the network."""

    def __init__(self) -> None:
        self.lr: list[float] = []
        self.encoder_grad: list[set[bool]] = []
        self.start: list[dict] = []
        self.end: list[dict] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if batch_idx == 0:  # after the module's on_train_epoch_start, before the first step
            self.lr.append(trainer.optimizers[0].param_groups[0]["lr"])
            self.encoder_grad.append({p.requires_grad for p in module.net.encoder.parameters()})
            self.start.append({k: v.detach().clone() for k, v in module.net.state_dict().items()})

    def on_train_epoch_end(self, trainer, module) -> None:
        self.end.append({k: v.detach().clone() for k, v in module.net.state_dict().items()})


def test_fit_runs_with_per_epoch_poly_schedule(prepared_tiny):
    torch.manual_seed(0)
    model, data, recorder = _model(), _data(prepared_tiny), _Recorder()
    trainer = _trainer(max_epochs=3, callbacks=[recorder])
    trainer.fit(model, datamodule=data)
    steps = len(data.datasets["train"]) // 4  # the last incomplete batch is dropped
    assert steps > 10 and trainer.current_epoch == 3 and trainer.global_step == 3 * steps
    # LambdaLR stepped once per epoch over trainer.max_epochs (here 3)
    assert recorder.lr == pytest.approx([0.01, 0.01 * (2 / 3) ** 0.9, 0.01 * (1 / 3) ** 0.9])
    metrics = trainer.callback_metrics
    for key in ("train/loss", "train/ce", "train/dice_loss", "val/loss", "val/dice", "val/dice_LV", "val/dice_MYO",
                "val/dice_RV"):
        assert key in metrics and math.isfinite(float(metrics[key])), key
    assert 0.0 <= float(metrics["val/dice"]) <= 1.0
    mean = (metrics["val/dice_LV"] + metrics["val/dice_MYO"] + metrics["val/dice_RV"]) / 3
    assert float(metrics["val/dice"]) == pytest.approx(float(mean), abs=1e-5)
    assert recorder.encoder_grad == [{True}] * 3  # nothing frozen without init_from
    for key, value in model.net.state_dict().items():
        assert torch.isfinite(value.float()).all(), key


def test_loss_decreases_when_overfitting_one_batch(prepared_tiny):
    data = _data(prepared_tiny)
    data.setup("fit")
    batch = data.resample(next(iter(data.train_dataloader())))  # fixed, unaugmented
    assert batch[K.IMAGE].shape == (4, 1, 32, 32) and batch[K.LABEL].shape == (4, 4, 32, 32)
    torch.manual_seed(0)
    model = _model()
    model.train()
    optimizer, _ = _optimizer(model, 1000)
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        loss = model.loss(model(batch[K.IMAGE]), batch[K.LABEL]).total
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    # The reference optimiser (lr 0.01, Nesterov 0.99) brings the loss to 0.58-0.65 of its start (seeds 0-4).
    assert losses[-1] < 0.75 * losses[0], losses
    assert sum(losses[-5:]) < sum(losses[5:10]) < sum(losses[:5]), losses


# -- frozen encoder ----------------------------------------------------------------------------


def _backbone_file(tmp_path: Path) -> str:
    torch.manual_seed(1)
    source = _model()
    path = tmp_path / "backbone.pt"
    torch.save({k: v for k, v in source.net.state_dict().items() if k.startswith(("encoder.", "decoder."))}, path)
    return str(path)


def test_freeze_encoder_epochs_switch_requires_grad(tmp_path):
    model = _model(init_from=_backbone_file(tmp_path), freeze_encoder_epochs=2)
    flags = []
    for epoch in range(4):
        model.trainer = SimpleNamespace(current_epoch=epoch)
        model.on_train_epoch_start()
        flags.append({p.requires_grad for p in model.net.encoder.parameters()})
        assert all(p.requires_grad for p in model.net.decoder.parameters())
        assert all(p.requires_grad for p in model.net.heads.parameters())
    assert flags == [{False}, {False}, {True}, {True}]
    # Without pretrained weights there is nothing to keep: freeze_encoder_epochs is ignored.
    plain = _model(freeze_encoder_epochs=2)
    plain.trainer = SimpleNamespace(current_epoch=0)
    plain.on_train_epoch_start()
    assert all(p.requires_grad for p in plain.net.encoder.parameters())


def test_frozen_encoder_epochs_in_training(prepared_tiny, tmp_path):
    torch.manual_seed(0)
    model = _model(init_from=_backbone_file(tmp_path), freeze_encoder_epochs=2, lr=0.005)
    recorder = _Recorder()
    trainer = _trainer(max_epochs=3, limit_train_batches=3, limit_val_batches=0, callbacks=[recorder])
    trainer.fit(model, datamodule=_data(prepared_tiny))
    assert recorder.encoder_grad == [{False}, {False}, {True}]

    def changed(epoch: int, prefix: str, suffixes: tuple[str, ...]) -> list[bool]:
        start, end = recorder.start[epoch], recorder.end[epoch]
        return [not torch.equal(start[k], end[k]) for k in start if k.startswith(prefix) and k.endswith(suffixes)]

    params = ("weight", "bias")
    for epoch in (0, 1):
        assert not any(changed(epoch, "encoder.", params)), epoch  # frozen: weights and biases exactly kept
        assert all(changed(epoch, "encoder.", ("running_mean", "running_var", "num_batches_tracked")))  # BN stats
        assert all(changed(epoch, "decoder.", params)) and all(changed(epoch, "heads.", params))
    assert all(changed(2, "encoder.", params))  # trained once unfrozen


# -- test: whole volumes in native space --------------------------------------------------------


def _expected_volumes(data: CineDataModule) -> set[tuple[str, str, str]]:
    table = data.prepared.subjects
    return {(str(table["dataset"].iloc[i]), str(table["SubjectID"].iloc[i]), phase)
            for i, phase in data.volume_items("test")}


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"subject": str, "dataset": str})


def test_test_writes_native_space_results(prepared_tiny, tmp_path):
    out = tmp_path / "results"
    torch.manual_seed(0)
    model, data = _model(results_dir=str(out)), _data(prepared_tiny)
    logged = _trainer().test(model, datamodule=data, verbose=False)[0]

    for name in ("volumes.csv", "clinical.csv", "slices.csv", "summary.txt", "dice_by_position.png",
                 "summary_overall.csv", "summary_by_phase.csv", "summary_by_vendor.csv", "summary_by_pathology.csv",
                 "summary_clinical.csv"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name

    volumes = _read(out / "volumes.csv")
    keys = list(zip(volumes["dataset"], volumes["subject"], volumes["phase"], strict=True))
    expected = _expected_volumes(data)
    assert len(expected) == 10  # 5 test subjects x (ED, ES)
    assert len(keys) == len(set(keys)) == len(expected) and set(keys) == expected
    clinical = _read(out / "clinical.csv")
    assert sorted(clinical["subject"]) == sorted({s for _, s, _ in expected})
    slices = _read(out / "slices.csv")
    n_slices = {(s, p): n for (s, p), n in slices.groupby(["subject", "phase"]).size().items()}
    assert n_slices == {(s, p): int(data.prepared.subjects["n_slices"].iloc[i])
                        for i, p in data.volume_items("test")
                        for s in [str(data.prepared.subjects["SubjectID"].iloc[i])]}

    assert logged["test/dice_mean"] == pytest.approx(volumes["dice_mean"].mean(), abs=1e-6)
    for c in ("LV", "MYO", "RV"):
        assert logged[f"test/dice_{c}"] == pytest.approx(volumes[f"dice_{c}"].mean(), abs=1e-6)
    assert volumes["dice_mean"].between(0, 1).all()
    assert volumes["dice_mean"].to_numpy() == pytest.approx(
        volumes[["dice_LV", "dice_MYO", "dice_RV"]].mean(axis=1).to_numpy(), abs=1e-6)
    assert "Dice LV" in (out / "summary.txt").read_text()


class _Oracle(Segmentation):
    """Predicts the resampled ground truth (as logits), so the test path's geometry alone decides the Dice."""

    def on_test_batch_start(self, batch, batch_idx, dataloader_idx=0) -> None:
        self._truth = batch[K.LABEL]

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        assert image.shape[-2:] == self._truth.shape[-2:]
        return [10 * self._truth]


def test_test_of_perfect_predictions_scores_near_one(prepared_tiny, tmp_path):
    """docs/reference.md#evaluation-procedure end to end: a 128 px x 2 mm grid (256 mm, covering every native field of
    view) and back."""
    out = tmp_path / "results"
    model = _Oracle(channels=TINY, output_size=128, output_spacing=2.0, log_images=False, results_dir=str(out))
    data = _data(prepared_tiny, output_size=128, output_spacing=2.0)
    logged = _trainer().test(model, datamodule=data, verbose=False)[0]
    volumes = _read(out / "volumes.csv")
    assert len(volumes) == 10
    for c in ("LV", "MYO", "RV"):
        assert volumes[f"dice_{c}"].min() > 0.98, c
        assert volumes[f"hd95_{c}"].max() < 3.0, c  # at most about a native pixel (2.5-3.2 mm)
    assert logged["test/dice_mean"] > 0.99
    clinical = _read(out / "clinical.csv")
    assert clinical["LV_EF_abserr"].max() < 2.0  # percentage points


def test_test_needs_whole_volumes():
    model = _model()
    batch = {K.IMAGE: torch.zeros(2, 1, 32, 32), K.LABEL: torch.zeros(2, 4, 32, 32)}
    with pytest.raises(ValueError, match="whole volumes"):
        model.test_step(batch, 0)
