"""Two-stage fine-tuning (Dominic et al. 2.5): transferred weights frozen (statistics included) for a first
stage at its own learning rate, then everything trained with a restarted poly schedule."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch

from sspcmr.data.datamodule import CineDataModule
from sspcmr.methods.segmentation import Segmentation

TINY = [8, 16, 32]
GRID = {"output_size": 32}  # the models' output grid: the data module's


def _source(tmp_path: Path) -> str:
    torch.manual_seed(1)
    source = Segmentation(channels=TINY, **GRID, log_images=False)
    path = tmp_path / "backbone.pt"
    torch.save({k: v for k, v in source.net.state_dict().items() if k.startswith(("encoder.", "decoder."))}, path)
    return str(path)


class _States(L.Callback):
    """State dicts at the start and end of every training epoch, and each epoch's learning rate."""

    def __init__(self) -> None:
        self.start, self.end, self.lr = [], [], []

    def on_train_epoch_start(self, trainer, module):
        self.start.append({k: v.clone() for k, v in module.net.state_dict().items()})
        self.lr.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_epoch_end(self, trainer, module):
        self.end.append({k: v.clone() for k, v in module.net.state_dict().items()})


@pytest.mark.parametrize("transfer", ["encoder", "encoder+decoder"])
def test_frozen_stage_keeps_the_transferred_weights_then_trains_them(prepared_tiny, tmp_path, transfer):
    root, split = prepared_tiny
    model = Segmentation(channels=TINY, **GRID, log_images=False, init_from=_source(tmp_path), transfer=transfer,
                         lr=0.01, two_stage_epochs=2, two_stage_lr=0.002)
    states = _States()
    trainer = L.Trainer(max_epochs=3, limit_train_batches=3, limit_val_batches=1, num_sanity_val_steps=0,
                        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[states])
    data = CineDataModule(str(root), str(split), mode="segment", output_size=32, batch_size=4, num_workers=0)
    trainer.fit(model, datamodule=data)
    frozen = ("encoder.", "decoder.") if transfer == "encoder+decoder" else ("encoder.",)

    def changed(epoch: int, prefix: tuple[str, ...]) -> list[bool]:
        start, end = states.start[epoch], states.end[epoch]
        return [not torch.equal(start[k], end[k]) for k in start if k.startswith(prefix)
                and not k.endswith("num_batches_tracked")]

    for epoch in (0, 1):  # the frozen stage, across a validation in between: nothing transferred moves
        assert not any(changed(epoch, frozen)), epoch
        assert all(changed(epoch, ("heads.",)))
    assert all(changed(2, frozen))  # everything trains in the second stage
    assert states.lr[0] == pytest.approx(0.002)  # the first stage's own rate ...
    assert states.lr[1] == pytest.approx(0.002 * 0.5 ** 0.9)  # ... with its own poly decay
    assert states.lr[2] == pytest.approx(0.01)  # the schedule restarts at lr for the second stage


def test_two_stage_schedule_factors_and_refusals(tmp_path):
    model = Segmentation(channels=TINY, **GRID, log_images=False, init_from=_source(tmp_path), lr=0.01,
                         two_stage_epochs=4)
    model.trainer = SimpleNamespace(max_epochs=10)
    schedule = model.configure_optimizers()["lr_scheduler"]["scheduler"]
    factors = [schedule.lr_lambdas[0](e) for e in range(10)]
    assert factors[:4] == pytest.approx([(1 - e / 4) ** 0.9 for e in range(4)])  # two_stage_lr None: lr
    assert factors[4:] == pytest.approx([(1 - e / 6) ** 0.9 for e in range(6)])
    with pytest.raises(ValueError, match="needs init_from"):
        Segmentation(channels=TINY, **GRID, two_stage_epochs=2)
    with pytest.raises(ValueError, match="excludes"):
        Segmentation(channels=TINY, **GRID, init_from=_source(tmp_path), two_stage_epochs=2, freeze_encoder_epochs=1)
    model.trainer = SimpleNamespace(max_epochs=4)
    with pytest.raises(ValueError, match="no epoch of the second stage"):
        model.configure_optimizers()
