"""Per-volume segmentation metrics at native resolution: Dice, HD95 and ASSD per cardiac structure, and
slice-level Dice against the slice's position.

Implements the reference's per-volume 3D Dice over classes 1-3 with its empty-structure rules (8.2); the
surface distances the reference does not compute (HD95, ASSD) come from
:mod:`sspcmr.evaluation.surface`, with its explicit rule for missing structures. Everything here is plain
numpy/scipy: no Lightning, no torch autograd. Label maps and spacing follow the ``(Z, H, W)`` / ``(dz, dy, dx)``
convention of :mod:`sspcmr.evaluation.label_maps`.

Missing-structure rules (used by the tables and summaries):

* **Dice** (docs/reference.md#evaluation-dice, #check-dice): both prediction and ground truth empty → 1.0; exactly one
  empty → 0.0. This equals MONAI ``DiceMetric(include_background=False, ignore_empty=False)``. torchmetrics'
  ``dice_score`` differs only on the both-empty case, where it returns NaN.
* **HD95 / ASSD**: both empty → 0.0 mm; exactly one empty → NaN, reported as ``n_missing`` by
  :mod:`sspcmr.evaluation.summary` (see :mod:`sspcmr.evaluation.surface`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from sspcmr.evaluation.label_maps import CLASS_NAMES, LabelVolume, check_pair, volume_diagonal_mm
from sspcmr.evaluation.surface import surface_distances

__all__ = [
    "VolumeMetrics",
    "dice_per_class",
    "evaluate_volume",
    "slice_dice",
    "slice_dice_rows",
]


def _dice(pred_mask: np.ndarray, gt_mask: np.ndarray) -> float:
    total = int(pred_mask.sum()) + int(gt_mask.sum())
    if total == 0:
        return 1.0  # both empty (docs/reference.md#evaluation-dice); exactly one empty falls out of the formula as 0
    return 2.0 * int(np.logical_and(pred_mask, gt_mask).sum()) / total


def dice_per_class(pred: LabelVolume, gt: LabelVolume, classes: Sequence[int] = (1, 2, 3)) -> dict[int, float]:
    """Volume Dice ``2|P∩G| / (|P| + |G|)`` per class, counting native-resolution voxels
    (docs/reference.md#evaluation-dice).

    Empty rules: both empty → 1.0, exactly one empty → 0.0 (docs/reference.md#check-dice). Identical to MONAI
    ``DiceMetric(include_background=False, ignore_empty=False)`` on one-hot inputs; torchmetrics'
    ``dice_score`` returns NaN instead of 1.0 when both are empty.

    Args:
        pred: Predicted label map ``(Z, H, W)`` (the argmax of the logits, no post-processing).
        gt: Ground-truth label map of the same shape.
        classes: Labels to score.

    Returns:
        ``{label: dice}`` in the order of ``classes``.
    """
    pred_array, gt_array = check_pair(pred, gt)
    return {int(c): _dice(pred_array == c, gt_array == c) for c in classes}


@dataclass(frozen=True)
class VolumeMetrics:
    """All metrics of one (subject, phase) volume, keyed by structure name (:data:`CLASS_NAMES`).

    Attributes:
        dataset: Dataset name (e.g. ``"mm1"``, ``"mm2"``).
        subject: Subject identifier.
        phase: ``"ED"`` or ``"ES"``.
        vendor: Scanner vendor code, ``""`` if unknown.
        pathology: Pathology code, ``""`` if unknown.
        dice: ``{"LV": ..., "MYO": ..., "RV": ...}`` volume Dice.
        hd95: Same keys, HD95 in mm (NaN if the structure is missing from exactly one of pred/gt).
        assd: Same keys, ASSD in mm (same rule).
        diagonal_mm: Field-of-view diagonal in mm, the optional penalty for missing structures.
    """

    dataset: str
    subject: str
    phase: str
    vendor: str = ""
    pathology: str = ""
    dice: dict[str, float] = field(default_factory=dict)
    hd95: dict[str, float] = field(default_factory=dict)
    assd: dict[str, float] = field(default_factory=dict)
    diagonal_mm: float = math.nan

    @property
    def dice_mean(self) -> float:
        """Mean of the per-class Dice (the reference's ``dice_mean``)."""
        return float(np.mean(list(self.dice.values()))) if self.dice else math.nan

    def to_row(self) -> dict[str, object]:
        """Flat row for the per-volume table.

        Returns:
            Columns ``dataset, subject, vendor, pathology, phase, dice_<C>, dice_mean, hd95_<C>, assd_<C>,
            diagonal_mm`` for ``C`` in LV, MYO, RV.
        """
        row: dict[str, object] = {
            "dataset": self.dataset, "subject": self.subject, "vendor": self.vendor,
            "pathology": self.pathology, "phase": self.phase,
        }
        row.update({f"dice_{name}": value for name, value in self.dice.items()})
        row["dice_mean"] = self.dice_mean
        row.update({f"hd95_{name}": value for name, value in self.hd95.items()})
        row.update({f"assd_{name}": value for name, value in self.assd.items()})
        row["diagonal_mm"] = self.diagonal_mm
        return row


def evaluate_volume(
    pred: LabelVolume,
    gt: LabelVolume,
    spacing: Sequence[float],
    *,
    dataset: str,
    subject: str,
    phase: str,
    vendor: str = "",
    pathology: str = "",
) -> VolumeMetrics:
    """Dice, HD95 and ASSD of LV, MYO and RV for one native-resolution volume.

    Args:
        pred: Predicted label map ``(Z, H, W)``.
        gt: Ground-truth label map of the same shape.
        spacing: Voxel spacing ``(dz, dy, dx)`` in mm.
        dataset: Dataset name.
        subject: Subject identifier.
        phase: ``"ED"`` or ``"ES"``.
        vendor: Vendor code, ``""`` if unknown.
        pathology: Pathology code, ``""`` if unknown.

    Returns:
        The volume's :class:`VolumeMetrics`.
    """
    pred_array, gt_array = check_pair(pred, gt)
    classes = tuple(CLASS_NAMES)
    dice = dice_per_class(pred_array, gt_array, classes)
    surfaces = surface_distances(pred_array, gt_array, spacing, classes)
    return VolumeMetrics(
        dataset=dataset, subject=subject, phase=phase, vendor=vendor, pathology=pathology,
        dice={CLASS_NAMES[c]: dice[c] for c in classes},
        hd95={CLASS_NAMES[c]: surfaces[c].hd95 for c in classes},
        assd={CLASS_NAMES[c]: surfaces[c].assd for c in classes},
        diagonal_mm=volume_diagonal_mm(gt_array.shape, spacing),
    )


def slice_dice_rows(
    pred: LabelVolume, gt: LabelVolume, *, dataset: str = "", subject: str = "", phase: str = ""
) -> list[dict[str, object]]:
    """Slice-level Dice of each class with the slice's relative position in the ground-truth extent.

    ``position = (z - first) / (last - first)`` where ``first``/``last`` are the first and last slices with
    any ground-truth foreground (docs/reference.md#evaluation-dice), so 0 is the basal-most and 1 the apical-most
    labelled slice; slices outside the labelled extent get positions below 0 or above 1. Divide-by-zero case (the
    reference's quirk, docs/reference.md#quirk-slice-position): with a single labelled slice its position is **0.5**
    (the centre of a degenerate extent) and other slices get ``0.5 + (z - first)``, i.e. one unit per slice. A volume
    without any ground-truth foreground has position NaN on every slice. Per-slice Dice uses the volume rules
    (both empty → 1, exactly one empty → 0).

    Args:
        pred: Predicted label map ``(Z, H, W)``.
        gt: Ground-truth label map of the same shape.
        dataset: Copied into every row.
        subject: Copied into every row.
        phase: Copied into every row.

    Returns:
        One row per slice: ``dataset, subject, phase, slice, position, gt_present, dice_LV, dice_MYO,
        dice_RV``.
    """
    pred_array, gt_array = check_pair(pred, gt)
    present = (gt_array > 0).reshape(gt_array.shape[0], -1).any(axis=1)
    labelled = np.flatnonzero(present)
    rows: list[dict[str, object]] = []
    for z in range(gt_array.shape[0]):
        if labelled.size == 0:
            position = math.nan
        elif labelled[-1] == labelled[0]:
            position = 0.5 + float(z - labelled[0])
        else:
            position = float(z - labelled[0]) / float(labelled[-1] - labelled[0])
        row: dict[str, object] = {
            "dataset": dataset, "subject": subject, "phase": phase, "slice": z, "position": position,
            "gt_present": bool(present[z]),
        }
        for label, name in CLASS_NAMES.items():
            row[f"dice_{name}"] = _dice(pred_array[z] == label, gt_array[z] == label)
        rows.append(row)
    return rows


def slice_dice(pred: torch.Tensor, target: torch.Tensor, classes: tuple[int, ...] = (1, 2, 3)) -> torch.Tensor:
    """Hard Dice per 2D slice and class (B, C') of (B, H, W) label maps, with the reference's empty rules (both
    empty: 1, one empty: 0): the validation Dice of training and of frozen-feature probes."""
    scores = []
    for c in classes:
        p, g = pred == c, target == c
        inter = (p & g).flatten(1).sum(1).float()
        total = p.flatten(1).sum(1).float() + g.flatten(1).sum(1).float()
        scores.append(torch.where(total > 0, 2 * inter / total.clamp(min=1), torch.ones_like(total)))
    return torch.stack(scores, 1)
