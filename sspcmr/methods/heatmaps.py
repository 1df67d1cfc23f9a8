"""The Orientation method's targets: Gaussian heatmaps of the long-axis lines on the augmented output grid.

The heatmaps are recomputed on the augmented output grid from the native line
(:func:`sspcmr.data.long_axis.slice_lines`) and the ``affine_grid`` matrix ``THETA`` of the augmentation,
instead of warping a heatmap image. This is exact: the composed map from output pixels to native pixels is
affine, so the native line is a line on the output grid too, and the distance to it is measured there, in
output pixels.
"""

from __future__ import annotations

import torch

from sspcmr.transforms.host_to_device import host_to_device

__all__ = ["output_lines", "render_heatmaps"]

Canvas = tuple[int, int] | torch.Tensor


def _to_native(padded: Canvas, batch: int, device: torch.device) -> torch.Tensor:
    """(B, 3, 3) float64 maps from canvas-normalised (x, y, 1) to native pixel indices (h, w, 1), built on
    ``device`` from the canvas size: no host synchronisation, whether it is given on the host or the device."""
    size = torch.tensor(padded) if isinstance(padded, tuple) else padded
    size = host_to_device(size, device, torch.float64).reshape(-1, 2).expand(batch, 2)
    hc, wc = size[:, 0], size[:, 1]
    out = torch.zeros(batch, 3, 3, dtype=torch.float64, device=device)
    out[:, 0, 1], out[:, 0, 2] = hc / 2, (hc - 1) / 2
    out[:, 1, 0], out[:, 1, 2] = wc / 2, (wc - 1) / 2
    out[:, 2, 2] = 1.0
    return out


def output_lines(lines: torch.Tensor, theta: torch.Tensor, padded: Canvas, size_out: int) -> torch.Tensor:
    """Native lines re-expressed over the (row, column) pixel indices of the augmented output grid.

    Output pixel (r, c) of an ``size_out`` square grid sits at normalised (x, y) = ((2c + 1) / S - 1,
    (2r + 1) / S - 1) (``affine_grid``, ``align_corners=False``); ``theta`` maps it to normalised
    coordinates of the zero-padded canvas (Hc, Wc) holding the native slice at its top-left, where
    native pixel (h, w) sits at ((2w + 1) / Wc - 1, (2h + 1) / Hc - 1) (the convention of
    :mod:`sspcmr.transforms.geometry`). The composition (r, c) -> (h, w) is affine, so ``A h + B w + C``
    is ``a r + b c + g`` for some (a, b, g); those are returned divided by ``sqrt(a^2 + b^2)``, so
    ``|a r + b c + g|`` is the distance of output pixel (r, c) from the line in output pixels. This holds
    for any affine ``theta`` (rotation, linked or unlinked scale, flips, anisotropic native spacing).

    Args:
        lines: (B, K, 3) native lines (A, B, C) over (h, w).
        theta: (B, 2, 3) ``affine_grid`` matrices output -> padded canvas (``THETA`` of the batch).
        padded: (Hc, Wc) of the canvas ``theta`` refers to: a pair, or the batch's ``PADDED`` tensor ((2,) or
            (B, 2), on any device; it is never read on the host).
        size_out: S, the output side.

    Returns:
        (B, K, 3) float32 on ``lines``' device; rows of all-zero input lines come back as zeros.
    """
    device = lines.device
    s = float(size_out)
    to_norm = torch.zeros(3, 3, dtype=torch.float64, device=device)  # (r, c, 1) -> (x, y, 1)
    to_norm[0, 1] = to_norm[1, 0] = 2 / s  # filled with Python numbers on the device: nothing to copy
    to_norm[0, 2] = to_norm[1, 2] = 1 / s - 1
    to_norm[2, 2] = 1.0
    to_native = _to_native(padded, theta.shape[0], device)  # (x, y, 1) -> (h, w, 1)
    full = torch.zeros(theta.shape[0], 3, 3, dtype=torch.float64, device=device)
    full[:, :2] = theta.to(device=device, dtype=torch.float64)
    full[:, 2, 2] = 1.0
    chain = to_native @ full @ to_norm  # (B, 3, 3): (r, c, 1) -> (h, w, 1)
    out = lines.to(torch.float64) @ chain  # row vectors: (A, B, C) . chain . (r, c, 1)^T
    scale = torch.linalg.vector_norm(out[..., :2], dim=-1, keepdim=True)
    return torch.where(scale > 0, out / scale.clamp(min=1e-12), torch.zeros_like(out)).float()


def render_heatmaps(lines: torch.Tensor, valid: torch.Tensor, theta: torch.Tensor, padded: Canvas,
                    size_out: int, sigma: float = 6.0) -> torch.Tensor:
    """Gaussian line heatmaps (Zhang et al., eq. 1) on the augmented output grid.

    ``G = exp(-d^2 / (2 sigma^2))`` with d the distance of each output pixel from the line in output
    pixels (:func:`output_lines`); in the paper's form ``exp(-(A x + B y + C)^2 / (2 sigma^2 (A^2 + B^2)))``
    with the line written over the output grid. sigma is in output pixels, the network's grid (the paper:
    6 px on 224 px images at about 1.26 mm); the line is not clipped to the native image extent.

    Args:
        lines: (B, K, 3) native lines (A, B, C) over (h, w) (``LA_LINES``).
        valid: (B, K) bool (``LA_VALID``); invalid channels are all zeros.
        theta: (B, 2, 3) the batch's ``THETA``.
        padded: (Hc, Wc) of the zero-padded native canvas ``theta`` refers to: a pair or the batch's ``PADDED``.
        size_out: output side S.
        sigma: Gaussian standard deviation in output pixels.

    Returns:
        (B, K, S, S) float32 in [0, 1] on ``lines``' device.
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0; got {sigma}")
    coefficients = output_lines(lines, theta, padded, size_out)
    index = torch.arange(size_out, device=lines.device, dtype=torch.float32)
    a, b, g = (coefficients[..., i, None, None] for i in range(3))  # (B, K, 1, 1) each
    distance = a * index[:, None] + b * index[None, :] + g  # (B, K, S, S) over (row, column)
    heatmaps = torch.exp(-0.5 * (distance / sigma) ** 2)
    return heatmaps * valid.to(heatmaps.dtype)[..., None, None]
