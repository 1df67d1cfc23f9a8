"""The prepared data set on disk, and reading it back with memory maps.

Layout of a prepared folder::

    manifest.json                 format version, data sets, counts
    subjects.csv                  one row per subject (metadata, frames, geometry, statistics)
    slices.csv                    one row per (subject, slice, frame): the slice index table
    subjects/<dataset>/<ID>/      image.npy (T, Z, H, W), labels.npy (2, Z, H, W) [ED, ES], meta.json
    invalid.csv                   subjects left out by --skip-invalid, with the problem
    corrections.csv               metadata values corrected from the data (e.g. M&Ms ED/ES)

Arrays are opened with ``np.load(mmap_mode="r")``: a 2D slice read touches only its own pages, no
gzip is decoded during training, and many data-loader workers (and DDP ranks) share the page cache
instead of each holding the data set in memory.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from .subject import FORMAT_VERSION, IMAGE_FILE, LABELS_FILE, META_FILE

SUBJECT_COLUMNS = ["dataset", "SubjectID", "Vendor", "VendorName", "Pathology", "ED", "ES", "n_frames", "n_slices",
                   "height", "width", "spacing_0", "spacing_1", "spacing_2", "min", "mean", "std", "max",
                   "gt_center_0", "gt_center_1", "gt_size", "csv_order"]
SLICE_COLUMNS = ["subject_index", "dataset", "subject", "vendor", "pathology", "slice", "n_slices", "position",
                 "frame", "frame_from_ed", "n_frames", "is_ed", "is_es", "labelled", "label_index"]


def subject_folder(root: Path, dataset: str, subject: str) -> Path:
    return root / "subjects" / dataset / subject


def read_meta(folder: Path) -> dict | None:
    """A prepared subject's metadata, or None when absent or unreadable (then it is redone)."""
    try:
        return json.loads((folder / META_FILE).read_text())
    except (OSError, ValueError):
        return None


def subject_row(meta: dict) -> dict:
    spacing, centre = meta["spacing"], meta["gt_center"]
    return {
        "dataset": meta["dataset"], "SubjectID": meta["subject"], "Vendor": meta["vendor"],
        "VendorName": meta["vendor_name"], "Pathology": meta["pathology"], "ED": meta["ed"], "ES": meta["es"],
        "n_frames": meta["n_frames"], "n_slices": meta["n_slices"], "height": meta["height"], "width": meta["width"],
        "spacing_0": spacing[0], "spacing_1": spacing[1], "spacing_2": spacing[2], "min": meta["min"],
        "mean": meta["mean"], "std": meta["std"], "max": meta["max"], "gt_center_0": centre[0],
        "gt_center_1": centre[1], "gt_size": meta["gt_size"], "csv_order": meta["csv_order"],
    }


def slice_rows(index: int, meta: dict) -> pd.DataFrame:
    """The index rows of one subject: every (slice, frame), slice-major."""
    n_slices, n_frames, ed, es = meta["n_slices"], meta["n_frames"], meta["ed"], meta["es"]
    slices = np.repeat(np.arange(n_slices), n_frames)
    frames = np.tile(np.arange(n_frames), n_slices)
    label_index = np.where(frames == ed, 0, np.where(frames == es, 1, -1))
    return pd.DataFrame({
        "subject_index": index, "dataset": meta["dataset"], "subject": meta["subject"], "vendor": meta["vendor"],
        "pathology": meta["pathology"], "slice": slices, "n_slices": n_slices,
        # Reference PCL position: slice / number of slices (base 0); the acquired stack, not the heart extent.
        "position": slices / n_slices, "frame": frames, "frame_from_ed": (frames - ed) % n_frames,
        "n_frames": n_frames, "is_ed": frames == ed, "is_es": frames == es, "labelled": label_index >= 0,
        "label_index": label_index,
    })


class PreparedDataset:
    """Read access to a prepared folder: tables in memory, arrays memory-mapped on first use.

    Args:
        root: the folder written by ``sspcmr prepare``.

    Attributes:
        subjects: the subject table (row order = ``subject_index``).
        slices: the slice index table.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        manifest = self.root / "manifest.json"
        if not manifest.is_file():
            raise DataError(f"{self.root} is not a prepared data set (no manifest.json); run `sspcmr prepare` first")
        info = json.loads(manifest.read_text())
        if info.get("format_version") != FORMAT_VERSION:
            raise DataError(f"prepared with format {info.get('format_version')}, this sspcmr reads {FORMAT_VERSION}; "
                            "run `sspcmr prepare` again", file=manifest)
        self.manifest = info
        self.subjects = pd.read_csv(self.root / "subjects.csv", dtype={"SubjectID": str})
        self.slices = pd.read_csv(self.root / "slices.csv", dtype={"subject": str})
        self._arrays: dict[tuple[int, str], np.ndarray] = {}

    def __getstate__(self) -> dict:
        # Workers and DDP ranks re-open their own memory maps instead of pickling array data.
        state = self.__dict__.copy()
        state["_arrays"] = {}
        return state

    def folder(self, subject_index: int) -> Path:
        row = self.subjects.iloc[subject_index]
        return subject_folder(self.root, row["dataset"], row["SubjectID"])

    def _array(self, subject_index: int, name: str) -> np.ndarray:
        key = (subject_index, name)
        if key not in self._arrays:
            path = self.folder(subject_index) / name
            try:
                self._arrays[key] = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as error:
                raise DataError(f"cannot memory-map prepared array ({error}); run `sspcmr prepare` again",
                                file=path) from None
        return self._arrays[key]

    def image(self, subject_index: int) -> np.ndarray:
        """(T, Z, H, W) cine in source units (int16 or float32), memory-mapped."""
        return self._array(subject_index, IMAGE_FILE)

    def labels(self, subject_index: int) -> np.ndarray:
        """(2, Z, H, W) uint8 labels of [ED, ES], memory-mapped."""
        return self._array(subject_index, LABELS_FILE)

    def meta(self, subject_index: int) -> dict:
        return read_meta(self.folder(subject_index)) or {}

    def metadata_frames(self) -> dict[str, pd.DataFrame]:
        """Per data set, ``SubjectID`` / ``Vendor`` / ``Pathology`` in the original CSV order (for splits)."""
        frames = {}
        for dataset, rows in self.subjects.groupby("dataset", sort=True):
            frames[dataset] = rows.sort_values("csv_order")[["SubjectID", "Vendor", "Pathology"]].reset_index(drop=True)
        return frames
