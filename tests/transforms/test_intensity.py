"""Batched intensity transforms against MONAI's per-sample transforms
(docs/reference.md#standardisation, #intensity-augmentation, #check-intensity)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from monai.networks.layers.convutils import gaussian_1d
from monai.transforms import (
    AdjustContrast,
    GaussianSmooth,
    RandAdjustContrastd,
    RandGaussianNoised,
    RandGaussianSmoothd,
    RandScaleIntensityd,
    RandShiftIntensityd,
    ScaleIntensity,
    ShiftIntensity,
)

from sspcmr.transforms.intensity import (
    IntensityAugmentation,
    adjust_contrast,
    apply_intensity,
    gaussian_kernels,
    gaussian_smooth,
    sample_intensity,
    standardise,
)

OFF = IntensityAugmentation.none()


def images(b: int = 6, h: int = 48, w: int = 64, seed: int = 0) -> torch.Tensor:
    """(B, 1, H, W) standardised-looking images with structure, a flat -1 'padding' band and a bright spot."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 1, h, w, generator=g).cumsum(-1) * 0.2
    x[:, :, :, :5] = -1.0
    x[:, :, h // 2, w // 2] = 4.0
    return x


def only(**kwargs) -> IntensityAugmentation:
    """A config with every transform off except those given."""
    return dataclasses.replace(OFF, **kwargs)


def test_kernels_match_monai_gaussian_1d():
    sigmas = torch.tensor([0.1, 0.5, 0.62, 1.0, 1.37, 1.5, 2.0])
    kernels = gaussian_kernels(sigmas)
    half = (kernels.shape[1] - 1) // 2
    for s, k in zip(sigmas, kernels, strict=True):
        ref = gaussian_1d(s, truncated=4.0, approx="erf")
        tail = (ref.numel() - 1) // 2
        assert torch.allclose(k[half - tail : half + tail + 1], ref, atol=1e-7)
        assert k[: half - tail].abs().sum() == 0 and k[half + tail + 1 :].abs().sum() == 0


def test_smoothing_matches_monai_per_sample():
    x = images()
    params = sample_intensity(6, only(smooth_prob=1.0, smooth_sigma=(0.1, 2.0)), torch.Generator().manual_seed(1))
    params.smooth_sigma[0] = torch.tensor([0.5, 1.9])  # strongly anisotropic: catches swapped axes
    out = apply_intensity(x, params)
    for i in range(6):
        s0, s1 = params.smooth_sigma[i].tolist()
        assert torch.allclose(out[i], GaussianSmooth(sigma=(s0, s1))(x[i]), atol=1e-5)
    # The random dictionary transform with a degenerate range gives the same (sigma_x is dim0).
    rand = RandGaussianSmoothd("img", sigma_x=(0.5, 0.5), sigma_y=(1.9, 1.9), prob=1.0)
    assert torch.allclose(out[0], torch.as_tensor(rand({"img": x[0]})["img"]), atol=1e-5)
    assert not torch.allclose(out[0], gaussian_smooth(x[:1], torch.tensor([[1.9, 0.5]]))[0], atol=1e-3)


@pytest.mark.parametrize("convention", ["monai", "multiplier"])
def test_scale_matches_monai(convention):
    x = images()
    config = only(scale_prob=1.0, scale_convention=convention)
    params = sample_intensity(6, config, torch.Generator().manual_seed(2))
    params.scale_factor[0] = 0.6
    params.multiplier[0] = 1.6 if convention == "monai" else 0.6
    out = apply_intensity(x, params)
    assert torch.allclose(out[0], x[0] * (1.6 if convention == "monai" else 0.6))
    for i in range(1, 6):
        f = float(params.scale_factor[i])
        assert 0.6 <= f <= 1.5
        ref = ScaleIntensity(minv=None, maxv=None, factor=f if convention == "monai" else f - 1.0)(x[i])
        assert torch.allclose(out[i], torch.as_tensor(ref), rtol=1e-6, atol=1e-6)
    rand = RandScaleIntensityd("img", factors=(0.6, 0.6), prob=1.0)
    assert torch.allclose(torch.as_tensor(rand({"img": x[0]})["img"]), x[0] * 1.6)  # MONAI: x·(1 + f)


def test_shift_and_gamma_match_monai():
    x = images()
    params = sample_intensity(6, only(shift_prob=1.0, gamma_prob=1.0), torch.Generator().manual_seed(3))
    out = apply_intensity(x, params)
    for i in range(6):
        o, gamma = float(params.shift_offset[i]), float(params.gamma[i])
        assert -0.4 <= o <= 0.4 and 0.7 <= gamma <= 1.5
        ref = AdjustContrast(gamma)(ShiftIntensity(o)(x[i]))
        assert torch.allclose(out[i], torch.as_tensor(ref), atol=1e-5)
    o, gamma = float(params.shift_offset[0]), float(params.gamma[0])
    ref = RandAdjustContrastd("img", prob=1.0, gamma=(gamma, gamma))(
        RandShiftIntensityd("img", offsets=(o, o), prob=1.0)({"img": x[0]})
    )["img"]
    assert torch.allclose(out[0], torch.as_tensor(ref), atol=1e-5)


def test_gamma_one_is_identity_up_to_epsilon():
    x = images().double() * 3
    out = adjust_contrast(x, torch.ones(6, dtype=torch.float64))
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    span = x.amax(dim=(1, 2, 3), keepdim=True) - lo
    assert torch.allclose(out, x - (x - lo) * 1e-7 / (span + 1e-7), atol=1e-12)
    assert (out - x).abs().max() < 1e-6
    assert torch.allclose(adjust_contrast(x.float(), torch.ones(6)), x.float(), atol=1e-5)


def test_solarisation_maps_positive_values_to_max_minus_value():
    x = images()
    params = sample_intensity(6, only(solarize_prob=1.0), None)
    max_value = torch.arange(6, dtype=torch.float32) + 5.0
    out = apply_intensity(x, params, max_value)
    expected = torch.where(x > 0, max_value.view(-1, 1, 1, 1) - x, x)
    assert torch.equal(out, expected)
    with pytest.raises(ValueError, match="maximum"):
        apply_intensity(x, params)


def test_chain_order_matches_monai_per_sample():
    x = images(b=16, seed=4)
    config = IntensityAugmentation(
        noise_prob=0.0, smooth_prob=0.5, scale_prob=0.5, shift_prob=0.5, gamma_prob=0.5, solarize_prob=0.5
    )
    params = sample_intensity(16, config, torch.Generator().manual_seed(5))
    max_value = torch.full((16,), 3.0)
    out = apply_intensity(x, params, max_value)
    for i in range(16):
        ref = x[i]
        if params.smooth_apply[i]:
            ref = GaussianSmooth(sigma=tuple(params.smooth_sigma[i].tolist()))(ref)
        if params.scale_apply[i]:
            ref = ScaleIntensity(minv=None, maxv=None, factor=float(params.scale_factor[i]))(ref)
        if params.shift_apply[i]:
            ref = ShiftIntensity(float(params.shift_offset[i]))(ref)
        if params.gamma_apply[i]:
            ref = AdjustContrast(float(params.gamma[i]))(ref)
        ref = torch.as_tensor(ref)
        if params.solarize_apply[i]:
            ref = torch.where(ref > 0, 3.0 - ref, ref)
        assert torch.allclose(out[i], ref, atol=2e-5), i
    assert 0 < int(params.gamma_apply.sum()) < 16  # the mask logic is exercised


def test_noise_std_is_drawn_from_zero_to_max():
    x = torch.zeros(64, 1, 64, 64)
    params = sample_intensity(64, only(noise_prob=1.0, noise_std=0.2), torch.Generator().manual_seed(6))
    out = apply_intensity(x, params)
    s = params.noise_std
    assert s.min() >= 0 and s.max() <= 0.2
    residual = out.flatten(1).std(dim=1)
    assert torch.allclose(residual, s, rtol=0.06, atol=1e-4)
    assert out.flatten(1).mean(dim=1).abs().max() < 0.02
    # MONAI's RandGaussianNoised (sample_std=True) has the same spread distribution: mean of U(0, 0.2).
    monai_noise = RandGaussianNoised("img", prob=1.0, std=0.2, sample_std=True)
    monai_noise.set_random_state(0)
    monai_std = torch.tensor([float(torch.as_tensor(monai_noise({"img": x[0]})["img"]).std()) for _ in range(300)])
    ours = sample_intensity(3000, only(noise_prob=1.0), torch.Generator().manual_seed(7)).noise_std
    assert monai_std.max() <= 0.21 and float(monai_std.mean()) == pytest.approx(0.1, abs=0.012)
    assert float(ours.mean()) == pytest.approx(0.1, abs=0.005)


def test_input_untouched_unless_inplace():
    x = images(b=10)
    config = IntensityAugmentation(noise_prob=0.5, smooth_prob=0.5, gamma_prob=0.5, solarize_prob=0.5)
    params = sample_intensity(10, config, torch.Generator().manual_seed(12))
    before = x.clone()
    out = apply_intensity(x, params, torch.ones(10))
    assert torch.equal(x, before)
    assert torch.equal(apply_intensity(x.clone(), params, torch.ones(10), inplace=True), out)


def test_noise_is_reproducible_per_seed():
    x = torch.zeros(4, 1, 16, 16)
    config = only(noise_prob=1.0)
    a = apply_intensity(x, sample_intensity(4, config, torch.Generator().manual_seed(8)))
    b = apply_intensity(x, sample_intensity(4, config, torch.Generator().manual_seed(8)))
    c = apply_intensity(x, sample_intensity(4, config, torch.Generator().manual_seed(9)))
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_probabilities():
    x = images(b=8)
    g = torch.Generator().manual_seed(10)
    assert torch.equal(apply_intensity(x, sample_intensity(8, OFF, g), torch.ones(8)), x)
    every = IntensityAugmentation(noise_prob=1.0, smooth_prob=1.0, solarize_prob=1.0)
    params = sample_intensity(8, every, g)
    for name in ("noise", "smooth", "scale", "shift", "gamma", "solarize"):
        assert bool(getattr(params, f"{name}_apply").all()), name
    out = apply_intensity(x, params, torch.ones(8))
    assert ((out - x).flatten(1).abs().amax(1) > 1e-3).all()
    rates = sample_intensity(20000, IntensityAugmentation(), g)
    for name in ("noise", "smooth"):
        assert float(getattr(rates, f"{name}_apply").double().mean()) == pytest.approx(0.2, abs=0.015)
    dino = sample_intensity(20000, IntensityAugmentation.dino_base(), g)
    assert float(dino.smooth_apply.double().mean()) == pytest.approx(0.1, abs=0.012)
    assert float(dino.scale_apply.double().mean()) == pytest.approx(0.2, abs=0.015)
    # A sample not selected for scaling keeps multiplier 1 exactly.
    assert torch.all(dino.multiplier[~dino.scale_apply] == 1.0)


def test_standardised_cine_has_zero_mean_unit_std():
    g = torch.Generator().manual_seed(11)
    cine = torch.rand(7, 5, 30, 26, generator=g, dtype=torch.float64) ** 3 * 800 + 37.0  # (T, Z, H, W), skewed
    cine = cine - cine.min()  # the data loader's minimum shift
    mean, std = cine.mean(), cine.std()  # unbiased, over the whole 4D cine
    slices = cine.reshape(35, 1, 30, 26)
    out = standardise(slices, mean.expand(35), std.expand(35))
    assert float(out.mean()) == pytest.approx(0.0, abs=1e-9)
    assert float(out.std()) == pytest.approx(1.0, abs=1e-9)
    assert float(out.min()) == pytest.approx(float(-mean / std))  # the padding value after standardisation


def test_config_validation():
    with pytest.raises(ValueError, match="noise_prob"):
        IntensityAugmentation(noise_prob=-0.1)
    with pytest.raises(ValueError, match="gamma_range"):
        IntensityAugmentation(gamma_range=(0.0, 1.5))
    with pytest.raises(ValueError, match="scale_convention"):
        IntensityAugmentation(scale_convention="times")  # type: ignore[arg-type]
