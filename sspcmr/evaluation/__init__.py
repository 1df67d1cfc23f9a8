"""Lightning-free evaluation at native resolution: metrics, clinical indices and summary tables.

``metrics``: per-volume Dice (docs/reference.md#evaluation-dice), HD95 and ASSD per structure on ``(Z, H, W)`` label
maps with ``(dz, dy, dx)`` spacing, and slice-level Dice against slice position;
``clinical``: LV/RV volumes, EDV, ESV, EF and LV mass per subject, with prediction errors;
``summary``: per-volume, grouped and clinical summary tables (pandas) and the Dice-by-position plot.
"""

from sspcmr.evaluation.clinical import INDICES, PhaseVolumes, cardiac_indices, clinical_rows, structure_volumes_ml
from sspcmr.evaluation.label_maps import CLASS_NAMES, slice_first, volume_diagonal_mm
from sspcmr.evaluation.metrics import VolumeMetrics, dice_per_class, evaluate_volume, slice_dice_rows
from sspcmr.evaluation.summary import (
    QUANTILES,
    clinical_summary,
    dice_by_slice_position,
    plot_dice_by_position,
    summary_tables,
    volume_summary,
    volume_table,
    write_tables,
)
from sspcmr.evaluation.surface import SurfaceDistances, surface_distances

__all__ = [
    "CLASS_NAMES",
    "INDICES",
    "QUANTILES",
    "PhaseVolumes",
    "SurfaceDistances",
    "VolumeMetrics",
    "cardiac_indices",
    "clinical_rows",
    "clinical_summary",
    "dice_by_slice_position",
    "dice_per_class",
    "evaluate_volume",
    "plot_dice_by_position",
    "slice_dice_rows",
    "slice_first",
    "structure_volumes_ml",
    "summary_tables",
    "surface_distances",
    "volume_diagonal_mm",
    "volume_summary",
    "volume_table",
    "write_tables",
]
