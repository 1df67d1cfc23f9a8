"""MaskBank: the corruption layouts of context prediction and context restoration (Dominic et al. 2023)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from sspcmr.corruptions.inpainting import MaskBank

SIZE = 64
COMBINATIONS = list(itertools.product(["prediction", "restoration"], ["poisson", "random"]))


@pytest.fixture(scope="module")
def banks() -> dict[tuple[str, str], MaskBank]:
    """One small bank per mode and placement, 16 px patches on 64 px images."""
    return {(mode, placement): MaskBank(SIZE, 16, mode=mode, placement=placement, count=20, seed=3)
            for mode, placement in COMBINATIONS}


def images(batch: int = 6, channels: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, channels, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("mode, placement", COMBINATIONS)
def test_every_layout_covers_a_quarter_and_not_much_more(banks, mode, placement) -> None:
    bank = banks[mode, placement]
    masks, _ = bank.layout(torch.arange(len(bank)))
    area = masks.flatten(1).sum(1).double() / SIZE**2
    step = (2 if mode == "restoration" else 1) * 16**2 / SIZE**2  # the last patch (pair) added
    assert len(bank) == 80 and area.min() >= 0.25 and area.max() < 0.25 + step
    if mode == "restoration" or placement == "poisson":  # disjoint patches: exactly the pixels of 4 patches
        assert torch.all(area == 0.25)


@pytest.mark.parametrize("mode, placement", COMBINATIONS)
def test_patches_lie_inside_the_image_and_disjoint_where_required(banks, mode, placement) -> None:
    bank = banks[mode, placement]
    for corners, mask in zip(bank.corners, bank.masks, strict=True):
        assert corners.min() >= 0 and corners.max() <= SIZE - 16
        drawn = torch.zeros(SIZE, SIZE, dtype=torch.int32)
        for row, col in corners:
            drawn[row:row + 16, col:col + 16] += 1
        assert torch.equal(drawn > 0, mask)
        if mode == "restoration" or placement == "poisson":
            assert drawn.max() == 1  # no pixel in two patches (restoration: each swap is well defined)
    if (mode, placement) == ("prediction", "random"):  # overlaps are allowed and do happen
        assert any(len(corners) > 4 for corners in bank.corners)


@pytest.mark.parametrize("mode", ["prediction", "restoration"])
def test_poisson_disc_centres_are_at_least_k_sqrt2_apart(banks, mode) -> None:
    for corners in banks[mode, "poisson"].corners:
        offsets = corners[:, None, :] - corners[None, :, :]
        squared = (offsets**2).sum(-1)[~np.eye(len(corners), dtype=bool)]
        assert squared.min() >= 2 * 16**2  # distance >= 16 √2, compared exactly in integers


def test_rotations_are_rotations_of_the_base_layouts(banks) -> None:
    bank = banks["restoration", "poisson"]
    x = images(1, 1)
    for k in range(4):
        index = torch.tensor([k * bank.count + 5])
        mask, source = bank.layout(index)
        assert torch.equal(mask[0], torch.rot90(bank.masks[5], k, (0, 1)))
        # The rotated layout corrupts an image as the base layout corrupts the image rotated back.
        expected = torch.rot90(bank.apply(torch.rot90(x, -k, (2, 3)), torch.tensor([5]))[0], k, (2, 3))
        assert torch.equal(bank.apply(x, index)[0], expected)
        assert torch.equal(source[0].flatten().sort().values, torch.arange(SIZE**2))  # a permutation
    assert not torch.equal(bank.layout(torch.tensor([5]))[0], bank.layout(torch.tensor([bank.count + 5]))[0])


@pytest.mark.parametrize("placement", ["poisson", "random"])
def test_restoration_swaps_patches_keeping_each_histogram(banks, placement) -> None:
    bank = banks["restoration", placement]
    x = images()
    original = x.clone()
    corrupted, mask = bank.corrupt(x, torch.Generator().manual_seed(1))
    assert torch.equal(x, original) and mask.shape == (6, 1, SIZE, SIZE) and mask.dtype == x.dtype
    for b, c in itertools.product(range(6), range(2)):
        assert torch.equal(corrupted[b, c].flatten().sort().values, x[b, c].flatten().sort().values)
    inside = mask.bool().expand_as(x)
    assert torch.equal(corrupted[~inside], x[~inside])
    assert torch.all(corrupted[inside] != x[inside])  # random values: every swapped pixel changes


def test_restoration_moves_whole_patches_the_same_way_in_every_channel(banks) -> None:
    bank = banks["restoration", "random"]
    x = images(1, 3)
    corrupted, _ = bank.apply(x, torch.tensor([2]))  # base layout 2, unrotated
    (r1, c1), (r2, c2) = bank.corners[2][:2]
    assert torch.equal(corrupted[..., r1:r1 + 16, c1:c1 + 16], x[..., r2:r2 + 16, c2:c2 + 16])
    assert torch.equal(corrupted[..., r2:r2 + 16, c2:c2 + 16], x[..., r1:r1 + 16, c1:c1 + 16])


@pytest.mark.parametrize("fill_value", [0.0, -1.5])
def test_prediction_fills_exactly_the_masked_pixels(fill_value) -> None:
    bank = MaskBank(SIZE, 16, mode="prediction", count=5, fill_value=fill_value)
    x = images()
    corrupted, mask = bank.corrupt(x, torch.Generator().manual_seed(2))
    inside = mask.bool().expand_as(x)
    assert torch.all(corrupted[inside] == fill_value)
    assert torch.equal(corrupted[~inside], x[~inside])
    assert torch.equal(mask[:, 0], mask[:, 0].bool().float())


def test_layouts_and_draws_are_deterministic(banks) -> None:
    again = MaskBank(SIZE, 16, mode="restoration", placement="poisson", count=20, seed=3)
    bank = banks["restoration", "poisson"]
    assert all(np.array_equal(a, b) for a, b in zip(bank.corners, again.corners, strict=True))
    assert torch.equal(bank.sources, again.sources)
    other = MaskBank(SIZE, 16, mode="restoration", placement="poisson", count=20, seed=4)
    assert not torch.equal(bank.masks, other.masks)
    draws = [bank.corrupt(images(), torch.Generator().manual_seed(7))[0] for _ in range(2)]
    assert torch.equal(*draws)
    assert bank.draw(400, torch.Generator().manual_seed(0)).unique().numel() > 50  # rotations are drawn too


def test_a_32_px_pair_fits_a_64_px_image_only_at_opposite_corners() -> None:
    # The config's 32 px patches on the 64 px test images: one Poisson-disc pair needs centres 32 √2 apart.
    bank = MaskBank(SIZE, 32, mode="restoration", placement="poisson", count=4)
    for corners in bank.corners:
        assert sorted(map(tuple, corners.tolist())) in ([(0, 0), (32, 32)], [(0, 32), (32, 0)])


@pytest.mark.parametrize("options, message", [
    ({"patch_size": 65}, "patch_size must be in"),
    ({"patch_size": 40}, "do not fit in a 64x64 image"),
    ({"patch_size": 16, "coverage": 0.0}, "coverage must be in"),
    ({"patch_size": 16, "count": 0}, "count and max_restarts"),
    ({"patch_size": 24, "coverage": 0.9}, "that many non-overlapping patches do not fit"),
    ({"patch_size": 16, "coverage": 0.6, "mode": "prediction"}, "patches jam"),
    ({"patch_size": 16, "mode": "inpaint"}, "mode must be"),
    ({"patch_size": 16, "placement": "grid"}, "placement must be"),
])
def test_impossible_settings_are_refused_with_the_fix(options, message) -> None:
    with pytest.raises(ValueError, match=message):
        MaskBank(SIZE, **{"max_restarts": 5, **options})


def test_apply_checks_the_image_size(banks) -> None:
    bank = banks["prediction", "poisson"]
    with pytest.raises(ValueError, match=r"\(B, C, 64, 64\)"):
        bank.corrupt(torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="layout indices"):
        bank.layout(torch.tensor([len(bank)]))


def test_256_px_defaults_corrupt_16_patches_of_32_px() -> None:
    bank = MaskBank(256, 32, count=2)  # restoration, Poisson-disc, 1/4: 8 pairs
    assert [len(c) for c in bank.corners] == [16, 16]
    assert bank.masks.sum().item() == 2 * math.ceil(256**2 / 4)


@pytest.mark.parametrize("placement", ["poisson", "random"])
def test_the_partner_lookahead_matches_brute_force(placement) -> None:
    bank = MaskBank(24, 6, mode="restoration", placement=placement, count=1)
    allowed = np.random.default_rng(0).random((19, 19)) < 0.08  # a sparse set of free corners
    corners = np.argwhere(allowed)
    offsets = np.abs(corners[:, None, :] - corners[None, :, :])
    if placement == "poisson":
        apart = (offsets**2).sum(-1) >= 2 * 6**2
    else:
        apart = (offsets >= 6).any(-1)
    expected = np.zeros_like(allowed)
    expected[tuple(corners.T)] = apart.any(1)
    assert np.array_equal(bank._have_partner(allowed) & allowed, expected)
