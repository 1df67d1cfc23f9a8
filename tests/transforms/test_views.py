"""The Augmenter and the reference presets on native-slice batches
(docs/reference.md#augmentation-order, #contrastive-views, #dino-views)."""

from __future__ import annotations

import pytest
import torch

import sspcmr.data.keys as K
from sspcmr.methods.dino import dino_views
from sspcmr.transforms import (
    Augmenter,
    GeometryAugmentation,
    IntensityAugmentation,
    ViewSpec,
    build_theta,
    evaluation,
    resample,
    segmentation_train,
    standardise,
)
from tests.transforms.util import make_batch, ring_label

S = 64


@pytest.fixture(scope="module")
def batch() -> dict:
    """Three slices of different native sizes and spacings, with labels and off-centre GT centres."""
    g = torch.Generator().manual_seed(0)
    sizes, spacings = [(60, 72), (48, 50), (70, 40)], [(1.25, 1.25), (1.6, 1.4), (1.0, 2.0)]
    centers = [(30.0, 30.0), (22.0, 26.0), (35.0, 18.0)]
    labels = [ring_label(s, c, sp) for s, c, sp in zip(sizes, centers, spacings, strict=True)]
    images = [lab.float() * 100 + torch.rand(s, generator=g) * 20 for lab, s in zip(labels, sizes, strict=True)]
    return make_batch(images, spacings, centers, labels)


def copy(batch: dict) -> dict:
    return {k: v.clone() if torch.is_tensor(v) else list(v) for k, v in batch.items()}


