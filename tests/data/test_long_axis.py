"""Long-axis intersection lines and their heatmaps: an analytic plane pair, parallel planes, heatmaps that
follow the image through the real augmentation, and the lines of the tiny phantom's M&Ms-2 subjects."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sspcmr.data import keys as K
from sspcmr.data.datasets import SliceDataset, collate_slices
from sspcmr.data.long_axis import VIEWS, intersection_line, slice_lines
from sspcmr.data.store import PreparedDataset
from sspcmr.methods.heatmaps import output_lines, render_heatmaps
from sspcmr.transforms import presets
from sspcmr.transforms.geometry import GeometryAugmentation, affine_grid, build_theta, sample_affine

SPACING = 1.5  # native in-plane mm
SLICE = 3
CENTRE = (20.0, 30.0)  # (h, w) the long-axis plane passes through


def sa_affine() -> np.ndarray:
    """A short-axis stack: h along world x, w along world y, slices 8 mm apart along z, origin off zero."""
    affine = np.diag([SPACING, SPACING, 8.0, 1.0])
    affine[:3, 3] = [-40.0, 12.0, 100.0]
    return affine


def la_affine(angle_deg: float, tilt_deg: float = 90.0) -> np.ndarray:
    """A long-axis plane through CENTRE of slice SLICE: in-plane direction at ``angle_deg`` from world x
    (the h axis), tilted ``tilt_deg`` from the slice plane (90: perpendicular, 0: parallel)."""
    angle, tilt = math.radians(angle_deg), math.radians(tilt_deg)
    u = np.array([math.cos(angle), math.sin(angle), 0.0])
    across = np.array([-math.sin(angle), math.cos(angle), 0.0])
    v = math.cos(tilt) * across + math.sin(tilt) * np.array([0.0, 0.0, 1.0])
    point = sa_affine() @ np.array([*CENTRE, SLICE, 1.0])
    affine = np.eye(4)
    affine[:3, 0], affine[:3, 1], affine[:3, 2] = 1.2 * u, 1.1 * v, 6.0 * np.cross(u, v)
    affine[:3, 3] = point[:3] - 7.0 * affine[:3, 0] - 4.0 * affine[:3, 1]  # the origin elsewhere on the plane
    return affine


def test_analytic_line_and_its_heatmap() -> None:
    line = intersection_line(sa_affine(), SLICE, la_affine(30.0))
    # World direction (cos 30, sin 30) is (h, w) direction (cos 30, sin 30): the normal is (-sin 30, cos 30).
    expected = np.array([-0.5, math.sqrt(3) / 2, 0.0])
    expected[2] = -(expected[0] * CENTRE[0] + expected[1] * CENTRE[1])
    sign = np.sign(line[1])
    np.testing.assert_allclose(sign * line, expected, atol=1e-9)
    assert math.isclose(line[0] ** 2 + line[1] ** 2, 1.0)
    # Another slice: the same direction, shifted only if the plane is tilted (here it is perpendicular).
    np.testing.assert_allclose(intersection_line(sa_affine(), 0, la_affine(30.0)), line, atol=1e-9)

    # Heatmap on an output grid of twice the native pixel size: 1 output px = 2 native px.
    size, sigma, native = 32, 3.0, (40, 56)
    geometry = GeometryAugmentation.none(output_size=size, output_spacing=2 * SPACING)
    theta = build_theta(torch.eye(3, dtype=torch.float64)[None], torch.tensor([native]),
                        torch.tensor([[SPACING, SPACING]]), None, (48, 64), geometry)
    lines = torch.tensor(line, dtype=torch.float32).view(1, 1, 3)
    heatmap = render_heatmaps(lines, torch.tensor([[True]]), theta, (48, 64), size, sigma)[0, 0]
    # Independently: each output pixel's native (h, w) from the sampling grid itself, its native distance
    # from the line halved (2 native px per output px).
    grid = affine_grid(theta, size, size)[0].double()  # (S, S, 2) canvas (x, y) normalised
    h = ((grid[..., 1] + 1) * 48 - 1) / 2
    w = ((grid[..., 0] + 1) * 64 - 1) / 2
    distance = (line[0] * h + line[1] * w + line[2]).abs() / 2
    torch.testing.assert_close(heatmap.double(), torch.exp(-0.5 * (distance / sigma) ** 2), atol=1e-5, rtol=0)
    assert heatmap.max() > 0.98  # the line crosses the grid
    at_sigma = heatmap[(distance - sigma).abs() < 0.05]
    assert at_sigma.numel() > 0 and torch.allclose(at_sigma, torch.tensor(math.exp(-0.5)), atol=0.01)


def test_parallel_planes_have_no_line() -> None:
    assert intersection_line(sa_affine(), SLICE, la_affine(30.0, tilt_deg=0.0)) is None
    assert intersection_line(sa_affine(), SLICE, la_affine(30.0, tilt_deg=1e-3)) is None
    tilted = intersection_line(sa_affine(), SLICE, la_affine(30.0, tilt_deg=5.0))
    assert tilted is not None and math.isclose(np.hypot(tilted[0], tilted[1]), 1.0)
    meta = {"affine": sa_affine().tolist(), "long_axis": {"4ch": {"shape": [64, 64, 1, 5],
                                                                   "affine": la_affine(0.0, 0.0).tolist()}}}
    lines, valid = slice_lines(meta, 5)
    assert lines.shape == (5, 2, 3) and not valid.any() and not lines.any()


def test_heatmaps_follow_the_image_through_the_augmentation() -> None:
    """A 1-px bright line drawn along the native intersection line lands where the heatmap peaks."""
    generator = torch.Generator().manual_seed(3)
    sizes = [(60, 72), (72, 64), (64, 64), (56, 70), (70, 60), (64, 72)]
    hc, wc = max(s[0] for s in sizes), max(s[1] for s in sizes)
    images = torch.zeros(len(sizes), 1, hc, wc)
    lines = torch.zeros(len(sizes), 1, 3)
    for b, (height, width) in enumerate(sizes):
        angle = float(torch.rand(1, generator=generator)) * math.pi
        a, bb = math.cos(angle), math.sin(angle)
        centre = (height / 2 + 4 * (b - 2), width / 2 - 3 * (b - 2))
        lines[b, 0] = torch.tensor([a, bb, -(a * centre[0] + bb * centre[1])])
        hh, ww = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
        images[b, 0, :height, :width] = ((a * hh + bb * ww + lines[b, 0, 2]).abs() < 0.5).float() * 10
    batch = {K.IMAGE: images, K.SIZE: torch.tensor(sizes), K.SPACING: torch.full((len(sizes), 2), 1.25),
             K.CENTER: torch.tensor([[s[0] / 2, s[1] / 2] for s in sizes], dtype=torch.float32),
             K.MEAN: torch.zeros(len(sizes)), K.STD: torch.ones(len(sizes)), K.MAX: torch.full((len(sizes),), 10.0)}
    augment = presets.segmentation_train(output_size=64, output_spacing=1.25)
    valid = torch.ones(len(sizes), 1, dtype=torch.bool)
    for _ in range(3):  # several random draws of rotation, scale, flips and translation
        out = augment(batch, generator)
        other = augment(batch, generator)  # a control: the heatmaps of another draw
        heatmaps = render_heatmaps(lines, valid, out[K.THETA], (hc, wc), 64)  # sigma 6
        sharp = render_heatmaps(lines, valid, out[K.THETA], (hc, wc), 64, sigma=1.0)
        wrong = render_heatmaps(lines, valid, other[K.THETA], (hc, wc), 64, sigma=1.0)
        for b in range(len(sizes)):
            image = out[K.IMAGE][b, 0]
            bright = image > image.min() + 0.5 * (image.max() - image.min())
            if bright.sum() < 10:  # the line left the field of view in this draw
                continue
            assert heatmaps[b, 0][bright].min() > 0.8

            def correlation(maps: torch.Tensor, b: int = b, image: torch.Tensor = image) -> float:
                return float(torch.corrcoef(torch.stack([image.flatten(), maps[b, 0].flatten()]))[0, 1])

            # Smoothing, noise and bicubic blur widen the drawn line, so the sharp map is compared.
            assert correlation(sharp) > 0.45 and correlation(sharp) > correlation(wrong) + 0.3


def test_output_lines_measure_distance_in_output_pixels() -> None:
    """A pure scale: sigma output pixels are sigma * scale native pixels away whatever the rotation."""
    config = GeometryAugmentation(output_size=32, output_spacing=1.0, translation_range=0.0, scale_range=(0.8, 1.3))
    params = sample_affine(4, config, torch.Generator().manual_seed(0))
    size = torch.tensor([[40, 40]] * 4)
    theta = build_theta(params, size, torch.ones(4, 2), torch.full((4, 2), 19.5), (40, 40), config)
    native = torch.tensor([[0.6, 0.8, -20.0]] * 4).view(4, 1, 3)
    out = output_lines(native, theta, (40, 40), 32)
    assert torch.allclose(out[..., :2].norm(dim=-1), torch.ones(4, 1))
    # Every output pixel's native distance is its output distance times the sample's scale.
    grid = affine_grid(theta, 32, 32).double()
    h, w = (grid[..., 1] + 1) * 20 - 0.5, (grid[..., 0] + 1) * 20 - 0.5
    rows, cols = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    scale = torch.linalg.det(params[:, :2, :2]).abs().sqrt()
    for b in range(4):
        native_distance = (0.6 * h[b] + 0.8 * w[b] - 20.0).abs()
        output_distance = (out[b, 0, 0] * rows + out[b, 0, 1] * cols + out[b, 0, 2]).abs().double()
        torch.testing.assert_close(native_distance, output_distance * scale[b], atol=1e-3, rtol=1e-4)


def test_prepared_long_axis_lines_cross_in_the_left_ventricle(prepared_tiny) -> None:
    """The 2ch and 4ch planes both contain the LV long axis: their lines cross at the LV blood pool."""
    root, _ = prepared_tiny
    prepared = PreparedDataset(root)
    with_views = 0
    for s in range(len(prepared.subjects)):
        meta = prepared.meta(s)
        lines, valid = slice_lines(meta, meta["n_slices"])
        if not meta.get("long_axis"):
            assert not valid.any()
            continue
        with_views += 1
        assert set(meta["long_axis"]) == set(VIEWS) and valid.all()
        labels = np.asarray(prepared.labels(s)[0])  # ED
        for z in range(meta["n_slices"]):
            blood_pool = np.argwhere(labels[z] == 1)
            if len(blood_pool) < 5:
                continue
            crossing = np.linalg.solve(lines[z, :, :2].astype(np.float64), -lines[z, :, 2].astype(np.float64))
            assert np.linalg.norm(crossing - blood_pool.mean(0)) < 2.5, (s, z)
    assert with_views == 3


def test_slice_items_and_batches_carry_the_lines(prepared_tiny) -> None:
    root, _ = prepared_tiny
    prepared = PreparedDataset(root)
    rows = prepared.slices[prepared.slices["frame"] == 0]
    dataset = SliceDataset(prepared, rows)
    items = [dataset[i] for i in range(len(dataset))]
    with_views = set(prepared.subjects.index[prepared.subjects["dataset"] == "mm2"])
    for item in items:
        assert item[K.LA_LINES].shape == (2, 3) and item[K.LA_LINES].dtype == torch.float32
        assert item[K.LA_VALID].dtype == torch.bool
        assert bool(item[K.LA_VALID].all()) == (int(item[K.SUBJECT_INDEX]) in with_views)
    batch = collate_slices(items[:: max(1, len(items) // 6)])
    b = batch[K.IMAGE].shape[0]
    assert batch[K.LA_LINES].shape == (b, 2, 3) and batch[K.LA_VALID].shape == (b, 2)
    assert batch[K.PADDED].tolist() == [list(batch[K.IMAGE].shape[-2:])] * b


@pytest.mark.parametrize("sigma", [0.0, -1.0])
def test_sigma_must_be_positive(sigma: float) -> None:
    with pytest.raises(ValueError, match="sigma"):
        render_heatmaps(torch.zeros(1, 1, 3), torch.ones(1, 1, dtype=torch.bool), torch.zeros(1, 2, 3), (8, 8), 8,
                        sigma)
