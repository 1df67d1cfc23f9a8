"""PatchMasker: the masking of the masked image modelling recipe of the reference (docs/reference.md#mim-loss)."""

from __future__ import annotations

import pytest
import torch

from sspcmr.corruptions.patches import PatchMasker


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