@pytest.mark.parametrize(
    "factory, shapes",
    [
        (lambda: segmentation_train(output_size=S), None),
        (lambda: evaluation(output_size=S), None),
        (lambda: segmentation_train(views=2, output_size=S), [S, S]),
        (lambda: segmentation_train(views=3, output_size=S, scale_convention="multiplier"), [S, S, S]),
        (lambda: dino_views(output_size=S), [S, S] + [S // 2] * 6),
    ],
)
def test_shapes_and_passthrough(batch, factory, shapes):
    before = copy(batch)
    out = factory()(batch, torch.Generator().manual_seed(1))
    for key in (K.SIZE, K.SPACING, K.CENTER, K.MEAN, K.STD, K.MAX, K.SLICE):
        assert torch.equal(out[key], batch[key])
    assert out[K.SUBJECT] == batch[K.SUBJECT]
    for key, value in before.items():  # the input batch is untouched
        assert torch.equal(batch[key], value) if torch.is_tensor(value) else batch[key] == value
    if shapes is None:
        assert out[K.IMAGE].shape == (3, 1, S, S) and out[K.THETA].shape == (3, 2, 3)
        assert out[K.LABEL].shape == (3, 4, S, S) and out[K.LABEL].dtype == torch.float32
        assert torch.equal(out[K.LABEL].sum(1), torch.ones(3, S, S))
        assert K.VIEWS not in out
    else:
        assert [v.shape for v in out[K.VIEWS]] == [(3, 1, s, s) for s in shapes]
        assert K.IMAGE not in out and K.LABEL not in out
        assert all(torch.isfinite(v).all() and v.is_contiguous() for v in out[K.VIEWS])


def test_views_of_one_sample_differ_and_seeds_repeat(batch):
    aug = segmentation_train(views=2, output_size=S)
    a = aug(batch, torch.Generator().manual_seed(2))[K.VIEWS]
    b = aug(batch, torch.Generator().manual_seed(2))[K.VIEWS]
    c = aug(batch, torch.Generator().manual_seed(3))[K.VIEWS]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.allclose(a[0], c[0], atol=1e-3)
    for i in range(3):
        assert not torch.allclose(a[0][i], a[1][i], atol=1e-3)
    views = dino_views(output_size=S)(batch, torch.Generator().manual_seed(4))[K.VIEWS]
    locals_ = torch.stack(views[2:])  # (6, B, 1, S/2, S/2)
    for i in range(5):
        assert not torch.allclose(locals_[i], locals_[i + 1], atol=1e-3)


def test_intensity_draws_follow_the_generator(batch):
    spec = ViewSpec(GeometryAugmentation.none(output_size=S), IntensityAugmentation(), count=2)
    a = Augmenter([spec])(batch, torch.Generator().manual_seed(8))[K.VIEWS]
    b = Augmenter([spec])(batch, torch.Generator().manual_seed(9))[K.VIEWS]
    assert not torch.allclose(a[0], a[1], atol=1e-3)  # same geometry, independent intensity draws
    assert not torch.allclose(a[0], b[0], atol=1e-3)


def test_copies_follow_sample_order(batch):
    # Without randomness every copy equals the evaluation output of the same sample.
    spec = ViewSpec(GeometryAugmentation.none(output_size=S), IntensityAugmentation.none(), count=3)
    views = Augmenter([spec])(batch, torch.Generator().manual_seed(5))[K.VIEWS]
    ref = evaluation(output_size=S)(batch)[K.IMAGE]
    for v in views:
        assert torch.equal(v, ref)


def test_evaluation_is_image_centred_standardised_resampling(batch):
    out = evaluation(output_size=S)(batch, torch.Generator().manual_seed(6))
    config = GeometryAugmentation.none(output_size=S)
    theta = build_theta(
        torch.eye(3, dtype=torch.float64).expand(3, 3, 3), batch[K.SIZE], batch[K.SPACING], None, (70, 72), config
    )
    ref = standardise(resample(batch[K.IMAGE], theta, S), batch[K.MEAN], batch[K.STD])
    assert torch.allclose(out[K.IMAGE], ref, atol=1e-6)
    assert torch.allclose(out[K.THETA], theta)
    # Outside the native image the value is the standardised subject minimum (0 after the min shift).
    corner = float(-batch[K.MEAN][0] / batch[K.STD][0])
    assert out[K.IMAGE][0, 0, 0, 0] == pytest.approx(corner, abs=1e-6)


def test_image_and_label_share_the_draw(batch):
    # With intensity off the image is label·100 + noise, so thresholds of the image recover the label.
    # A 2 mm output spacing and ±10 px translation keep the labels inside the 128 mm FOV.
    geometry = GeometryAugmentation(output_size=S, output_spacing=2.0, translation_range=10.0)
    spec = ViewSpec(geometry, IntensityAugmentation.none())
    out = Augmenter([spec])(batch, torch.Generator().manual_seed(7))
    image = out[K.IMAGE] * batch[K.STD].view(-1, 1, 1, 1) + batch[K.MEAN].view(-1, 1, 1, 1)
    recovered = ((image - 10) / 100).round().clamp(0, 3).long()[:, 0]
    assert float((recovered == out[K.LABEL].argmax(1)).float().mean()) > 0.9
    for cls in (1, 2, 3):  # every class survives the augmentation somewhere
        assert out[K.LABEL][:, cls].sum() > 0


def test_gt_centring_puts_the_centre_in_the_middle(batch):
    # The lv disc (class 1) is centred on CENTER: with GT centring and no augmentation it sits mid-output.
    geometry = GeometryAugmentation.none(output_size=S)
    spec = ViewSpec(GeometryAugmentation(**{**geometry.__dict__, "centring": "gt"}), IntensityAugmentation.none())
    lv = Augmenter([spec])(batch)[K.LABEL][:, 1]
    rows = torch.arange(S, dtype=torch.float32)
    for i in range(3):
        r = float((lv[i].sum(1) * rows).sum() / lv[i].sum())
        c = float((lv[i].sum(0) * rows).sum() / lv[i].sum())
        assert abs(r - (S - 1) / 2) < 1.0 and abs(c - (S - 1) / 2) < 1.0


def test_dino_configuration():
    aug = dino_views()
    blur, solar, local = aug.views
    assert aug.num_views == 8 and local.count == 6
    assert blur.geometry.output_size == 256 and blur.geometry.scale_range == (0.524, 1.4)
    assert blur.geometry.translation_range == 40.0 and local.geometry.translation_range == 160.0
    assert local.geometry.output_size == 128 and local.geometry.output_spacing == 1.25  # the quarter-area FOV
    assert local.geometry.scale_range == (0.313, 0.524)
    assert blur.intensity.smooth_prob == 1.0 and blur.intensity.smooth_sigma == (0.1, 2.0)
    assert solar.intensity.solarize_prob == 0.2 and solar.intensity.smooth_prob == 0.1
    assert local.intensity == IntensityAugmentation.dino_base() and local.intensity.solarize_prob == 0.0
    for spec in aug.views:
        g = spec.geometry
        assert (g.rotation_prob, g.rotation_range, g.flip_prob) == (1.0, 180.0, 0.5)
    seg = segmentation_train().views[0]
    assert seg.geometry == GeometryAugmentation() and seg.intensity == IntensityAugmentation()
