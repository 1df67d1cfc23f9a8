"""The prepared data set on disk (format 2): its layout, file names, table columns and version.

Layout of a prepared folder::

    manifest.json                      the single pointer: format version, current generation, counts,
                                       size and sha256 of each of its tables
    tables/<generation>/subjects.csv   one row per subject (metadata, frames, geometry, statistics, and
                                       ``folder``: its version folder, relative to the prepared folder)
    tables/<generation>/slices.csv     one row per (subject, slice, frame): the slice index table
    tables/<generation>/invalid.csv    subjects left out by --skip-invalid, with the problem
    tables/<generation>/corrections.csv  metadata values corrected from the data (e.g. M&Ms ED/ES)
    subjects/<dataset>/<ID>/<version>/ image.npy (T, Z, H, W), labels.npy (2, Z, H, W) [ED, ES], meta.json
    .lock                              present while ``sspcmr prepare`` runs (see sspcmr.data.prepare.lock)

Nothing a manifest names is ever changed: a run writes new version folders for the subjects it
prepares and a new table generation, then replaces ``manifest.json`` atomically (the one switch from
the previous state to the new one), and only then deletes what the new manifest no longer names. So
a reader sees the previous data set or the new one, never a mix, whenever a run fails or is killed.
:mod:`.writer` writes this layout, :mod:`.reader` reads and checks it.
"""

from __future__ import annotations

import re
from pathlib import Path

FORMAT_VERSION = 2  # bump when the prepared arrays, metadata or the store layout change meaning
IMAGE_FILE, LABELS_FILE, META_FILE = "image.npy", "labels.npy", "meta.json"
MANIFEST_FILE = "manifest.json"
TABLES_FOLDER = "tables"
SUBJECTS_FOLDER = "subjects"
TABLE_FILES = ("subjects.csv", "slices.csv", "corrections.csv", "invalid.csv")
REPAIR = "run `sspcmr prepare` again on the same raw folder to repair it"
SUBJECT_COLUMNS = ["dataset", "SubjectID", "Vendor", "VendorName", "Pathology", "ED", "ES", "n_frames", "n_slices",
                   "height", "width", "spacing_0", "spacing_1", "spacing_2", "min", "mean", "std", "max",
                   "gt_center_0", "gt_center_1", "gt_size", "csv_order"]
# Where each subject's arrays are and what they hold (subjects.csv only; not part of PreparedDataset.subjects).
FILE_COLUMNS = ["folder", "fingerprint", "image_sha256", "labels_sha256"]
SLICE_COLUMNS = ["subject_index", "dataset", "subject", "vendor", "pathology", "slice", "n_slices", "position",
                 "frame", "frame_from_ed", "n_frames", "is_ed", "is_es", "labelled", "label_index"]
CORRECTION_COLUMNS = ["dataset", "SubjectID", "note"]
INVALID_COLUMNS = ["subject", "file", "problem"]
TABLE_DTYPES = {"subjects.csv": {"SubjectID": str, **{c: str for c in FILE_COLUMNS}},
                "slices.csv": {"subject": str}, "corrections.csv": str, "invalid.csv": str}
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # a data set, subject, version or generation name


def version_folder(root: Path, relative: str) -> Path | None:
    """``root / relative`` when ``relative`` is a well-formed ``subjects/<dataset>/<ID>/<version>``; else None."""
    parts = str(relative).split("/")
    if len(parts) != 4 or parts[0] != SUBJECTS_FOLDER or not all(NAME.fullmatch(p) for p in parts[1:]):
        return None
    return root.joinpath(*parts)


def table_path(root: Path, manifest: dict, name: str) -> Path:
    """Where the current generation's table ``name`` (e.g. ``"slices.csv"``) is."""
    return root / TABLES_FOLDER / manifest["generation"] / name
