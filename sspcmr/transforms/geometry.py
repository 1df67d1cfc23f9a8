"""Batched single-step affine resampling: spacing, size, centring and spatial augmentation in one grid.

Implements docs/reference.md#geometry. In normalised coordinates (``x`` = last array axis,
dim1; ``y`` = dim0; ``align_corners=False``) an output location ``p`` maps to the *native* input location

    p_in = C · D · R · S · (p + t)

and the resulting matrix is then re-expressed in the normalised coordinates of the zero-padded batch
canvas (the native slice occupies its top-left corner), so one ``grid_sample`` call serves a whole
batch of slices of different native sizes. Because the canvas is zero beyond the native extent, this
equals ``grid_sample(..., padding_mode="zeros")`` on each unpadded native slice.

Random parameters are drawn on the CPU with a ``torch.Generator`` (they are few) and copied to the
batch's device without a host synchronisation when the matrices are built; all per-pixel work runs on the
batch's device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from sspcmr.transforms.host_to_device import host_to_device

__all__ = [
    "GeometryAugmentation",
    "affine_from_parameters",
    "sample_affine",
    "build_theta",
    "affine_grid",
    "resample",
    "inverse_theta",
    "resample_to_native",
    "crop_native",
]


def _check_prob(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")


def _check_range(name: str, value: tuple[float, float], positive: bool = False) -> None:
    if len(value) != 2 or value[0] > value[1]:
        raise ValueError(f"{name} must be an ordered pair (low, high), got {value}")
    if positive and value[0] <= 0:
        raise ValueError(f"{name} must be positive, got {value}")


@dataclass(frozen=True)
class GeometryAugmentation:
    """Configuration of the single-step geometric resampling (docs/reference.md#geometry).

    Attributes:
        output_size: Output side length S in pixels (square output).
        output_spacing: Output pixel spacing in mm; the field of view is ``output_size * output_spacing``.
        rotation_prob: Probability of rotating a sample.
        rotation_range: Angle bound r in degrees, θ ~ U(-r, r); positive θ turns the content
            counter-clockwise as displayed with row 0 at the top (see :func:`affine_from_parameters`).
        scale_prob: Probability of scaling a sample.
        scale_range: σ ~ U(low, high), the same for both axes (linked). σ > 1 samples a larger area,
            so anatomy appears smaller (magnification 1/σ).
        flip_prob: Probability of a flip, decided independently per axis.
        translation_prob: Probability of translating a sample.
        translation_range: Bound τ_max in output pixels, τ_k ~ U(-τ_max, τ_max) independently per axis.
        centring: ``"gt"`` centres the crop on the batch's ``CENTER`` (reference augmented pipelines);
            ``"image"`` on the native image centre (reference validation, test and inference).
        centre_convention: How ``CENTER`` is normalised. ``"reference"``: c_norm = 2c/(N-1) - 1, the
            align_corners=True formula the reference uses with an align_corners=False grid (an offset
            of c/(N-1) - 1/2 source pixels, at most half a pixel); ``"exact"``: c_norm = (2c+1)/N - 1.
    """

    output_size: int = 256
    output_spacing: float = 1.25
    rotation_prob: float = 1.0
    rotation_range: float = 180.0
    scale_prob: float = 1.0
    scale_range: tuple[float, float] = (0.7, 1.4)
    flip_prob: float = 0.5
    translation_prob: float = 1.0
    translation_range: float = 40.0
    centring: Literal["gt", "image"] = "gt"
    centre_convention: Literal["reference", "exact"] = "reference"

    def __post_init__(self) -> None:
        if self.output_size <= 0:
            raise ValueError(f"output_size must be positive, got {self.output_size}")
        if self.output_spacing <= 0:
            raise ValueError(f"output_spacing must be positive, got {self.output_spacing}")
        for name in ("rotation_prob", "scale_prob", "flip_prob", "translation_prob"):
            _check_prob(name, getattr(self, name))
        if self.rotation_range < 0:
            raise ValueError(f"rotation_range must be non-negative, got {self.rotation_range}")
        if self.translation_range < 0:
            raise ValueError(f"translation_range must be non-negative, got {self.translation_range}")
        _check_range("scale_range", self.scale_range, positive=True)
        if self.centring not in ("gt", "image"):
            raise ValueError(f"centring must be 'gt' or 'image', got {self.centring!r}")
        if self.centre_convention not in ("reference", "exact"):
            raise ValueError(f"centre_convention must be 'reference' or 'exact', got {self.centre_convention!r}")

    @classmethod
    def none(cls, output_size: int = 256, output_spacing: float = 1.25) -> GeometryAugmentation:
        """No augmentation and image-centre framing: the reference validation/test/inference geometry."""
        return cls(
            output_size=output_size,
            output_spacing=output_spacing,
            rotation_prob=0.0,
            scale_prob=0.0,
            flip_prob=0.0,
            translation_prob=0.0,
            centring="image",
        )


def affine_from_parameters(
    angle: torch.Tensor, scale: torch.Tensor, flip: torch.Tensor, translation: torch.Tensor, output_size: int
) -> torch.Tensor:
    """The random part R · S · T of the mapping, in output normalised coordinates.

    Args:
        angle: (B,) rotation θ in degrees. R = [[cos θ, -sin θ], [sin θ, cos θ]] over (x, y) maps output to
            input coordinates, so the *content* turns by -θ in (x, y); since y (dim0) points down when
            displayed, that is counter-clockwise on screen for θ > 0.
        scale: (B,) σ.
        flip: (B, 2) factors ±1 for (x, y).
        translation: (B, 2) τ in output pixels for (x, y); t = 2τ/S. Content moves by -τ output pixels.
        output_size: S.

    Returns:
        (B, 3, 3) float64 homogeneous matrices.
    """
    angle, scale = angle.double(), scale.double()
    batch = angle.shape[0]
    theta = torch.deg2rad(angle)
    rot = torch.zeros(batch, 3, 3, dtype=torch.float64, device=angle.device)
    rot[:, 0, 0], rot[:, 0, 1] = torch.cos(theta), -torch.sin(theta)
    rot[:, 1, 0], rot[:, 1, 1] = torch.sin(theta), torch.cos(theta)
    rot[:, 2, 2] = 1.0
    # S · T is diagonal scaling of (p + t): [[s_x, 0, s_x t_x], [0, s_y, s_y t_y], [0, 0, 1]].
    s = scale[:, None] * flip.double()
    t = 2.0 * translation.double() / output_size
    st = torch.zeros_like(rot)
    st[:, 0, 0], st[:, 1, 1] = s[:, 0], s[:, 1]
    st[:, :2, 2] = s * t
    st[:, 2, 2] = 1.0
    return rot @ st


def sample_affine(batch_size: int, config: GeometryAugmentation, generator: torch.Generator | None) -> torch.Tensor:
    """Draw per-sample rotation, scale, flips and translation on the CPU.

    Every draw is made regardless of the probabilities, so the generator's stream does not depend on them.
    Order (as in the reference, batched): rotation decision and angle, scale decision and value, flips,
    translation decision and values.

    Returns:
        (B, 3, 3) float64 CPU matrices R · S · T (see :func:`affine_from_parameters`).
    """

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, dtype=torch.float64)

    b = batch_size
    rotate = rand(b) < config.rotation_prob
    angle = torch.where(rotate, (2.0 * rand(b) - 1.0) * config.rotation_range, 0.0)
    do_scale = rand(b) < config.scale_prob
    lo, hi = config.scale_range
    scale = torch.where(do_scale, lo + rand(b) * (hi - lo), 1.0)
    flip = torch.where(rand(b, 2) < config.flip_prob, -1.0, 1.0)
    shift = rand(b) < config.translation_prob
    tau = torch.where(shift[:, None], (2.0 * rand(b, 2) - 1.0) * config.translation_range, 0.0)
    return affine_from_parameters(angle, scale, flip, tau, config.output_size)


def build_theta(
    params: torch.Tensor,
    size: torch.Tensor,
    spacing: torch.Tensor,
    center: torch.Tensor | None,
    padded_size: tuple[int, int] | None,
    config: GeometryAugmentation,
) -> torch.Tensor:
    """The ``affine_grid`` matrix C · D · (R · S · T) mapping output to (padded) input normalised coordinates.

    Args:
        params: (B, 3, 3) random part from :func:`sample_affine` (any device).
        size: (B, 2) native size (dim0, dim1).
        spacing: (B, 2) native spacing in mm (dim0, dim1).
        center: (B, 2) centre in pixel indices (dim0, dim1); required when ``config.centring == "gt"``.
        padded_size: (Hc, Wc) of the zero-padded canvas holding each native slice at [0:H, 0:W], or None
            for the native image's own normalised coordinates.
        config: Output size/spacing, centring and centre convention.

    Returns:
        (B, 2, 3) float32 on ``size``'s device.
    """
    device = size.device
    n_xy = size.to(torch.float64).flip(-1)  # (B, 2) as (x, y) = (dim1, dim0)
    d_xy = config.output_spacing * config.output_size / (spacing.to(torch.float64).flip(-1) * n_xy)
    theta = host_to_device(params[:, :2, :], device, torch.float64) * d_xy[:, :, None]
    if config.centring == "gt":
        if center is None:
            raise ValueError("centring='gt' needs the batch's CENTER")
        c_xy = center.to(torch.float64).flip(-1)
        if config.centre_convention == "reference":
            c_norm = 2.0 * c_xy / (n_xy - 1.0) - 1.0
        else:
            c_norm = (2.0 * c_xy + 1.0) / n_xy - 1.0
        theta[:, :, 2] += c_norm
    if padded_size is not None:
        # align_corners=False: pixel i sits at (2i+1)/N - 1 natively and (2i+1)/Nc - 1 on the canvas,
        # so x_canvas = (x_native + 1) * N / Nc - 1. (Dividing by Python numbers copies nothing to the device.)
        k = torch.stack((n_xy[:, 0] / padded_size[1], n_xy[:, 1] / padded_size[0]), dim=1)
        theta = theta * k[:, :, None]
        theta[:, :, 2] += k - 1.0
    return theta.float()


def affine_grid(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``F.affine_grid(theta, (B, C, height, width), align_corners=False)`` without its batched matmul.

    The sampling grid is separable (column term + row term), so it is built from two small broadcast
    products and one broadcast add, several times faster than the (B, H·W, 3) @ (B, 3, 2) product.

    Args:
        theta: (B, 2, 3).

    Returns:
        (B, height, width, 2) grid of (x, y) input locations.
    """
    b = theta.shape[0]
    xs = (torch.arange(width, device=theta.device, dtype=theta.dtype) * 2 + 1) / width - 1
    ys = (torch.arange(height, device=theta.device, dtype=theta.dtype) * 2 + 1) / height - 1
    col = xs.view(1, 1, width, 1) * theta[:, :, 0].reshape(b, 1, 1, 2)
    row = ys.view(1, height, 1, 1) * theta[:, :, 1].reshape(b, 1, 1, 2) + theta[:, :, 2].reshape(b, 1, 1, 2)
    return col + row


def resample(
    image: torch.Tensor,
    theta: torch.Tensor,
    output_size: int,
    mode: str = "bicubic",
    grid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sample (B, C, Hc, Wc) at the output grid of ``theta``: (B, C, S, S), zeros outside the input.

    Use ``mode="bicubic"`` for images and ``"nearest"`` for (float-cast) label maps. ``grid``, if given,
    replaces ``affine_grid(theta, S, S)`` (e.g. computed once for an image and its label) and sets the
    output size: (B, H', W', 2) gives (B, C, H', W').
    """
    if grid is None:
        grid = affine_grid(theta.to(image.dtype), output_size, output_size)
    return F.grid_sample(image, grid, mode=mode, padding_mode="zeros", align_corners=False)


def inverse_theta(theta: torch.Tensor) -> torch.Tensor:
    """Invert (B, 2, 3) affine matrices as homogeneous 3 × 3 maps; returns (B, 2, 3) of theta's dtype."""
    full = torch.zeros(theta.shape[0], 3, 3, dtype=torch.float64, device=theta.device)
    full[:, :2] = theta.double()
    full[:, 2, 2] = 1.0
    return torch.linalg.inv(full)[:, :2].to(theta.dtype)


def resample_to_native(
    output: torch.Tensor,
    theta: torch.Tensor,
    native_size: torch.Tensor,
    padded_size: tuple[int, int],
    mode: str = "bicubic",
    padding_mode: str = "border",
) -> torch.Tensor:
    """Bring output-space maps (e.g. logits) back onto the padded native canvas.

    The reference inverts the resampling with bicubic interpolation and ``padding_mode="border"``.

    Args:
        output: (B, C, S, S) maps in output space.
        theta: (B, 2, 3) the forward matrices (output → canvas) used to make them.
        native_size: (B, 2) native (dim0, dim1) sizes; canvas pixels beyond them are set to 0.
        padded_size: (Hc, Wc) canvas size.
        mode: Interpolation for ``grid_sample``.
        padding_mode: Padding for ``grid_sample``.

    Returns:
        (B, C, Hc, Wc); sample b's native grid is ``[b, :, :H_b, :W_b]`` (see :func:`crop_native`).
    """
    hc, wc = padded_size
    grid = affine_grid(inverse_theta(theta).to(output.dtype), hc, wc)
    native = F.grid_sample(output, grid, mode=mode, padding_mode=padding_mode, align_corners=False)
    rows = torch.arange(hc, device=output.device)[None, :, None] < native_size[:, 0, None, None].to(output.device)
    cols = torch.arange(wc, device=output.device)[None, None, :] < native_size[:, 1, None, None].to(output.device)
    return native * (rows & cols)[:, None].to(native.dtype)


def crop_native(canvas: torch.Tensor, native_size: torch.Tensor) -> list[torch.Tensor]:
    """Split a (B, C, Hc, Wc) canvas into B tensors (C, H_b, W_b) of each sample's native size."""
    return [canvas[i, :, :h, :w] for i, (h, w) in enumerate(native_size.tolist())]
