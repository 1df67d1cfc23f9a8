"""Batched intensity augmentation with MONAI >= 1.3 semantics
(docs/reference.md#standardisation, #intensity-augmentation).

Each transform decides per sample with its own probability, like one MONAI dictionary transform per
sample would. Parameters are drawn on the CPU (:func:`sample_intensity`), so which samples a transform
touches is known without a device synchronisation; :func:`apply_intensity` then runs batched on the
image's device, where the few per-sample values are copied without a host synchronisation
(:func:`~sspcmr.transforms.host_to_device.host_to_device`). Order: noise, smoothing, scaling, shift, gamma,
solarisation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from sspcmr.transforms.geometry import _check_prob, _check_range
from sspcmr.transforms.host_to_device import host_to_device

__all__ = [
    "IntensityAugmentation",
    "IntensityParams",
    "standardise",
    "gaussian_kernels",
    "gaussian_smooth",
    "adjust_contrast",
    "sample_intensity",
    "apply_intensity",
]


@dataclass(frozen=True)
class IntensityAugmentation:
    """Probabilities and ranges of the intensity transforms; defaults are the reference baseline recipe.

    Attributes:
        noise_prob: Probability of Gaussian noise (MONAI ``RandGaussianNoised``).
        noise_std: s ~ U(0, noise_std) per sample (``sample_std=True``), then N(0, s²) per pixel.
        smooth_prob: Probability of Gaussian smoothing (``RandGaussianSmoothd``).
        smooth_sigma: σ ~ U(low, high) in output pixels, drawn independently for dim0 and dim1.
        scale_prob: Probability of intensity scaling (``RandScaleIntensityd``).
        scale_range: f ~ U(low, high).
        scale_convention: ``"monai"``: x·(1 + f), the reference behaviour; ``"multiplier"``: x·f.
        shift_prob: Probability of an intensity shift (``RandShiftIntensityd``).
        shift_range: o ~ U(low, high), x ← x + o.
        gamma_prob: Probability of gamma contrast (``RandAdjustContrastd``).
        gamma_range: γ ~ U(low, high).
        solarize_prob: Probability of DINO solarisation (one decision per image).
        solarize_threshold: Pixels above it (standardised units) become max - value.
    """

    noise_prob: float = 0.2
    noise_std: float = 0.2
    smooth_prob: float = 0.2
    smooth_sigma: tuple[float, float] = (0.5, 1.5)
    scale_prob: float = 1.0
    scale_range: tuple[float, float] = (0.6, 1.5)
    scale_convention: Literal["monai", "multiplier"] = "monai"
    shift_prob: float = 1.0
    shift_range: tuple[float, float] = (-0.4, 0.4)
    gamma_prob: float = 1.0
    gamma_range: tuple[float, float] = (0.7, 1.5)
    solarize_prob: float = 0.0
    solarize_threshold: float = 0.0

    def __post_init__(self) -> None:
        for name in ("noise_prob", "smooth_prob", "scale_prob", "shift_prob", "gamma_prob", "solarize_prob"):
            _check_prob(name, getattr(self, name))
        if self.noise_std < 0:
            raise ValueError(f"noise_std must be non-negative, got {self.noise_std}")
        _check_range("smooth_sigma", self.smooth_sigma, positive=True)
        _check_range("scale_range", self.scale_range)
        _check_range("shift_range", self.shift_range)
        _check_range("gamma_range", self.gamma_range, positive=True)
        if self.scale_convention not in ("monai", "multiplier"):
            raise ValueError(f"scale_convention must be 'monai' or 'multiplier', got {self.scale_convention!r}")

    @classmethod
    def none(cls) -> IntensityAugmentation:
        """Standardisation only (validation, test and inference)."""
        return cls(noise_prob=0.0, smooth_prob=0.0, scale_prob=0.0, shift_prob=0.0, gamma_prob=0.0)

    @classmethod
    def dino_base(cls, scale_convention: Literal["monai", "multiplier"] = "monai") -> IntensityAugmentation:
        """The DINO base recipe: the baseline ranges at lower probabilities."""
        return cls(
            noise_prob=0.15,
            smooth_prob=0.1,
            scale_prob=0.2,
            scale_convention=scale_convention,
            shift_prob=0.15,
            gamma_prob=0.15,
        )


@dataclass
class IntensityParams:
    """Per-sample parameters drawn on the CPU. ``*_apply`` are (B,) bool; values are float32.

    Attributes:
        noise_apply, noise_std: (B,) decision and s.
        noise_seed: Seed of the per-pixel noise generator on the image's device.
        smooth_apply, smooth_sigma: (B,) decision and (B, 2) σ for (dim0, dim1).
        scale_apply, scale_factor: (B,) decision and raw f (see ``multiplier``).
        shift_apply, shift_offset: (B,) decision and o.
        gamma_apply, gamma: (B,) decision and γ.
        solarize_apply: (B,) decision.
        solarize_threshold: Solarisation threshold.
        multiplier: (B,) effective multiplier, 1 where scaling is not applied.
    """

    noise_apply: torch.Tensor
    noise_std: torch.Tensor
    noise_seed: int
    smooth_apply: torch.Tensor
    smooth_sigma: torch.Tensor
    scale_apply: torch.Tensor
    scale_factor: torch.Tensor
    multiplier: torch.Tensor
    shift_apply: torch.Tensor
    shift_offset: torch.Tensor
    gamma_apply: torch.Tensor
    gamma: torch.Tensor
    solarize_apply: torch.Tensor
    solarize_threshold: float = 0.0


def sample_intensity(
    batch_size: int, config: IntensityAugmentation, generator: torch.Generator | None
) -> IntensityParams:
    """Draw all per-sample parameters on the CPU, always in the same order whatever the probabilities."""

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, dtype=torch.float64)

    def uniform(bounds: tuple[float, float], *shape: int) -> torch.Tensor:
        return (bounds[0] + rand(*shape) * (bounds[1] - bounds[0])).float()

    b = batch_size
    noise_apply, noise_std = rand(b) < config.noise_prob, uniform((0.0, config.noise_std), b)
    noise_seed = int(torch.randint(2**62, (1,), generator=generator))
    smooth_apply, smooth_sigma = rand(b) < config.smooth_prob, uniform(config.smooth_sigma, b, 2)
    scale_apply, scale_factor = rand(b) < config.scale_prob, uniform(config.scale_range, b)
    # The multiplier is formed in float64 and rounded once, as MONAI's python-float (1 + f) is.
    mult = (1.0 + scale_factor.double()) if config.scale_convention == "monai" else scale_factor.double()
    multiplier = torch.where(scale_apply, mult, 1.0).float()
    shift_apply, shift_offset = rand(b) < config.shift_prob, uniform(config.shift_range, b)
    gamma_apply, gamma = rand(b) < config.gamma_prob, uniform(config.gamma_range, b)
    solarize_apply = rand(b) < config.solarize_prob
    return IntensityParams(
        noise_apply, noise_std, noise_seed, smooth_apply, smooth_sigma, scale_apply, scale_factor, multiplier,
        shift_apply, shift_offset, gamma_apply, gamma, solarize_apply, config.solarize_threshold,
    )  # fmt: skip


def standardise(image: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(x - μ) / σ per sample: image (B, C, H, W) or (B,), mean and std (B,)."""
    view = (-1,) + (1,) * (image.dim() - 1)
    inv = 1.0 / host_to_device(std, image.device, image.dtype).view(view)
    mean = host_to_device(mean, image.device, image.dtype)
    return torch.addcmul(-mean.view(view) * inv, image, inv)  # one pass over the pixels


