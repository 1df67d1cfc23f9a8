"""Where the long-axis planes cut each short-axis slice (the Orientation method draws its heatmap targets
from these lines: :mod:`sspcmr.methods.heatmaps`).

Zhang et al. (section 4.1): the two-chamber (2ch) and four-chamber (4ch) long-axis planes are prescribed
from cardiac landmarks, so their intersection lines with a short-axis slice carry anatomy. A line is
kept as ``(A, B, C)`` with ``A h + B w + C = 0`` in the *native pixel-index* coordinates of the prepared
short-axis slice: ``h`` indexes dim0 (rows) and ``w`` dim1 (columns) of the (H, W) slice that
``PreparedDataset.image(s)[t, z]`` returns. The prepared affine (``meta["affine"]``) maps voxel
``(h, w, z)`` of the prepared (H, W, Z) array to world (``sspcmr.data.store.writer`` stores the
cine (H, W, Z, T) transposed to (T, Z, H, W), and its reorientation updates the affine along with every
swap and flip), so the line follows from the two affines alone. The geometry does not change over the
cardiac cycle, so every frame of a slice has the same lines.
"""

from __future__ import annotations

import logging

import numpy as np

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
