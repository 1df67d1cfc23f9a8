"""Label maps and voxel spacing as every function of :mod:`sspcmr.evaluation` takes them.

Layout convention:

* a volume is an integer label map of shape ``(Z, H, W)``: slice axis first (base at slice 0 after
  :mod:`sspcmr.data.prepare`), then the two in-plane axes;
* ``spacing`` is ``(dz, dy, dx)`` in mm, in the same axis order. A prepared NIfTI array stored as
  ``(X, Y, Z)`` with spacing ``(s0, s1, s2)`` becomes ``np.moveaxis(labels, -1, 0)`` with spacing
  ``(s2, s0, s1)`` (see :func:`slice_first`).

Labels: 0 background, 1 LV blood pool, 2 LV myocardium, 3 RV (:data:`CLASS_NAMES`). Torch tensors are
accepted and moved to the CPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "CLASS_NAMES",
    "LabelVolume",
    "as_label_volume",
    "check_pair",
    "check_spacing",
    "slice_first",
    "volume_diagonal_mm",
]

CLASS_NAMES: dict[int, str] = {1: "LV", 2: "MYO", 3: "RV"}
"""Foreground labels and the column suffix each uses in the tables."""

LabelVolume = np.ndarray | torch.Tensor


def as_label_volume(labels: LabelVolume, name: str = "labels") -> np.ndarray:
    """Return a ``(Z, H, W)`` integer label map as a numpy array, checking it loudly.

    Args:
        labels: Integer (or boolean) label map, numpy array or torch tensor (any device).
        name: Argument name used in error messages.

    Returns:
        The label map as a numpy array (a view when the input already is one).

    Raises:
        ValueError: If the map is not 3D or not of an integer/boolean dtype (cast float maps, e.g. from
            ``nibabel``'s ``get_fdata``, with ``.astype(np.int64)`` first).
    """
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    array = np.asarray(labels)
    if array.ndim != 3:
        raise ValueError(f"{name} must be a 3D (Z, H, W) label map, got shape {array.shape}")
    if array.dtype.kind not in "iub":
        raise ValueError(f"{name} must have an integer or boolean dtype, got {array.dtype}")
    return array


def check_spacing(spacing: Sequence[float]) -> tuple[float, float, float]:
    """Validate a ``(dz, dy, dx)`` voxel spacing in mm.

    Args:
        spacing: Three positive, finite spacings in mm, in ``(Z, H, W)`` axis order.

    Returns:
        The spacing as a tuple of floats.

    Raises:
        ValueError: If there are not exactly three positive finite values.
    """
    values = tuple(float(s) for s in spacing)
    if len(values) != 3 or not all(math.isfinite(s) and s > 0 for s in values):
        raise ValueError(f"spacing must be three positive finite values (dz, dy, dx) in mm, got {tuple(spacing)}")
    return values  # type: ignore[return-value]


def check_pair(pred: LabelVolume, gt: LabelVolume) -> tuple[np.ndarray, np.ndarray]:
    """Both label maps as numpy arrays (:func:`as_label_volume`); raises ValueError unless their shapes match."""
    pred_array, gt_array = as_label_volume(pred, "pred"), as_label_volume(gt, "gt")
    if pred_array.shape != gt_array.shape:
        raise ValueError(f"pred and gt must have the same shape, got {pred_array.shape} and {gt_array.shape}")
    return pred_array, gt_array


def slice_first(labels: LabelVolume, spacing: Sequence[float]) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Convert a slice-last ``(X, Y, Z)`` label map and its spacing to the ``(Z, H, W)`` convention.

    Args:
        labels: Label map of shape ``(dim0, dim1, Z)`` as stored in NIfTI.
        spacing: ``(s0, s1, s2)`` in mm, in the same axis order.

    Returns:
        ``(labels of shape (Z, dim0, dim1), (s2, s0, s1))``.
    """
    array = as_label_volume(labels)
    s0, s1, s2 = check_spacing(spacing)
    return np.moveaxis(array, -1, 0), (s2, s0, s1)


def volume_diagonal_mm(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """Diagonal of the volume's field of view in mm, ``sqrt(sum((n_i * s_i)^2))``.

    It bounds every surface distance inside the volume, which makes it the natural penalty for a missing
    structure (see :mod:`sspcmr.evaluation.surface`).

    Args:
        shape: ``(Z, H, W)`` voxel counts.
        spacing: ``(dz, dy, dx)`` in mm.

    Returns:
        The diagonal length in mm.
    """
    values = check_spacing(spacing)
    return float(math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, values, strict=True))))