def gaussian_kernels(
    sigma: torch.Tensor, truncated: float = 4.0, device: torch.device | str | None = None
) -> torch.Tensor:
    """MONAI's ``gaussian_1d(approx="erf")`` kernels for many σ, zero-padded to the longest.

    Args:
        sigma: (n,) float32 standard deviations in pixels. On the host (as :func:`sample_intensity` draws
            them) the kernel length is known without a device synchronisation; on a device it is read from it.
        truncated: Tail length in σ (MONAI's default 4).
        device: Where the kernels are computed (None: ``sigma``'s device).

    Returns:
        (n, 2T + 1) float32 kernels centred on index T, where T is the largest tail; entries beyond a
        kernel's own tail ``int(max(4σ, 0.5) + 0.5)`` are zero. Not normalised, as in MONAI.
    """
    sigma = sigma.float()
    # MONAI computes the tail in python floats from the float32 σ.
    tails = ((sigma.double() * truncated).clamp(min=0.5) + 0.5).floor().long()
    t_max = int(tails.max()) if tails.numel() else 0  # the output's shape: read where σ lives
    device = sigma.device if device is None else torch.device(device)
    sigma, tails = host_to_device(sigma, device), host_to_device(tails, device)
    x = torch.arange(-t_max, t_max + 1, dtype=torch.float32, device=device)[None, :]
    t = 0.70710678 / sigma.abs()[:, None]
    kernel = (0.5 * ((t * (x + 0.5)).erf() - (t * (x - 0.5)).erf())).clamp(min=0)
    return kernel * (x.abs() <= tails[:, None]).float()


