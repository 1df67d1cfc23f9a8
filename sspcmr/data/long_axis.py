"""Where the long-axis planes cut each short-axis slice, and the heatmap targets drawn from those lines.

Zhang et al. (section 4.1): the two-chamber (2ch) and four-chamber (4ch) long-axis planes are prescribed
from cardiac landmarks, so their intersection lines with a short-axis slice carry anatomy. A line is
kept as ``(A, B, C)`` with ``A h + B w + C = 0`` in the *native pixel-index* coordinates of the prepared
short-axis slice: ``h`` indexes dim0 (rows) and ``w`` dim1 (columns) of the (H, W) slice that
``PreparedDataset.image(s)[t, z]`` returns. The prepared affine (``meta["affine"]``) maps voxel
``(h, w, z)`` of the prepared (H, W, Z) array to world (``sspcmr.data.prepare.subject`` stores the
cine (H, W, Z, T) transposed to (T, Z, H, W), and its reorientation updates the affine along with every
swap and flip), so the line follows from the two affines alone. The geometry does not change over the
cardiac cycle, so every frame of a slice has the same lines.

The heatmap targets are recomputed on the augmented output grid from the native line and the
``affine_grid`` matrix ``THETA`` of the augmentation (which the spec allows instead of warping a heatmap
image). This is exact: the composed map from output pixels to native pixels is affine, so the native line
is a line on the output grid too, and the distance to it is measured there, in output pixels.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

VIEWS = ("2ch", "4ch")  # channel order of LA_LINES / LA_VALID
PARALLEL_TOLERANCE = 1e-3  # |sin| of the angle between the planes below which they count as parallel

log = logging.getLogger(__name__)


def intersection_line(sa_affine: np.ndarray, slice_index: int, la_affine: np.ndarray,
                      tolerance: float = PARALLEL_TOLERANCE) -> np.ndarray | None:
    """The line where a long-axis plane cuts short-axis slice ``slice_index``, in native pixel indices.

    Args:
        sa_affine: (4, 4) voxel-to-world affine of the prepared short-axis array (H, W, Z): voxel
            ``(h, w, k)``, h along dim0 (rows) and w along dim1 (columns) of a slice, k the slice index.
        slice_index: k of the slice.
        la_affine: (4, 4) voxel-to-world affine of the long-axis image; its plane is the one of voxels
            ``(i, j, 0)``: through ``la_affine[:3, 3]``, spanned by ``la_affine[:3, 0]`` and ``la_affine[:3, 1]``.
        tolerance: planes whose normals make an angle with sine below this are parallel.

    Returns:
        (3,) float64 ``(A, B, C)`` with ``A h + B w + C = 0`` on the line and ``A^2 + B^2 = 1``, so
        ``|A h + B w + C|`` is the distance of pixel (h, w) from the line *in index units* of the (h, w)
        grid: in pixels when the in-plane spacing is isotropic (as it is for cine MR), not in mm otherwise.
        None when the planes are parallel (no line) or the affines are degenerate.
    """
    sa, la = np.asarray(sa_affine, dtype=np.float64), np.asarray(la_affine, dtype=np.float64)
    normal = np.cross(la[:3, 0], la[:3, 1])
    norm = np.linalg.norm(normal)
    lengths = np.linalg.norm(sa[:3, :2], axis=0)
    if norm == 0 or not (lengths > 0).all():
        return None
    normal = normal / norm
    # A world point of the slice is O + h a0 + w a1 + k a2; it lies on the long-axis plane when
    # n . (point - Q) = 0, which is linear in (h, w).
    a, b = float(normal @ sa[:3, 0]), float(normal @ sa[:3, 1])
    c = float(normal @ (sa[:3, 3] + slice_index * sa[:3, 2] - la[:3, 3]))
    # (a / |a0|, b / |a1|) are the direction cosines of n in the slice plane: near 0 means the long-axis
    # normal is (nearly) the slice normal, so the planes are parallel. Scale-free, unlike |(a, b)|.
    if np.hypot(a / lengths[0], b / lengths[1]) < tolerance:
        return None
    scale = np.hypot(a, b)
    return np.array([a, b, c]) / scale


def slice_lines(meta: dict, n_slices: int, views: tuple[str, ...] = VIEWS) -> tuple[np.ndarray, np.ndarray]:
    """Intersection lines of every slice of a prepared subject with each of its long-axis views.

    Args:
        meta: the subject's ``PreparedDataset.meta``: ``affine`` and, for subjects with long-axis views,
            ``long_axis`` {view: {"shape", "affine"}}.
        n_slices: slices of the short-axis stack.
        views: long-axis views, in channel order.

    Returns:
        ``lines`` (Z, K, 3) float32 (zeros where invalid) and ``valid`` (Z, K) bool: False for a view
        the subject lacks or a slice parallel to the view's plane (logged as a warning).
    """
    lines = np.zeros((n_slices, len(views), 3), dtype=np.float32)
    valid = np.zeros((n_slices, len(views)), dtype=bool)
    geometry = meta.get("long_axis") or {}
    for k, view in enumerate(views):
        if view not in geometry:
            continue
        parallel = []
        for z in range(n_slices):
            line = intersection_line(meta["affine"], z, geometry[view]["affine"])
            if line is None:
                parallel.append(z)
            else:
                lines[z, k], valid[z, k] = line, True
        if parallel:
            log.warning("%s %s: the %s plane is parallel to short-axis slice(s) %s; no target there",
                        meta.get("dataset", "?"), meta.get("subject", "?"), view, parallel)
    return lines, valid


def output_lines(lines: torch.Tensor, theta: torch.Tensor, padded: tuple[int, int], size_out: int) -> torch.Tensor:
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
        padded: (Hc, Wc) of the canvas ``theta`` refers to.
        size_out: S, the output side.

    Returns:
        (B, K, 3) float32 on ``lines``' device; rows of all-zero input lines come back as zeros.
    """
    device = lines.device
    hc, wc = padded
    s = float(size_out)
    to_norm = torch.tensor([[0.0, 2 / s, 1 / s - 1], [2 / s, 0.0, 1 / s - 1], [0.0, 0.0, 1.0]],
                           dtype=torch.float64, device=device)  # (r, c, 1) -> (x, y, 1)
    to_native = torch.tensor([[0.0, hc / 2, (hc - 1) / 2], [wc / 2, 0.0, (wc - 1) / 2], [0.0, 0.0, 1.0]],
                             dtype=torch.float64, device=device)  # (x, y, 1) -> (h, w, 1)
    full = torch.zeros(theta.shape[0], 3, 3, dtype=torch.float64, device=device)
    full[:, :2] = theta.to(device=device, dtype=torch.float64)
    full[:, 2, 2] = 1.0
    chain = to_native @ full @ to_norm  # (B, 3, 3): (r, c, 1) -> (h, w, 1)
    out = lines.to(torch.float64) @ chain  # row vectors: (A, B, C) . chain . (r, c, 1)^T
    scale = torch.linalg.vector_norm(out[..., :2], dim=-1, keepdim=True)
    return torch.where(scale > 0, out / scale.clamp(min=1e-12), torch.zeros_like(out)).float()


def render_heatmaps(lines: torch.Tensor, valid: torch.Tensor, theta: torch.Tensor, padded: tuple[int, int],
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
        padded: (Hc, Wc) of the zero-padded native canvas ``theta`` refers to (``PADDED``).
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
