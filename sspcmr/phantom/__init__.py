"""Synthetic 4D cine CMR phantom written in the M&Ms and M&Ms-2 download layouts.

The phantom is the embedded default data of sspcmr: every demo and test runs on it, and real
M&Ms / M&Ms-2 downloads drop in unchanged. See ``docs/synthetic-data.md``.

Example:
    >>> from sspcmr.phantom import generate_dataset
    >>> summary = generate_dataset("data/synthetic", layout="both", subjects=4, seed=0, size="tiny")
"""

from .generate import generate_dataset, mnms_codes
from .heart import LABEL_BACKGROUND, LABEL_LV, LABEL_MYO, LABEL_RV, HeartModel
from .profiles import DEFAULT_VENDORS, SIZE_PRESETS, VENDOR_PROFILES, OrientationConvention, VendorProfile
from .subject import SyntheticSubject, synthesise_subject
from .summary import format_summary
from .writers import MNMS2_CSV, MNMS2_CSV_COLUMNS, MNMS_CSV, MNMS_CSV_COLUMNS, TRUTH_DIR

__all__ = [
    "DEFAULT_VENDORS",
    "HeartModel",
    "LABEL_BACKGROUND",
    "LABEL_LV",
    "LABEL_MYO",
    "LABEL_RV",
    "MNMS2_CSV",
    "MNMS2_CSV_COLUMNS",
    "MNMS_CSV",
    "MNMS_CSV_COLUMNS",
    "OrientationConvention",
    "SIZE_PRESETS",
    "SyntheticSubject",
    "TRUTH_DIR",
    "VENDOR_PROFILES",
    "VendorProfile",
    "format_summary",
    "generate_dataset",
    "mnms_codes",
    "synthesise_subject",
]
