"""lightly's DINOLoss, as the DINO method configures it, against a naive reference from the formula; the method's
call of it in float32 under autocast."""

from __future__ import annotations

import math

import pytest
import torch
from lightly.loss import DINOLoss

from sspcmr.methods import DINO
from tests.losses.autocast import assert_float32_under_autocast

STUDENT_TEMP = 0.1
NUM_VIEWS = 8  # 2 global + 6 local crops


def dino_loss(output_dim: int) -> DINOLoss:
    return DINOLoss(output_dim=output_dim, warmup_teacher_temp=0.02, teacher_temp=0.04,
                    warmup_teacher_temp_epochs=30, student_temp=STUDENT_TEMP, center_momentum=0.9)


def dino_reference(teacher: list[torch.Tensor], student: list[torch.Tensor], center: torch.Tensor,
                   teacher_temp: float) -> float:
    """Mean over the (teacher view a, student view v ≠ a) pairs of mean_b[−Σ_k q_ak log softmax(s_v / τ_s)_k]."""
    total, pairs = 0.0, 0
    for a, t in enumerate(teacher):
        q = torch.softmax((t.double() - center.double()) / teacher_temp, dim=-1)
        for v, s in enumerate(student):
            if v == a:
                continue
            log_p = torch.log_softmax(s.double() / STUDENT_TEMP, dim=-1)
            total += float((-(q * log_p).sum(dim=-1)).mean())
            pairs += 1
    return total / pairs


def random_views(batch: int, dim: int, seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    teacher = [torch.randn(batch, dim, generator=generator) * 0.05 for _ in range(2)]
    student = [torch.randn(batch, dim, generator=generator) for _ in range(NUM_VIEWS)]
    return teacher, student


def test_reference_counts_14_pairs_for_8_views() -> None:
    # Teacher rows all one-hot on class 0 (τ_t → sharp), student uniform except view 7 which is sure of class 1:
    # each pair scores −log softmax(s_v)_0, which is log(K) for uniform views and larger for view 7.
    dim = 4
    teacher = [torch.tensor([[100.0, 0.0, 0.0, 0.0]]) for _ in range(2)]
    student = [torch.zeros(1, dim) for _ in range(NUM_VIEWS)]
    student[7] = torch.tensor([[0.0, 1.0, 0.0, 0.0]])  # logits /0.1 -> [0, 10, 0, 0]
    odd = -math.log(1 / (3 + math.exp(10)))
    expected = (12 * math.log(dim) + 2 * odd) / 14
    assert dino_reference(teacher, student, torch.zeros(1, 1, dim), 0.04) == pytest.approx(expected, rel=1e-9)
    assert dino_loss(dim)(teacher, student).item() == pytest.approx(expected, rel=1e-5)


def test_uniform_logits_give_log_output_dim() -> None:
    teacher = [torch.zeros(4, 8192) for _ in range(2)]
    student = [torch.zeros(4, 8192) for _ in range(NUM_VIEWS)]
    loss = dino_loss(8192)(teacher, student)
    # float32 sums over 8192 classes are off by ~2e-4; in float64 the value is exact.
    assert loss.item() == pytest.approx(9.0109, abs=5e-4)
    exact = dino_loss(8192)([t.double() for t in teacher], [s.double() for s in student])
    assert exact.item() == pytest.approx(math.log(8192), rel=1e-12)


@pytest.mark.parametrize(("batch", "dim", "seed"), [(3, 64, 0), (8, 256, 1)])
def test_lightly_dino_loss_equals_naive_reference(batch: int, dim: int, seed: int) -> None:
    teacher, student = random_views(batch, dim, seed)
    loss = dino_loss(dim)(teacher, student)  # no epoch: the final teacher temperature 0.04
    expected = dino_reference(teacher, student, torch.zeros(1, 1, dim), 0.04)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_center_after_one_update_and_its_use() -> None:
    teacher, student = random_views(5, 32, seed=2)
    criterion = dino_loss(32)
    criterion(teacher, student)
    expected_center = 0.1 * torch.cat(teacher).mean(dim=0)  # from zeros: 0.9 · 0 + 0.1 · mean of the 2B rows
    assert criterion.center.shape == (1, 1, 32)
    torch.testing.assert_close(criterion.center[0, 0], expected_center, rtol=1e-5, atol=1e-7)
    # The second call centres the teacher with it.
    teacher2, student2 = random_views(5, 32, seed=3)
    center = criterion.center.clone()
    loss = criterion(teacher2, student2)
    assert loss.item() == pytest.approx(dino_reference(teacher2, student2, center, 0.04), rel=1e-5)


@pytest.mark.parametrize(("epoch", "teacher_temp"), [(0, 0.02), (1, 0.02 + 0.02 / 29), (15, 0.02 + 0.3 / 29),
                                                     (29, 0.04), (30, 0.04), (100, 0.04)])
def test_teacher_temperature_warms_up_linearly_over_30_epochs(epoch: int, teacher_temp: float) -> None:
    # Students that agree with the teacher make the loss sensitive to how sharp the teacher is.
    generator = torch.Generator().manual_seed(4)
    teacher = [torch.randn(4, 128, generator=generator) * 0.05 for _ in range(2)]
    student = [teacher[v % 2] * 4 + 0.05 * torch.randn(4, 128, generator=generator) for v in range(NUM_VIEWS)]
    loss = dino_loss(128)(teacher, student, epoch=epoch).item()  # a fresh loss: the centre is still zero
    center = torch.zeros(1, 1, 128)
    assert loss == pytest.approx(dino_reference(teacher, student, center, teacher_temp), abs=1e-5)
    # The check can fail: a temperature 2 % off (less than one warm-up step) changes the loss by > 0.01.
    assert abs(loss - dino_reference(teacher, student, center, teacher_temp * 1.02)) > 0.01


def test_epoch_1_temperature_golden() -> None:
    schedule = dino_loss(8).teacher_temp_schedule
    assert schedule.shape == (30,)
    assert schedule[1].item() == pytest.approx(0.020690, abs=1e-6)
    assert schedule[0].item() == pytest.approx(0.02) and schedule[29].item() == pytest.approx(0.04)


def test_the_method_computes_the_loss_in_float32_under_autocast() -> None:
    model = DINO(channels=[8, 16, 32, 64], hidden_dim=32, bottleneck_dim=16, output_dim=64, probe=False)
    teacher, student = random_views(4, 64, seed=5)

    def loss(*outputs: torch.Tensor) -> torch.Tensor:
        model.criterion.center.zero_()  # each call starts from the same centre
        return model.distillation_loss(list(outputs[:2]), list(outputs[2:]))

    value = assert_float32_under_autocast(loss, *teacher, *student)
    rounded = [t.bfloat16().double() for t in teacher], [s.bfloat16().double() for s in student]
    assert value.item() == pytest.approx(dino_reference(*rounded, torch.zeros(1, 1, 64), 0.02), rel=1e-5)
