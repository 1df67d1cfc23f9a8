"""Clinical indices from label maps: LV/RV volumes, ejection fractions and LV myocardial mass.

Volumes count native-resolution voxels: ``volume_ml = n_voxels * dz * dy * dx / 1000``. Per subject, the ED
and ES volumes of the same source (prediction or ground truth) give

* ``LV_EDV``, ``LV_ESV`` (label 1, LV blood pool) and ``RV_EDV``, ``RV_ESV`` (label 3) in ml;
* ``LV_EF`` and ``RV_EF`` in %, ``EF = (EDV - ESV) / EDV * 100``;
* ``LV_mass`` in g, the ED myocardial volume (label 2) times 1.05 g/ml (myocardial density).

Errors are ``pred - gt`` (signed, ``*_err``) and ``|pred - gt|`` (``*_abserr``).

Missing data is NaN, never a number: a subject without an ED volume has NaN EDV, EF and mass; without an ES
volume NaN ESV and EF; ``complete`` is False in both cases. An EF whose EDV is 0 (e.g. an LV entirely missed
at ED by the prediction) is NaN as well. :func:`sspcmr.evaluation.summary.clinical_summary` counts every NaN
error as ``n_missing``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from sspcmr.evaluation.label_maps import CLASS_NAMES, LabelVolume, as_label_volume, check_pair, check_spacing

__all__ = [
    "INDICES",
    "MYOCARDIAL_DENSITY_G_PER_ML",
    "PhaseVolumes",
    "cardiac_indices",
    "clinical_rows",
    "structure_volumes_ml",
]

MYOCARDIAL_DENSITY_G_PER_ML = 1.05
"""Density used to turn LV myocardial volume into mass (g/ml)."""

INDICES: tuple[str, ...] = ("LV_EDV", "LV_ESV", "LV_EF", "RV_EDV", "RV_ESV", "RV_EF", "LV_mass")
"""Clinical indices in column order; units ml, ml, %, ml, ml, %, g."""

PHASES = ("ED", "ES")


def structure_volumes_ml(labels: LabelVolume, spacing: Sequence[float]) -> dict[str, float]:
    """Volume of each structure in ml: voxel count times voxel volume (mm³) / 1000.

    Args:
        labels: Label map ``(Z, H, W)`` (see :mod:`sspcmr.evaluation.label_maps` for the convention).
        spacing: Voxel spacing ``(dz, dy, dx)`` in mm.

    Returns:
        ``{"LV": ml, "MYO": ml, "RV": ml}``.
    """
    array = as_label_volume(labels)
    voxel_ml = float(np.prod(check_spacing(spacing))) / 1000.0
    counts = np.bincount(array.ravel().astype(np.int64, copy=False), minlength=max(CLASS_NAMES) + 1)
    return {name: float(counts[label]) * voxel_ml for label, name in CLASS_NAMES.items()}


def _ejection_fraction(edv: float, esv: float) -> float:
    if not (math.isfinite(edv) and math.isfinite(esv)) or edv == 0.0:
        return math.nan
    return (edv - esv) / edv * 100.0


def cardiac_indices(ed: Mapping[str, float] | None, es: Mapping[str, float] | None) -> dict[str, float]:
    """Clinical indices of one subject from its ED and ES structure volumes.

    Args:
        ed: ``{"LV", "MYO", "RV"}`` volumes in ml at end-diastole (from :func:`structure_volumes_ml`), or
            None when the subject has no ED volume.
        es: The same at end-systole, or None.

    Returns:
        ``{index: value}`` for every name in :data:`INDICES`; NaN where a needed phase is missing or EDV is 0.
    """
    nan = math.nan
    lv_edv = ed["LV"] if ed is not None else nan
    rv_edv = ed["RV"] if ed is not None else nan
    lv_esv = es["LV"] if es is not None else nan
    rv_esv = es["RV"] if es is not None else nan
    return {
        "LV_EDV": lv_edv,
        "LV_ESV": lv_esv,
        "LV_EF": _ejection_fraction(lv_edv, lv_esv),
        "RV_EDV": rv_edv,
        "RV_ESV": rv_esv,
        "RV_EF": _ejection_fraction(rv_edv, rv_esv),
        "LV_mass": ed["MYO"] * MYOCARDIAL_DENSITY_G_PER_ML if ed is not None else nan,
    }


@dataclass(frozen=True)
class PhaseVolumes:
    """Predicted and ground-truth structure volumes of one (subject, phase).

    Attributes:
        dataset: Dataset name.
        subject: Subject identifier.
        phase: ``"ED"`` or ``"ES"``.
        pred_ml: ``{"LV", "MYO", "RV"}`` predicted volumes in ml.
        gt_ml: The same from the ground truth.
        vendor: Vendor code, ``""`` if unknown.
        pathology: Pathology code, ``""`` if unknown.
    """

    dataset: str
    subject: str
    phase: str
    pred_ml: Mapping[str, float]
    gt_ml: Mapping[str, float]
    vendor: str = ""
    pathology: str = ""

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {self.phase!r}")

    @classmethod
    def from_labels(
        cls, pred: LabelVolume, gt: LabelVolume, spacing: Sequence[float], **identity: str
    ) -> PhaseVolumes:
        """Measure the structure volumes of a predicted and a ground-truth label map.

        Args:
            pred: Predicted label map ``(Z, H, W)``.
            gt: Ground-truth label map of the same shape.
            spacing: Voxel spacing ``(dz, dy, dx)`` in mm.
            **identity: The volume's identity fields of this class, by keyword: ``dataset``, ``subject``,
                ``phase`` and optionally ``vendor`` and ``pathology`` (the same keywords as
                :func:`sspcmr.evaluation.metrics.evaluate_volume`).

        Returns:
            The volumes of this (subject, phase).

        Raises:
            ValueError: On mismatched shapes, bad spacing or an unknown phase.
        """
        pred_array, gt_array = check_pair(pred, gt)
        return cls(**identity, pred_ml=structure_volumes_ml(pred_array, spacing),
                   gt_ml=structure_volumes_ml(gt_array, spacing))


def clinical_rows(volumes: Iterable[PhaseVolumes]) -> list[dict[str, object]]:
    """Pair ED and ES volumes per subject and compute the clinical indices and their errors.

    Args:
        volumes: One :class:`PhaseVolumes` per (subject, phase); subjects are identified by
            ``(dataset, subject)`` and keep their order of first appearance.

    Returns:
        One row per subject with ``dataset, subject, vendor, pathology, has_ED, has_ES, complete`` and, for
        each name in :data:`INDICES`, ``<index>_pred``, ``<index>_gt``, ``<index>_err`` (pred - gt) and
        ``<index>_abserr``.

    Raises:
        ValueError: If a (subject, phase) appears twice or a subject's phases disagree on vendor/pathology.
    """
    subjects: dict[tuple[str, str], dict[str, PhaseVolumes]] = {}
    for volume in volumes:
        phases = subjects.setdefault((volume.dataset, volume.subject), {})
        if volume.phase in phases:
            raise ValueError(f"duplicate volume for {volume.dataset}/{volume.subject} phase {volume.phase}")
        for other in phases.values():
            if (other.vendor, other.pathology) != (volume.vendor, volume.pathology):
                raise ValueError(f"{volume.dataset}/{volume.subject}: phases disagree on vendor/pathology")
        phases[volume.phase] = volume
    rows: list[dict[str, object]] = []
    for (dataset, subject), phases in subjects.items():
        ed, es = phases.get("ED"), phases.get("ES")
        first = next(iter(phases.values()))
        predicted = cardiac_indices(ed.pred_ml if ed else None, es.pred_ml if es else None)
        truth = cardiac_indices(ed.gt_ml if ed else None, es.gt_ml if es else None)
        row: dict[str, object] = {
            "dataset": dataset, "subject": subject, "vendor": first.vendor, "pathology": first.pathology,
            "has_ED": ed is not None, "has_ES": es is not None, "complete": ed is not None and es is not None,
        }
        for index in INDICES:
            error = predicted[index] - truth[index]
            row.update({
                f"{index}_pred": predicted[index], f"{index}_gt": truth[index],
                f"{index}_err": error, f"{index}_abserr": abs(error),
            })
        rows.append(row)
    return rows
