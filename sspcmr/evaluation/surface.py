"""Surface distances between predicted and ground-truth structures: HD95 and ASSD per class, in mm.

The reference does not compute them (its docs/reference.md#evaluation-dice has Dice only); the rule for missing
structures is explicit instead: both empty → 0.0 mm (absence correctly predicted, the analogue of Dice 1; MONAI returns
NaN here); exactly one empty → NaN, never a number, so it cannot silently improve (or worsen) a mean. The
summaries in :mod:`sspcmr.evaluation.summary` report these cases as ``n_missing`` per metric and can
optionally substitute a penalty (the volume's field-of-view diagonal in mm, stored per volume as
``diagonal_mm``, or a constant). MONAI returns ``inf`` for this case.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from sspcmr.evaluation.label_maps import LabelVolume, check_pair, check_spacing

__all__ = ["SurfaceDistances", "surface_distances"]


class SurfaceDistances(NamedTuple):
    """Surface distances of one structure in one volume.

    Attributes:
        hd95: Symmetric 95th-percentile Hausdorff distance in mm; 0.0 if both masks are empty, NaN if exactly
            one is.
        assd: Average symmetric surface distance in mm; same empty rules.
        missing: True iff exactly one of prediction and ground truth is empty.
    """

    hd95: float
    assd: float
    missing: bool


def _surface(mask: np.ndarray) -> np.ndarray:
    # Surface voxels: in the mask with a 6-connected neighbour outside it (or on the array border), the same
    # edges as MONAI's get_mask_edges (scipy binary_erosion with its default structure, border value 0).
    return mask & ~ndimage.binary_erosion(mask)


def _class_surface_distances(
    pred_mask: np.ndarray, gt_mask: np.ndarray, spacing: tuple[float, float, float], percentile: float
) -> SurfaceDistances:
    pred_any, gt_any = bool(pred_mask.any()), bool(gt_mask.any())
    if not pred_any and not gt_any:
        return SurfaceDistances(0.0, 0.0, False)
    if pred_any != gt_any:
        return SurfaceDistances(math.nan, math.nan, True)
    # Crop to the union's bounding box plus one voxel: erosion and exact distances are unchanged
    # (every surface voxel lies inside), the distance transforms get much smaller.
    coords = np.argwhere(pred_mask | gt_mask)
    low = np.maximum(coords.min(axis=0) - 1, 0)
    high = np.minimum(coords.max(axis=0) + 2, pred_mask.shape)
    box = tuple(slice(lo, hi) for lo, hi in zip(low, high, strict=True))
    surface_pred, surface_gt = _surface(pred_mask[box]), _surface(gt_mask[box])
    # Exact Euclidean distance (mm) from every voxel to the nearest surface voxel of the other mask.
    pred_to_gt = ndimage.distance_transform_edt(~surface_gt, sampling=spacing)[surface_pred]
    gt_to_pred = ndimage.distance_transform_edt(~surface_pred, sampling=spacing)[surface_gt]
    hd = max(float(np.percentile(pred_to_gt, percentile)), float(np.percentile(gt_to_pred, percentile)))
    assd = float(np.concatenate([pred_to_gt, gt_to_pred]).mean())
    return SurfaceDistances(hd, assd, False)


def surface_distances(
    pred: LabelVolume,
    gt: LabelVolume,
    spacing: Sequence[float],
    classes: Sequence[int] = (1, 2, 3),
    percentile: float = 95.0,
) -> dict[int, SurfaceDistances]:
    """HD95 and ASSD in mm per class between 3D surfaces, honouring anisotropic spacing.

    Surfaces are the mask voxels with at least one 6-connected neighbour outside the mask (the whole first
    and last labelled slices are surface, as in any 3D surface metric). Distances are exact Euclidean
    distances between surface-voxel centres in mm. With ``d(A→B)`` the distances from each surface voxel of
    A to the nearest surface voxel of B (MONAI's conventions, ``compute_hausdorff_distance(percentile=95,
    directed=False)`` and ``compute_average_surface_distance(symmetric=True)``):

    * ``hd95 = max(P95(d(P→G)), P95(d(G→P)))``, percentiles with linear interpolation;
    * ``assd = mean(concat(d(P→G), d(G→P)))``, i.e. weighted by the number of surface voxels of each side.

    Empty rules (see the module docstring): both empty → 0.0 and ``missing=False``; exactly one empty → NaN
    for both distances and ``missing=True`` (MONAI gives NaN and inf for these two cases).

    Args:
        pred: Predicted label map ``(Z, H, W)``.
        gt: Ground-truth label map of the same shape.
        spacing: Voxel spacing ``(dz, dy, dx)`` in mm.
        classes: Labels to score.
        percentile: Hausdorff percentile in [0, 100]; 100 gives the classic Hausdorff distance.

    Returns:
        ``{label: SurfaceDistances}`` in the order of ``classes``.

    Raises:
        ValueError: On mismatched shapes, bad spacing or a percentile outside [0, 100].
    """
    pred_array, gt_array = check_pair(pred, gt)
    values = check_spacing(spacing)
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must lie in [0, 100], got {percentile}")
    return {int(c): _class_surface_distances(pred_array == c, gt_array == c, values, percentile) for c in classes}
