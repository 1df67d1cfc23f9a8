"""DiceCELoss against hand-computed values, a naive loop reference and MONAI
(docs/reference.md#segmentation-loss, #check-losses)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss as MonaiDiceCELoss
from monai.losses import DiceLoss as MonaiDiceLoss

from sspcmr.losses import DiceCELoss, SegmentationLossOutput
from tests.losses.autocast import assert_float32_under_autocast

SMOOTH = 1e-5


def quadrant_target() -> torch.Tensor:
    """(1, 4, 4, 4) one-hot label with class k filling the k-th 2x2 quadrant of a 4x4 slice."""
    labels = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])
    return F.one_hot(labels, 4).permute(2, 0, 1)[None].double()


def random_case(b: int = 3, c: int = 4, h: int = 6, w: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 logits and one-hot targets; class 2 is absent from sample 0 to exercise the smooth term."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, c, h, w, generator=g, dtype=torch.float64) * 2
    labels = torch.randint(0, c, (b, h, w), generator=g)
    labels[0][labels[0] == 2] = 1
    return logits, F.one_hot(labels, c).permute(0, 3, 1, 2).double()


def naive_dice_ce(logits: torch.Tensor, target: torch.Tensor, weights: list[float], smooth: float = SMOOTH) -> tuple:
    """docs/reference.md#segmentation-loss written out with Python loops over samples, classes and pixels: (total, ce,
    dice)."""
    b, c, h, w = logits.shape
    ce_sum, dice_sum = 0.0, 0.0
    norm = sum(weights)
    for s in range(b):
        for y in range(h):
            for x in range(w):
                z = [float(logits[s, k, y, x]) for k in range(c)]
                log_norm = math.log(sum(math.exp(v) for v in z))
                ce_sum -= sum(float(target[s, k, y, x]) * (z[k] - log_norm) for k in range(c))
        for k in range(c):
            inter = pred = gt = 0.0
            for y in range(h):
                for x in range(w):
                    z = [float(logits[s, j, y, x]) for j in range(c)]
                    p = math.exp(z[k]) / sum(math.exp(v) for v in z)
                    t = float(target[s, k, y, x])
                    inter, pred, gt = inter + p * t, pred + p, gt + t
            dice_sum += weights[k] / norm * (1 - (2 * inter + smooth) / (pred + gt + smooth))
    ce, dice = ce_sum / (b * h * w), dice_sum / b
    return 0.5 * ce + 0.5 * dice, ce, dice


def test_zero_logits_on_quadrants_hand_computed() -> None:
    # p = 1/4 everywhere: CE = ln 4; per foreground class I = 4/4 = 1, P = 16/4 = 4, G = 4.
    out = DiceCELoss()(torch.zeros(1, 4, 4, 4, dtype=torch.float64), quadrant_target())
    assert isinstance(out, SegmentationLossOutput)
    dice = 1 - (2 * 1 + SMOOTH) / (4 + 4 + SMOOTH)
    assert out.ce.item() == pytest.approx(math.log(4), rel=1e-12)
    assert out.dice.item() == pytest.approx(dice, rel=1e-12)
    assert out.total.item() == pytest.approx(0.5 * math.log(4) + 0.5 * dice, rel=1e-12)
    assert torch.stack(out).shape == (3,)  # the reference's [total, CE, Dice] vector


def test_confident_correct_logits_give_zero_loss() -> None:
    target = quadrant_target().repeat(2, 1, 1, 1)
    out = DiceCELoss()(40 * target - 20, target)  # +20 on the true class, -20 elsewhere
    assert out.ce.item() < 1e-15
    assert out.dice.item() < 1e-12
    assert out.total.item() < 1e-12


def test_confident_wrong_logits_give_full_dice_loss() -> None:
    target = quadrant_target()
    wrong = target.roll(1, dims=1)  # every pixel predicts the next class
    out = DiceCELoss()(40 * wrong - 20, target)
    assert out.ce.item() == pytest.approx(40.0, rel=1e-9)
    # I = 0, P = G = 4 for each foreground class: dice = smooth / (8 + smooth), not exactly 0.
    assert out.dice.item() == pytest.approx(1 - SMOOTH / (8 + SMOOTH), rel=1e-12)


def test_matches_naive_loop_reference() -> None:
    logits, target = random_case()
    out = DiceCELoss()(logits, target)
    expected = naive_dice_ce(logits, target, [0, 1, 1, 1])
    torch.testing.assert_close(torch.stack(out), torch.tensor(expected, dtype=torch.float64), rtol=1e-10, atol=0)


def test_class_weights_and_background_match_naive_reference() -> None:
    logits, target = random_case(seed=1)
    out = DiceCELoss(class_weights=[5.0, 1.0, 2.0, 3.0])(logits, target)  # background weight ignored
    torch.testing.assert_close(out.dice, torch.tensor(naive_dice_ce(logits, target, [0, 1, 2, 3])[2]).double())
    out = DiceCELoss(include_background=True)(logits, target)
    torch.testing.assert_close(out.dice, torch.tensor(naive_dice_ce(logits, target, [1, 1, 1, 1])[2]).double())


def test_per_slice_differs_from_batch_dice() -> None:
    logits, target = random_case(seed=2)
    per_slice, batch = DiceCELoss()(logits, target), DiceCELoss(batch_dice=True)(logits, target)
    torch.testing.assert_close(per_slice.ce, batch.ce)
    assert abs(per_slice.dice.item() - batch.dice.item()) > 1e-3
    # Batch Dice is the Dice of the batch seen as one big slice.
    glued = DiceCELoss()(torch.cat(list(logits), -1)[None], torch.cat(list(target), -1)[None])
    torch.testing.assert_close(batch.dice, glued.dice)


@pytest.mark.parametrize("mass, expected", [(1e-2, 1 - 1e-3), (1e-5, 0.5), (1e-9, 1e-4)])
def test_absent_class_dice_term(mass: float, expected: float) -> None:
    # Class 1 absent from the slice and given total predicted mass P: dice = smooth / (P + smooth).
    target = torch.zeros(1, 2, 4, 4, dtype=torch.float64)
    target[:, 0] = 1.0
    p1 = torch.full((4, 4), mass / 16, dtype=torch.float64)
    logits = torch.stack([torch.zeros_like(p1), torch.log(p1 / (1 - p1))])[None]  # softmax gives p1 exactly
    out = DiceCELoss()(logits, target)
    assert out.dice.item() == pytest.approx(1 - SMOOTH / (mass + SMOOTH), rel=1e-9)
    assert out.dice.item() == pytest.approx(expected, rel=1e-3)


def test_absent_class_batch_dice_is_not_penalised() -> None:
    # Class 1 absent from slice 0 only: per-slice Dice charges slice 0 in full, batch Dice does not.
    target = quadrant_target().repeat(2, 1, 1, 1)
    target[0, 0] += target[0, 1]
    target[0, 1] = 0.0
    logits = 20 * target - 10
    logits[0, 1] = 10 + math.log(0.01 / 16)  # total class-1 mass ≈ 0.01 on slice 0, where class 1 is absent
    per_slice = DiceCELoss(class_weights=[0, 1, 0, 0])(logits, target).dice.item()
    batch = DiceCELoss(class_weights=[0, 1, 0, 0], batch_dice=True)(logits, target).dice.item()
    assert per_slice == pytest.approx(0.5 * (1 - SMOOTH / (0.01 + SMOOTH)), rel=1e-3)  # (≈1 + ≈0) / 2
    assert batch == pytest.approx(0.01 / 8.01, rel=1e-2)  # 1 − 2·4 / (4.01 + 4)


@pytest.mark.parametrize("batch", [False, True])
def test_matches_monai_dice_ce(batch: bool) -> None:
    # MONAI 1.6 DiceCELoss with uniform foreground weights: same Dice definition (2tp+fp+fn = P+G, mean over
    # B x C' pairs) and its CE passes one-hot float targets to nn.CrossEntropyLoss as probabilities.
    logits, target = random_case(b=4, c=4, h=8, w=8, seed=3)
    monai = MonaiDiceCELoss(
        include_background=False, softmax=True, smooth_nr=SMOOTH, smooth_dr=SMOOTH, batch=batch,
        lambda_dice=0.5, lambda_ce=0.5,
    )  # fmt: skip
    ours = DiceCELoss(batch_dice=batch)(logits, target)
    torch.testing.assert_close(ours.total, monai(logits, target), rtol=1e-12, atol=0)
    torch.testing.assert_close(ours.ce, monai.ce(logits, target), rtol=1e-12, atol=0)
    torch.testing.assert_close(ours.dice, monai.dice(logits, target), rtol=1e-12, atol=0)


def test_monai_ce_uses_soft_targets_as_probabilities() -> None:
    # Documented behaviour of MONAI 1.6: a float C-channel target is not argmax-ed, so soft targets agree too.
    logits, target = random_case(seed=4)
    soft = torch.softmax(3 * target + torch.rand_like(target), dim=1)
    monai = MonaiDiceCELoss(include_background=False, softmax=True)
    torch.testing.assert_close(DiceCELoss()(logits, soft).ce, monai.ce(logits, soft))
    assert abs(monai.ce(logits, soft).item() - F.cross_entropy(logits, soft.argmax(1)).item()) > 1e-3


def test_monai_weighted_dice_differs_by_normalisation() -> None:
    # MONAI multiplies by the weights and then takes the plain mean over B x C', we normalise the weights.
    logits, target = random_case(seed=5)
    fg_weights = [1.0, 2.0, 5.0]
    ours = DiceCELoss(class_weights=[0.0, *fg_weights])(logits, target).dice
    monai = MonaiDiceLoss(include_background=False, softmax=True, weight=fg_weights)(logits, target)
    torch.testing.assert_close(monai, ours * sum(fg_weights) / len(fg_weights))
    assert abs(monai.item() - ours.item()) > 1e-2


def test_gradients_and_float32() -> None:
    logits, target = random_case(seed=6)
    logits = logits.float().requires_grad_()
    out = DiceCELoss()(logits, target.float())
    assert out.total.dtype == torch.float32 and out.total.ndim == 0
    out.total.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


@pytest.mark.parametrize("batch_dice", [False, True])
def test_float32_under_autocast(batch_dice: bool) -> None:
    logits, target = random_case(b=4, h=16, w=16, seed=8)
    loss = DiceCELoss(batch_dice=batch_dice, class_weights=[0.0, 1.0, 2.0, 1.0])
    assert_float32_under_autocast(lambda z, y: torch.stack(loss(z, y)), logits * 4, target)


def test_total_uses_component_weights() -> None:
    logits, target = random_case(seed=7)
    out = DiceCELoss(ce_weight=0.2, dice_weight=3.0)(logits, target)
    torch.testing.assert_close(out.total, 0.2 * out.ce + 3.0 * out.dice)


def test_invalid_arguments_raise() -> None:
    with pytest.raises(ValueError, match="ce_weight"):
        DiceCELoss(ce_weight=-1.0)
    with pytest.raises(ValueError, match="smooth"):
        DiceCELoss(smooth=-1e-5)
    with pytest.raises(ValueError, match="class_weights"):
        DiceCELoss(class_weights=[1.0, -1.0])
    with pytest.raises(ValueError, match="no positive"):
        DiceCELoss(class_weights=[1.0, 0.0, 0.0])
    logits, target = random_case()
    with pytest.raises(ValueError, match="4 classes"):
        DiceCELoss(class_weights=[0, 1, 1])(logits, target)
    with pytest.raises(ValueError, match="equal shapes"):
        DiceCELoss()(logits, target[:, :3])