def gaussian_smooth(image: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian smoothing with per-sample σ, zero padding at the borders (MONAI ``GaussianSmooth``).

    Args:
        image: (n, C, H, W).
        sigma: (n, 2) σ in pixels for (dim0, dim1), on any device; on the host (as drawn) the kernels are
            built on the image's device without a host synchronisation.

    Returns:
        (n, C, H, W) filtered along dim0 then dim1, as MONAI's ``separable_filtering`` does.
    """
    n, c, h, w = image.shape
    x = image.reshape(1, n * c, h, w)  # one grouped convolution: a group per (sample, channel)
    for axis in (0, 1):
        kernel = gaussian_kernels(sigma[:, axis], device=image.device).to(image.dtype).repeat_interleave(c, dim=0)
        half = (kernel.shape[1] - 1) // 2
        if axis == 0:
            x = F.conv2d(x, kernel[:, None, :, None], padding=(half, 0), groups=n * c)
        else:
            x = F.conv2d(x, kernel[:, None, None, :], padding=(0, half), groups=n * c)
    return x.reshape(n, c, h, w)


def adjust_contrast(image: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """MONAI ``AdjustContrast`` per sample: ((x - m)/(M - m + 1e-7))^γ · (M - m) + m, m/M per image.

    Args:
        image: (n, C, H, W); min and max are taken over each whole image, padding included.
        gamma: (n,) γ.
    """
    lo = image.amin(dim=(1, 2, 3), keepdim=True)
    span = image.amax(dim=(1, 2, 3), keepdim=True) - lo
    # MONAI's arithmetic, in place on one fresh tensor: same results, fewer large allocations.
    out = image - lo
    out.div_(span + 1e-7).pow_(host_to_device(gamma, image.device, image.dtype).view(-1, 1, 1, 1))
    return out.mul_(span).add_(lo)


def _on_subset(
    image: torch.Tensor,
    apply: torch.Tensor,
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    owned: bool,
) -> tuple[torch.Tensor, bool]:
    """Run ``fn(images, cpu_indices)`` only on the samples where the CPU mask ``apply`` is True.

    ``owned`` says whether ``image`` may be written in place; returns the result and whether it is owned.
    """
    idx = apply.nonzero().flatten()
    if idx.numel() == 0:
        return image, owned
    if idx.numel() == image.shape[0]:
        return fn(image, idx), True
    dev_idx = host_to_device(idx, image.device)
    out = image if owned else image.clone()
    out[dev_idx] = fn(image[dev_idx], idx)
    return out, True


def _noise(image: torch.Tensor, idx: torch.Tensor, params: IntensityParams) -> torch.Tensor:
    # Per-pixel noise is drawn on the image's device from a generator seeded by the CPU stream,
    # so seeded runs repeat exactly on any device.
    gen = torch.Generator(device=image.device).manual_seed(params.noise_seed)
    noise = torch.randn(image.shape, generator=gen, device=image.device, dtype=image.dtype)
    return noise.mul_(host_to_device(params.noise_std[idx], image.device, image.dtype).view(-1, 1, 1, 1)).add_(image)


def apply_intensity(
    image: torch.Tensor, params: IntensityParams, max_value: torch.Tensor | None = None, inplace: bool = False
) -> torch.Tensor:
    """Apply noise, smoothing, scaling, shift, gamma and solarisation, each where its decision is True.

    Args:
        image: (B, C, H, W) standardised images on any device.
        params: From :func:`sample_intensity` with the same B.
        max_value: (B,) standardised subject maximum, needed only if solarisation applies anywhere.
        inplace: Allow writing into ``image`` (saves large allocations when the caller owns it).

    Returns:
        (B, C, H, W); without ``inplace`` the input is never modified (it is returned as is when no
        transform applies).
    """
    view = (-1, 1, 1, 1)
    owned = inplace
    # Every decision below reads the parameters, which live on the host: no device synchronisation.
    image, owned = _on_subset(image, params.noise_apply, lambda x, i: _noise(x, i, params), owned)
    image, owned = _on_subset(
        image, params.smooth_apply, lambda x, i: gaussian_smooth(x, params.smooth_sigma[i]), owned
    )
    if bool((params.scale_apply | params.shift_apply).any()):
        # x·m + o; m = 1 and o = 0 where a transform is not applied leave x exactly unchanged.
        offset = torch.where(params.shift_apply, params.shift_offset, 0.0)
        offset = host_to_device(offset, image.device, image.dtype).view(view)
        multiplier = host_to_device(params.multiplier, image.device, image.dtype).view(view)
        image = image.mul_(multiplier).add_(offset) if owned else torch.addcmul(offset, image, multiplier)
        owned = True
    image, owned = _on_subset(image, params.gamma_apply, lambda x, i: adjust_contrast(x, params.gamma[i]), owned)
    if bool(params.solarize_apply.any()):
        if max_value is None:
            raise ValueError("solarisation needs the standardised subject maximum")
        flip = host_to_device(params.solarize_apply, image.device).view(view) & (image > params.solarize_threshold)
        image = torch.where(flip, host_to_device(max_value, image.device, image.dtype).view(view) - image, image)
    return image
