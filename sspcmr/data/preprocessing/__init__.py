"""The preprocessing shared by ``sspcmr prepare`` and inference on plain NIfTI files.

A raw short-axis stack is cropped to its non-zero in-plane box and reoriented with axis swaps and flips
only (:mod:`.orientation`, :mod:`.grid`), and its intensity statistics are taken over the whole cropped
cine (:mod:`.intensity`). ``sspcmr prepare`` stores the result; ``sspcmr segment`` computes it for each
input file, so a model sees the same input whichever way a stack reaches it.
"""

from .grid import PreparedGrid, to_raw_grid
from .intensity import IntensityStatistics, intensity_statistics
from .orientation import Reorientation, apply_reorientation, border_box, choose_reorientation, crop_affine, spacing_of

__all__ = [
    "IntensityStatistics",
    "PreparedGrid",
    "Reorientation",
    "apply_reorientation",
    "border_box",
    "choose_reorientation",
    "crop_affine",
    "intensity_statistics",
    "spacing_of",
    "to_raw_grid",
]
