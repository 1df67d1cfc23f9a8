"""DeepSupervisionLoss: weights, target downsampling and the weighted sum
(docs/reference.md#segmentation-loss, #reference-numbers, #check-deep-supervision)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sspcmr.losses import DeepSupervisionLoss, DiceCELoss, SegmentationLossOutput, deep_supervision_weights
from tests.losses.autocast import assert_float32_under_autocast

REFERENCE_WEIGHTS = [0.507937, 0.253968, 0.126984, 0.063492, 0.031746, 0.015873]  # docs/reference.md#reference-numbers


class ConstantLoss(nn.Module):
    """Returns fixed components whatever the head, and records the target sizes it was given."""

    def __init__(self, values: tuple[float, float, float]) -> None:
        super().__init__()
        self.values = values
        self.sizes: list[tuple[int, ...]] = []

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> SegmentationLossOutput:
        assert logits.shape == target.shape
        self.sizes.append(tuple(target.shape[2:]))
        return SegmentationLossOutput(*(torch.tensor(v, dtype=torch.float64) for v in self.values))


def one_hot(labels: torch.Tensor, num_classes: int = 4) -> torch.Tensor:
    """(B, H, W) integer labels -> (B, C, H, W) float one-hot."""
    return F.one_hot(labels, num_classes).permute(0, 3, 1, 2).float()


def pyramid(b: int = 2, c: int = 4, size: int = 32, n: int = 6, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, c, size >> i, size >> i, generator=g) for i in range(n)]


def test_reference_weights() -> None:
    weights = deep_supervision_weights(6)
    torch.testing.assert_close(weights, torch.tensor(REFERENCE_WEIGHTS, dtype=torch.float64), rtol=0, atol=5e-7)
    torch.testing.assert_close(weights, torch.tensor([32, 16, 8, 4, 2, 1], dtype=torch.float64) / 63)
    assert weights.sum().item() == pytest.approx(1.0, abs=1e-15)


def test_nnunet_weights_drop_lowest_head() -> None:
    weights = deep_supervision_weights(6, "nnunet")
    torch.testing.assert_close(weights, torch.tensor([32, 16, 8, 4, 2, 0], dtype=torch.float64) / 62)
    torch.testing.assert_close(deep_supervision_weights(2, "nnunet"), torch.tensor([1.0, 0.0], dtype=torch.float64))


@pytest.mark.parametrize("weighting", ["reference", "nnunet"])
def test_identical_per_scale_losses_give_that_loss(weighting: str) -> None:
    inner = ConstantLoss((1.25, 2.0, 0.5))
    out = DeepSupervisionLoss(inner, num_scales=6, weighting=weighting)(pyramid(size=64), torch.zeros(2, 4, 64, 64))
    assert isinstance(out, SegmentationLossOutput)
    torch.testing.assert_close(torch.stack(out), torch.tensor([1.25, 2.0, 0.5], dtype=torch.float64))
    assert inner.sizes == [(64 >> i, 64 >> i) for i in range(6)]


def test_equals_weighted_sum_of_per_head_dice_ce() -> None:
    g = torch.Generator().manual_seed(1)
    target = one_hot(torch.randint(0, 4, (2, 32, 32), generator=g))
    outputs = pyramid(size=32)
    out = DeepSupervisionLoss(DiceCELoss(), num_scales=6)(outputs, target)
    expected = torch.zeros(3)
    for i, (logits, weight) in enumerate(zip(outputs, REFERENCE_WEIGHTS, strict=True)):
        step = 1 << i  # nearest-exact keeps index step // 2 of every block of `step` pixels
        head_target = target[:, :, step // 2 :: step, step // 2 :: step]
        expected += weight * torch.stack(DiceCELoss()(logits, head_target))
    torch.testing.assert_close(torch.stack(out), expected, rtol=1e-5, atol=0)
    # Components are the weighted sums, so the weighted total is still 0.5 CE + 0.5 Dice.
    torch.testing.assert_close(out.total, 0.5 * out.ce + 0.5 * out.dice)


def test_float32_under_autocast() -> None:
    target = one_hot(torch.randint(0, 4, (2, 32, 32), generator=torch.Generator().manual_seed(2)))
    loss = DeepSupervisionLoss(DiceCELoss(), num_scales=6)
    assert_float32_under_autocast(lambda *inputs: torch.stack(loss(list(inputs[:-1]), inputs[-1])),
                                  *(4 * logits for logits in pyramid(size=32)), target)


def test_nearest_exact_picks_odd_indices_of_checkerboard() -> None:
    # Class = 2·(row parity) + (column parity): a 2x2 checkerboard of 4 classes. Odd rows and odd columns are class 3.
    rows, cols = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    target = one_hot(((rows % 2) * 2 + cols % 2)[None])
    down = DeepSupervisionLoss.downsample_target(target, (4, 4))
    assert down.shape == (1, 4, 4, 4)
    torch.testing.assert_close(down, one_hot(torch.full((1, 4, 4), 3)))


def test_nearest_exact_256_to_128_keeps_odd_pixels() -> None:
    g = torch.Generator().manual_seed(2)
    target = one_hot(torch.randint(0, 4, (2, 256, 256), generator=g))
    torch.testing.assert_close(DeepSupervisionLoss.downsample_target(target, (128, 128)), target[:, :, 1::2, 1::2])
    torch.testing.assert_close(DeepSupervisionLoss.downsample_target(target, (8, 8)), target[:, :, 16::32, 16::32])


def test_nnunet_lowest_head_gets_zero_but_defined_gradient() -> None:
    outputs = [o.requires_grad_() for o in pyramid(size=16, n=3)]
    target = one_hot(torch.randint(0, 4, (2, 16, 16), generator=torch.Generator().manual_seed(3)))
    DeepSupervisionLoss(DiceCELoss(), num_scales=3, weighting="nnunet")(outputs, target).total.backward()
    assert all(o.grad is not None for o in outputs)
    assert outputs[0].grad.abs().sum() > 0 and outputs[1].grad.abs().sum() > 0
    assert outputs[2].grad.abs().sum() == 0


def test_errors() -> None:
    loss = DeepSupervisionLoss(DiceCELoss(), num_scales=6)
    target = torch.zeros(2, 4, 32, 32)
    with pytest.raises(ValueError, match="expected 6 deep-supervision outputs"):
        loss(pyramid(size=32, n=5), target)
    with pytest.raises(ValueError, match="does not fit"):
        loss(pyramid(size=64), target)  # heads larger than the target
    with pytest.raises(ValueError, match="does not fit"):
        loss(pyramid(size=32, c=3), target)
    with pytest.raises(ValueError, match="weighting"):
        DeepSupervisionLoss(DiceCELoss(), num_scales=6, weighting="uniform")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_scales"):
        deep_supervision_weights(0)
    with pytest.raises(ValueError, match="num_scales"):
        deep_supervision_weights(1, "nnunet")
