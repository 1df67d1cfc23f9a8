"""PatchMasker and masked_mse: the masked image modelling recipe of the reference (the reference code)."""

from __future__ import annotations

import pytest
import torch

from sspcmr.losses.masking import PatchMasker, masked_mse


def patch_grid(mask: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, 1, H, W) pixel mask -> (B, H/p, W/p) per-patch means (exactly 0 or 1 for a grid-aligned mask)."""
    return torch.nn.functional.avg_pool2d(mask.double(), patch_size)[:, 0]


def test_reference_recipe_masks_48_of_64_grid_patches() -> None:
    images = torch.randn(3, 1, 256, 256, generator=torch.Generator().manual_seed(0))
    masked, mask = PatchMasker()(images, torch.Generator().manual_seed(1))
    assert mask.shape == (3, 1, 256, 256) and mask.dtype == images.dtype
    grid = patch_grid(mask, 32)
    assert grid.shape == (3, 8, 8)
    assert torch.all((grid == 0) | (grid == 1))  # every 32x32 grid cell wholly masked or wholly kept
    assert grid.sum(dim=(1, 2)).tolist() == [48.0, 48.0, 48.0]
    assert mask.sum().item() == 49152 * 3  # 48 · 32²
    assert set(mask.unique().tolist()) == {0.0, 1.0}


@pytest.mark.parametrize("fill_value", [0.0, -1.5])
def test_masked_pixels_are_filled_and_the_rest_kept(fill_value: float) -> None:
    images = torch.randn(2, 2, 64, 64, generator=torch.Generator().manual_seed(0))
    original = images.clone()
    masked, mask = PatchMasker(patch_size=16, fill_value=fill_value)(images, torch.Generator().manual_seed(2))
    assert torch.equal(images, original)  # input untouched
    assert masked.shape == images.shape
    where = mask.bool().expand_as(images)
    assert torch.all(masked[where] == fill_value)
    assert torch.equal(masked[~where], images[~where])


def test_same_seed_same_mask_different_seeds_differ() -> None:
    images = torch.zeros(4, 1, 128, 128)
    masker = PatchMasker()
    _, first = masker(images, torch.Generator().manual_seed(5))
    _, again = masker(images, torch.Generator().manual_seed(5))
    _, other = masker(images, torch.Generator().manual_seed(6))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_global_generator_is_used_without_a_generator() -> None:
    images = torch.zeros(2, 1, 64, 64)
    torch.manual_seed(9)
    _, first = PatchMasker()(images)
    torch.manual_seed(9)
    _, again = PatchMasker()(images)
    assert torch.equal(first, again)


def test_images_of_a_batch_get_different_masks() -> None:
    _, mask = PatchMasker()(torch.zeros(8, 1, 256, 256), torch.Generator().manual_seed(3))
    flat = mask.flatten(1)
    for i in range(8):
        for j in range(i + 1, 8):
            assert not torch.equal(flat[i], flat[j])


def test_mask_does_not_depend_on_image_values() -> None:
    masker = PatchMasker(patch_size=8, ratio=0.5)
    _, zeros = masker(torch.zeros(2, 1, 32, 32), torch.Generator().manual_seed(4))
    _, noise = masker(torch.randn(2, 1, 32, 32), torch.Generator().manual_seed(4))
    assert torch.equal(zeros, noise)


def test_configurable_patch_size_and_ratio() -> None:
    # 16 px patches on 64 px: a 4 x 4 grid, half of it (8 patches) masked.
    _, mask = PatchMasker(patch_size=16, ratio=0.5)(torch.zeros(2, 3, 64, 64), torch.Generator().manual_seed(0))
    assert mask.shape == (2, 1, 64, 64)
    grid = patch_grid(mask, 16)
    assert torch.all((grid == 0) | (grid == 1))
    assert grid.sum(dim=(1, 2)).tolist() == [8.0, 8.0]
    # Non-square images, tiny ratio: still at least one patch; ratio 1 masks everything.
    _, one = PatchMasker(patch_size=4, ratio=0.01)(torch.zeros(1, 1, 8, 12), torch.Generator().manual_seed(0))
    assert one.sum().item() == 16
    _, full = PatchMasker(patch_size=4, ratio=1.0)(torch.zeros(1, 1, 8, 12), torch.Generator().manual_seed(0))
    assert torch.all(full == 1)


def test_mask_follows_the_images_dtype() -> None:
    images = torch.ones(1, 1, 64, 64, dtype=torch.float64)
    masked, mask = PatchMasker()(images, torch.Generator().manual_seed(0))
    assert masked.dtype == mask.dtype == torch.float64
    half = torch.ones(1, 1, 64, 64, dtype=torch.float16)
    masked_half, mask_half = PatchMasker()(half, torch.Generator().manual_seed(0))
    assert masked_half.dtype == mask_half.dtype == torch.float16
    assert torch.equal(mask_half.double(), mask)  # same generator state, same mask whatever the dtype


def test_bad_sizes_and_arguments_raise() -> None:
    with pytest.raises(ValueError, match=r"100x256 is not a multiple of patch_size=32"):
        PatchMasker()(torch.zeros(1, 1, 100, 256))
    with pytest.raises(ValueError, match=r"256x250"):
        PatchMasker()(torch.zeros(1, 1, 256, 250))
    with pytest.raises(ValueError, match="B, C, H, W"):
        PatchMasker()(torch.zeros(1, 256, 256))
    with pytest.raises(ValueError, match="patch_size"):
        PatchMasker(patch_size=0)
    for ratio in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="ratio"):
            PatchMasker(ratio=ratio)


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
        masked_mse(output, target, torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match="shapes differ"):
        masked_mse(output, target[:, :1], mask)
    with pytest.raises(ValueError, match="does not broadcast"):
        masked_mse(output, target, torch.ones(1, 1, 3, 2))
