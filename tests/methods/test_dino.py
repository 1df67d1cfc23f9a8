"""DINO specifics (docs/reference.md#dino-network, #dino-loss, #dino-schedules, #reference-numbers, #check-dino):
schedules, teacher initialisation and EMA, parameter groups, the frozen last layer in epoch 0 and the head's shape."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightly.models.utils import update_momentum

from sspcmr.data.datamodule import CineDataModule
from sspcmr.methods import DINO
from sspcmr.methods.schedules import dino_cosine_schedule

TINY = [8, 16, 32, 64]
GRID = {"output_size": 64, "output_spacing": 2.5}  # the models' output grid: the data module's
SMALL_HEAD = {"hidden_dim": 32, "bottleneck_dim": 16, "output_dim": 64}


def test_learning_rate_schedule_reference_numbers():
    lr = dino_cosine_schedule(0.0075, 1e-6, epochs=100, iterations_per_epoch=1415, warmup_epochs=10)
    assert len(lr) == 141_500
    assert lr[0] == 0.0
    assert lr[14_149] == pytest.approx(0.0075, abs=1e-12)  # the warmup's last step reaches the peak
    assert lr[14_150] == pytest.approx(0.0075, abs=1e-12)  # the cosine starts at the peak
    assert lr[-1] == pytest.approx(1.0e-6, abs=1e-9)
    assert lr[7_075] == pytest.approx(0.0075 * 7_075 / 14_149)  # linear warmup
    assert bool((lr[14_150:].diff() <= 0).all())


def test_momentum_and_weight_decay_schedules():
    momentum = dino_cosine_schedule(0.996, 1.0, 100, 1415)
    assert momentum[0] == pytest.approx(0.996) and momentum[-1] == pytest.approx(1.0, abs=1e-9)
    middle = len(momentum) // 2
    assert momentum[middle] == pytest.approx(0.998, abs=1e-6)
    decay = dino_cosine_schedule(1e-4, 1e-4, 100, 1415)
    assert torch.allclose(decay, torch.full_like(decay, 1e-4))


def test_teacher_temperature_by_epoch():
    dino = DINO(channels=TINY, **SMALL_HEAD)  # lightly's DINOLoss warm-up: linspace(0.02, 0.04, 30), then 0.04
    assert dino.teacher_temperature_at(0) == pytest.approx(0.02)
    assert dino.teacher_temperature_at(1) == pytest.approx(0.020690, abs=1e-6)
    assert dino.teacher_temperature_at(29) == pytest.approx(0.04)
    assert dino.teacher_temperature_at(30) == dino.teacher_temperature_at(99) == pytest.approx(0.04)


def test_reference_head_shape_unit_norm_last_layer_and_no_hidden_biases():
    model = DINO().eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, 256, 256))
    assert out.shape == (2, 8192)
    weight = model.head.last_layer.weight
    assert torch.allclose(weight.norm(dim=1), torch.ones(8192), atol=1e-5)  # logits are cosine similarities
    assert model.head.last_layer.weight_g.requires_grad is False
    # lightly's DINOProjectionHead drops the hidden Linear biases (BatchNorm follows them); the reference's head keeps
    # them: 2 x hidden_dim = 4,096 parameters more, 22,044,000 instead of 22,039,904 for the student
    # (docs/methods/dino.md). No effect on what the network can represent: BatchNorm removes any constant shift.
    linears = [m for m in model.head.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features, m.bias is not None) for m in linears] == [
        (512, 2048, False), (2048, 2048, False), (2048, 256, True), (256, 8192, False)]
    assert sum(p.numel() for p in [*model.backbone.parameters(), *model.head.parameters()]) == 22_039_904


def test_teacher_starts_as_the_student_by_default_and_separate_on_request():
    torch.manual_seed(0)
    copied = DINO(channels=TINY, **GRID, **SMALL_HEAD)
    for (name, student), teacher in zip(copied.backbone.state_dict().items(),
                                        copied.teacher_backbone.state_dict().values(), strict=True):
        assert torch.equal(student, teacher), name
    separate = DINO(channels=TINY, **GRID, teacher_init="separate", **SMALL_HEAD)
    first = "encoder.enc_blocks.0.conv1.weight"
    assert not torch.equal(separate.backbone.state_dict()[first], separate.teacher_backbone.state_dict()[first])
    assert not any(p.requires_grad for p in separate.teacher_backbone.parameters())
    assert not any(p.requires_grad for p in separate.teacher_head.parameters())


def test_ema_with_momentum_one_leaves_the_teacher_and_zero_copies():
    model = DINO(channels=TINY, **GRID, teacher_init="separate", **SMALL_HEAD)
    before = {k: v.clone() for k, v in model.teacher_backbone.state_dict().items()}
    update_momentum(model.backbone, model.teacher_backbone, 1.0)
    assert all(torch.equal(v, before[k]) for k, v in model.teacher_backbone.state_dict().items())
    update_momentum(model.backbone, model.teacher_backbone, 0.0)
    key = "encoder.enc_blocks.0.conv1.weight"
    assert torch.equal(model.teacher_backbone.state_dict()[key], model.backbone.state_dict()[key])


def test_parameter_groups_decay_weights_only():
    model = DINO(channels=TINY, **GRID, **SMALL_HEAD)
    optimizer = model.configure_optimizers()
    decay, no_decay = optimizer.param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(p.ndim > 1 and not names[id(p)].endswith(".bias") for p in decay["params"])
    assert all(p.ndim == 1 or names[id(p)].endswith(".bias") for p in no_decay["params"])
    assert no_decay["weight_decay"] == 0.0
    grouped = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert id(model.head.last_layer.weight_g) not in grouped  # the fixed norm
    assert not any(names[i].startswith("teacher_") for i in grouped)
    assert grouped == {id(p) for p in model.parameters() if p.requires_grad}


def _fit(model: DINO, prepared_tiny, tmp_path, epochs: int, callbacks=()) -> L.Trainer:
    root, split = prepared_tiny
    module = CineDataModule(str(root), str(split), mode="pretrain", batch_size=4, num_workers=0,
                            output_size=64, output_spacing=2.5)
    fit = L.Trainer(accelerator="cpu", devices=1, max_epochs=epochs, limit_train_batches=2, limit_val_batches=1,
                    logger=False, enable_checkpointing=False, enable_progress_bar=False,
                    enable_model_summary=False, num_sanity_val_steps=0, callbacks=list(callbacks))
    fit.fit(model, datamodule=module)
    return fit


def test_training_follows_the_step_schedules_and_freezes_the_last_layer_in_epoch_zero(prepared_tiny, tmp_path):
    torch.manual_seed(0)
    model = DINO(channels=TINY, **GRID, warmup_epochs=1, **SMALL_HEAD)
    seen = []

    class Watch(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            group = trainer.optimizers[0].param_groups[0]
            seen.append((trainer.current_epoch, group["lr"], module.head.last_layer.weight_v.detach().clone(),
                         {k: v.clone() for k, v in module.teacher_backbone.state_dict().items()}))

    initial_last = model.head.last_layer.weight_v.detach().clone()
    initial_teacher = {k: v.clone() for k, v in model.teacher_backbone.state_dict().items()}
    _fit(model, prepared_tiny, tmp_path, epochs=2, callbacks=[Watch()])
    expected = dino_cosine_schedule(0.0075, 1e-6, 2, 2, 1)
    assert [round(lr, 12) for _, lr, _, _ in seen] == [round(float(v), 12) for v in expected]
    epoch0 = [last for epoch, _, last, _ in seen if epoch == 0]
    epoch1 = [last for epoch, _, last, _ in seen if epoch == 1]
    assert all(torch.equal(last, initial_last) for last in epoch0)  # no update during epoch 0
    assert not torch.equal(epoch1[-1], initial_last)  # updated afterwards
    # The teacher moved by EMA after the steps (momentum < 1) ...
    key = "encoder.enc_blocks.0.conv1.weight"
    assert not torch.equal(seen[-1][3][key], initial_teacher[key])
    # ... but not its BN statistics by averaging: teacher buffers follow its own forward passes only.
    assert torch.isfinite(model.criterion.center).all() and model.criterion.center.abs().sum() > 0


def test_initial_loss_with_uniform_outputs_is_log_output_dim():
    model = DINO(channels=TINY, **GRID, **SMALL_HEAD)
    zeros = [torch.zeros(3, 64) for _ in range(2)]
    loss = model.criterion(zeros, zeros + [torch.zeros(3, 64)] * 6, teacher_temp=0.02)
    assert float(loss) == pytest.approx(torch.log(torch.tensor(64.0)).item(), abs=1e-5)
