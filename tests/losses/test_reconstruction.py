"""masked_mse (masked image modelling) and restoration_loss (inpainting): the reconstruction losses."""

from __future__ import annotations

import pytest
import torch

from sspcmr.corruptions.patches import PatchMasker
from sspcmr.losses.reconstruction import masked_mse, restoration_loss
from tests.losses.autocast import assert_float32_under_autocast


def test_masked_mse_golden_values() -> None:
    target = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    _, mask = PatchMasker(patch_size=4, ratio=0.5)(target, torch.Generator().manual_seed(1))
    assert masked_mse(target, target, mask).item() == 0.0
    assert masked_mse(target + 1, target, mask).item() == pytest.approx(1.0, abs=1e-6)
    # Errors at unmasked pixels do not count.
    changed = torch.where(mask.bool(), target, target + 100.0)
    assert masked_mse(changed, target, mask).item() == 0.0
    assert masked_mse(changed + 2 * mask, target, mask).item() == pytest.approx(4.0, abs=1e-5)


def test_masked_mse_pools_over_the_batch() -> None:
    # Image 0: 1 masked pixel with error 3 (squared 9); image 1: 3 masked pixels with error 1 (squared 1 each).
    # Pooled: (9 + 3) / 4 = 3.0; a mean of per-image losses would give (9 + 1) / 2 = 5.0.
    target = torch.zeros(2, 1, 2, 2)
    output = torch.zeros(2, 1, 2, 2)
    mask = torch.zeros(2, 1, 2, 2)
    mask[0, 0, 0, 0] = 1
    output[0, 0, 0, 0] = 3
    mask[1, 0, 0, :] = 1
    mask[1, 0, 1, 0] = 1
    output[1] = 1.0  # the unmasked pixel (1, 1) is wrong too but does not count
    assert masked_mse(output, target, mask).item() == pytest.approx(3.0)


def test_masked_mse_channels_dtype_and_errors() -> None:
    target = torch.zeros(1, 2, 2, 2)
    output = torch.zeros(1, 2, 2, 2)
    output[0, 0] = 1.0
    output[0, 1] = 3.0
    mask = torch.zeros(1, 1, 2, 2, dtype=torch.bool)
    mask[0, 0, 0, 0] = True
    # The mask broadcasts over channels: mean over the 2 masked elements (1² + 3²) / 2.
    assert masked_mse(output, target, mask).item() == pytest.approx(5.0)
    loss = masked_mse(output.half(), target.half(), mask)
    assert loss.dtype == torch.float32 and loss.item() == pytest.approx(5.0)
    with pytest.raises(ValueError, match="empty"):
        masked_mse(output, target, torch.zeros(1, 1, 2, 2), check_empty=True)
    with pytest.raises(ValueError, match="shapes differ"):
        masked_mse(output, target[:, :1], mask)
    with pytest.raises(ValueError, match="does not broadcast"):
        masked_mse(output, target, torch.ones(1, 1, 3, 2))


def test_an_empty_mask_gives_a_zero_in_the_graph_without_a_check() -> None:
    # The default reads nothing on the host: an empty mask gives exactly 0 with zero gradients.
    output = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(3)).requires_grad_()
    loss = masked_mse(output, torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4))
    loss.backward()
    assert loss.item() == 0.0 and loss.dtype == torch.float32
    assert torch.equal(output.grad, torch.zeros_like(output))
    # A non-empty mask gives the same value with and without the check.
    mask = (torch.arange(32).view(2, 1, 4, 4) % 3 == 0).float()
    assert torch.equal(masked_mse(output, output.detach() * 0, mask),
                       masked_mse(output, output.detach() * 0, mask, check_empty=True))


def test_reconstruction_losses_are_float32_under_autocast() -> None:
    generator = torch.Generator().manual_seed(4)
    output, target = torch.randn(2, 1, 8, 8, generator=generator), torch.randn(2, 1, 8, 8, generator=generator)
    _, mask = PatchMasker(patch_size=4, ratio=0.5)(target, torch.Generator().manual_seed(1))
    assert_float32_under_autocast(lambda o, t: masked_mse(o, t, mask), output, target)
    for reduction in ("mean", "sum"):
        assert_float32_under_autocast(lambda o, t, r=reduction: restoration_loss(o, t, r), output, target)
