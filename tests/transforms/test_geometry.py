"""Golden geometry of the single-step resampling (docs/reference.md#geometry, #check-geometry)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import sspcmr.data.keys as K
from sspcmr.transforms.geometry import (
    GeometryAugmentation,
    affine_from_parameters,
    affine_grid,
    build_theta,
    crop_native,
    inverse_theta,
    resample,
    resample_to_native,
    sample_affine,
)
from tests.transforms.util import centroid, disc, gaussian_blob, make_batch, ring_label

NONE256 = GeometryAugmentation.none()


def warp(batch: dict, config: GeometryAugmentation, angle=0.0, scale=1.0, flip=(1.0, 1.0), tau=(0.0, 0.0)):
    """Resample a batch with explicit parameters (same for every sample); returns (B, 1, S, S)."""
    b = batch[K.IMAGE].shape[0]
    params = affine_from_parameters(
        torch.full((b,), float(angle)),
        torch.full((b,), float(scale)),
        torch.tensor([flip] * b, dtype=torch.float64),
        torch.tensor([tau] * b, dtype=torch.float64),
        config.output_size,
    )
    padded = tuple(batch[K.IMAGE].shape[-2:])
    theta = build_theta(params, batch[K.SIZE], batch[K.SPACING], batch[K.CENTER], padded, config)
    return resample(batch[K.IMAGE], theta, config.output_size)


def test_golden_no_augmentation_fov_and_centre():
    # 200 x 300 px at (1.6, 1.0) mm: 320 mm along dim0, 300 mm along dim1, on a 320 mm output square.
    shape, spacing = (200, 300), (1.6, 1.0)
    ones = warp(make_batch([torch.ones(shape)], [spacing]), NONE256)[0, 0]
    # dim0 fills all 256 rows; dim1's 300 mm spans 240 columns, i.e. 8 columns of zeros each side
    # (bicubic taps of columns 0-6 and 249-255 all fall outside the source).
    assert torch.allclose(ones[2:-2, 9:-9], torch.ones(252, 238), atol=1e-5)
    assert ones[:, :7].abs().max() == 0 and ones[:, 249:].abs().max() == 0
    assert ones[128, 7].abs() > 0.01 and ones[128, 248].abs() > 0.01  # bicubic ringing just outside
    assert ones[128, 8] > 0.5 and ones[128, 247] > 0.5  # 0.625 source px inside the edge
    # A blob at the source centre (99.5, 149.5) lands at the output centre (127.5, 127.5).
    blob = gaussian_blob(shape, (99.5, 149.5), 6.0, spacing)
    out = warp(make_batch([blob], [spacing]), NONE256)[0, 0]
    assert centroid(out) == pytest.approx((127.5, 127.5), abs=0.05)
    # An off-centre blob lands at the position predicted in mm / 1.25.
    blob = gaussian_blob(shape, (40.0, 250.0), 6.0, spacing)
    out = warp(make_batch([blob], [spacing]), NONE256)[0, 0]
    expected = (127.5 + (40.0 - 99.5) * 1.6 / 1.25, 127.5 + (250.0 - 149.5) * 1.0 / 1.25)
    assert centroid(out) == pytest.approx(expected, abs=0.05)


@pytest.mark.parametrize("convention", ["reference", "exact"])
def test_gt_centring(convention):
    shape, spacing, c = (200, 300), (1.6, 1.0), (20.0, 30.0)
    config = GeometryAugmentation(centring="gt", centre_convention=convention)
    batch = make_batch([gaussian_blob(shape, c, 4.0, spacing)], [spacing], [c])
    got = centroid(warp(batch, config)[0, 0])
    if convention == "exact":
        expected = (127.5, 127.5)
    else:
        # The align_corners=True normalisation centres index c·N/(N-1) - 1/2 instead of c, so the GT
        # centre appears (1/2 - c/(N-1)) source pixels off the output centre: here 0.51 and 0.32 px.
        expected = tuple(127.5 + (0.5 - ci / (n - 1)) * s / 1.25 for ci, n, s in zip(c, shape, spacing, strict=True))
        assert abs(expected[0] - 127.5) > 0.3  # the conventions are distinguishable here
    assert got == pytest.approx(expected, abs=0.03)
    # A single-pixel delta at CENTER peaks within a pixel of the output centre (127.5, 127.5).
    delta = torch.zeros(shape)
    delta[int(c[0]), int(c[1])] = 1.0
    out = warp(make_batch([delta], [spacing], [c]), config)[0, 0]
    peak = divmod(int(out.argmax()), 256)
    assert all(abs(p - 127.5) <= 1.0 for p in peak)


def test_translation_moves_content_by_minus_tau():
    shape, spacing = (200, 200), (1.25, 1.25)
    batch = make_batch([gaussian_blob(shape, (99.5, 99.5), 5.0, spacing)], [spacing])
    base = centroid(warp(batch, NONE256)[0, 0])
    moved = centroid(warp(batch, NONE256, tau=(40.0, -25.0))[0, 0])  # tau = (x = dim1, y = dim0)
    # Content shifts by -tau output pixels: 40 px = 50 mm along dim1.
    assert moved[1] - base[1] == pytest.approx(-40.0, abs=0.05)
    assert moved[0] - base[0] == pytest.approx(25.0, abs=0.05)


def test_scale_and_output_spacing_with_a_disc():
    # A 40 mm-radius disc, elliptical in pixels at (1.6, 1.0) mm, is a 32 px-radius circle at 1.25 mm.
    shape, spacing = (120, 200), (1.6, 1.0)
    batch = make_batch([disc(shape, (59.5, 99.5), 40.0, spacing)], [spacing])
    area = {}
    for sigma in (1.0, 1.4):
        out = warp(batch, NONE256, scale=sigma)[0, 0].double()
        area[sigma] = float(out.sum())  # the interpolated sum ≈ area in output px²
        # Circular in the output: equal second moments along both axes.
        rows = torch.arange(256, dtype=torch.float64) - 127.5
        m0 = float((out.sum(1) * rows**2).sum()) / area[sigma]
        m1 = float((out.sum(0) * rows**2).sum()) / area[sigma]
        assert m0 == pytest.approx(m1, rel=0.01)
    assert area[1.0] == pytest.approx(math.pi * 32.0**2, rel=0.01)
    # σ = 1.4 samples a 1.4x larger area: the anatomy shrinks by 1/1.4 per axis.
    assert math.sqrt(area[1.4] / area[1.0]) == pytest.approx(1 / 1.4, rel=0.01)


def test_rotation_is_counter_clockwise_as_displayed():
    # Spacing 1.25 mm: one source pixel = one output pixel. A blob 40 px right of the centre (dim1 + 40).
    shape, spacing = (256, 256), (1.25, 1.25)
    batch = make_batch([gaussian_blob(shape, (127.5, 167.5), 4.0, spacing)], [spacing])
    # θ = +90°: with row 0 displayed at the top, "right of centre" turns to "above centre" (dim0 - 40).
    assert centroid(warp(batch, NONE256, angle=90.0)[0, 0]) == pytest.approx((87.5, 127.5), abs=0.05)
    assert centroid(warp(batch, NONE256, angle=-90.0)[0, 0]) == pytest.approx((167.5, 127.5), abs=0.05)


def test_flips_mirror():
    torch.manual_seed(0)
    batch = make_batch([torch.rand(90, 110)], [(1.4, 1.1)])
    config = GeometryAugmentation.none(output_size=64)
    plain = warp(batch, config)
    assert torch.allclose(warp(batch, config, flip=(-1.0, 1.0)), plain.flip(-1), atol=1e-5)
    assert torch.allclose(warp(batch, config, flip=(1.0, -1.0)), plain.flip(-2), atol=1e-5)
    assert not torch.allclose(plain.flip(-1), plain, atol=1e-2)


def test_padded_canvas_equals_zero_padding_on_native():
    g = torch.Generator().manual_seed(3)
    sizes = [(50, 70), (64, 40), (33, 81)]
    images = [torch.rand(s, generator=g) + 0.5 for s in sizes]
    labels = [torch.randint(0, 4, s, generator=g) for s in sizes]
    spacings = [(1.0, 1.3), (2.0, 1.5), (1.25, 0.8)]
    centers = [(20.0, 31.0), (40.5, 12.0), (16.0, 60.0)]
    batch = make_batch(images, spacings, centers, labels)
    config = GeometryAugmentation(output_size=48, output_spacing=1.6)
    params = sample_affine(3, config, g)
    theta = build_theta(params, batch[K.SIZE], batch[K.SPACING], batch[K.CENTER], (64, 81), config)
    img = resample(batch[K.IMAGE], theta, 48)
    lab = resample(batch[K.LABEL].float(), theta, 48, mode="nearest")
    for i in range(3):
        t = build_theta(params[i : i + 1], batch[K.SIZE][i : i + 1], batch[K.SPACING][i : i + 1],
                        batch[K.CENTER][i : i + 1], None, config)  # fmt: skip
        grid = F.affine_grid(t, [1, 1, 48, 48], align_corners=False)
        ref = F.grid_sample(images[i][None, None], grid, mode="bicubic", padding_mode="zeros", align_corners=False)
        assert torch.allclose(img[i], ref[0], atol=1e-4)
        assert (img[i] == 0).float().mean() > 0.05  # the comparison covers out-of-image samples too
        ref_lab = F.grid_sample(labels[i][None, None].float(), grid, mode="nearest", align_corners=False)
        assert (lab[i] != ref_lab[0]).float().mean() < 2e-3
    # Nearest keeps label values and all classes survive.
    assert set(lab.unique().tolist()) == {0.0, 1.0, 2.0, 3.0}


def test_affine_grid_matches_torch():
    theta = torch.randn(5, 2, 3, generator=torch.Generator().manual_seed(1))
    ref = F.affine_grid(theta, [5, 1, 24, 40], align_corners=False)
    assert torch.allclose(affine_grid(theta, 24, 40), ref, atol=1e-6)


def test_sample_affine_distribution_and_identity():
    g = torch.Generator().manual_seed(0)
    config = GeometryAugmentation()
    m = sample_affine(4000, config, g)
    lin = m[:, :2, :2]
    sigma = torch.sqrt(torch.linalg.det(lin).abs())
    assert sigma.min() >= 0.7 - 1e-9 and sigma.max() <= 1.4 + 1e-9
    flips = torch.linalg.det(lin) < 0  # exactly one flipped axis: probability 2 · 0.5 · 0.5
    assert float(flips.double().mean()) == pytest.approx(0.5, abs=0.03)
    shift = torch.linalg.solve(lin, m[:, :2, 2]) * 256 / 2  # tau in output px
    assert shift.abs().max() <= 40.0 + 1e-6 and shift.abs().max() > 39.0
    ident = sample_affine(5, GeometryAugmentation.none(), g)
    assert torch.allclose(ident, torch.eye(3, dtype=torch.float64).expand(5, 3, 3))


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="rotation_prob"):
        GeometryAugmentation(rotation_prob=1.5)
    with pytest.raises(ValueError, match="scale_range"):
        GeometryAugmentation(scale_range=(1.4, 0.7))
    with pytest.raises(ValueError, match="centring"):
        GeometryAugmentation(centring="middle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="CENTER"):
        build_theta(torch.eye(3)[None], torch.tensor([[10, 10]]), torch.ones(1, 2), None, None, GeometryAugmentation())


def test_inverse_round_trip():
    shape, spacing = (120, 150), (1.0, 1.0)
    label = ring_label(shape, (60.0, 60.0), spacing)
    smooth = gaussian_blob(shape, (50.0, 80.0), 15.0, spacing)
    batch = make_batch([smooth, smooth], [spacing, spacing], labels=[label, label])
    config = GeometryAugmentation(output_size=128, translation_range=10.0, scale_range=(0.9, 1.0))
    params = sample_affine(2, config, torch.Generator().manual_seed(5))
    theta = build_theta(params, batch[K.SIZE], batch[K.SPACING], batch[K.CENTER], shape, config)
    eye = torch.cat([theta, torch.tensor([[[0.0, 0.0, 1.0]]]).expand(2, 1, 3)], 1)
    inv = torch.cat([inverse_theta(theta), torch.tensor([[[0.0, 0.0, 1.0]]]).expand(2, 1, 3)], 1)
    assert torch.allclose(eye @ inv, torch.eye(3).expand(2, 3, 3), atol=1e-5)
    # Logits = one-hot of the label, forward (bicubic, 1.25 mm: downsampling) then back (bicubic, border).
    onehot = F.one_hot(batch[K.LABEL][:, 0], 4).permute(0, 3, 1, 2).float()
    logits = resample(onehot, theta, 128)
    back = resample_to_native(logits, theta, batch[K.SIZE], shape)
    assert back.shape == (2, 4, 120, 150)
    pred = back.argmax(1)
    for cls in (1, 2, 3):
        p, t = pred == cls, batch[K.LABEL][:, 0] == cls
        dice = 2 * (p & t).sum() / (p.sum() + t.sum())
        assert dice > 0.95
    # A smooth image comes back closely.
    img_back = resample_to_native(resample(batch[K.IMAGE], theta, 128), theta, batch[K.SIZE], shape)
    assert (img_back - batch[K.IMAGE]).abs().max() < 0.02
    # Canvas pixels beyond a sample's native size are zeroed; inside, nothing changes.
    small = torch.tensor([[100, 90], [120, 150]])
    masked = resample_to_native(logits, theta, small, shape)
    assert masked[0, :, 100:].abs().sum() == 0 and masked[0, :, :, 90:].abs().sum() == 0
    assert torch.equal(masked[0, :, :100, :90], back[0, :, :100, :90]) and torch.equal(masked[1], back[1])
    crops = crop_native(img_back, torch.tensor([[120, 150], [100, 90]]))
    assert crops[0].shape == (1, 120, 150) and crops[1].shape == (1, 100, 90)
