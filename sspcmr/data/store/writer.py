"""Writing the prepared data set (layout in :mod:`.format`): a subject's arrays and ``meta.json``, a new
generation of the tables with its manifest, and the flushed writes the one atomic switch relies on.

A subject folder is complete only once ``meta.json`` is in it (written last, with the sizes and sha256 of
both arrays): ``sspcmr prepare`` writes into a hidden staging folder and renames the finished folder into
place, so an interrupted write is never taken for a prepared subject. Which files are written when, and the
switch itself, are :mod:`sspcmr.data.prepare.run`'s.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .format import (
    CORRECTION_COLUMNS,
    FILE_COLUMNS,
    FORMAT_VERSION,
    IMAGE_FILE,
    INVALID_COLUMNS,
    LABELS_FILE,
    META_FILE,
    SUBJECT_COLUMNS,
    TABLE_FILES,
)

# ----------------------------------------------------------------------------------------------- subjects


@dataclass(frozen=True)
class StoredArrays:
    """What :func:`write_arrays` wrote: the image's storage type and both files' sha256."""

    dtype: str
    image_sha256: str
    labels_sha256: str


def storage_dtype(array: np.ndarray) -> np.dtype:
    """int16 where the values are integers in its range (real M&Ms data), float32 otherwise."""
    lo, hi = float(array.min()), float(array.max())
    integral = array.dtype.kind in "iu" or np.array_equal(array, np.round(array))
    if integral and -32768 <= lo and hi <= 32767:
        return np.dtype(np.int16)
    if integral and array.dtype.kind in "iu" and -2**31 <= lo and hi < 2**31:
        return np.dtype(np.int32)
    return np.dtype(np.float32)


def write_arrays(folder: Path, cine: np.ndarray, labels: np.ndarray) -> StoredArrays:
    """Create ``folder`` (it must not exist) and write a subject's arrays, slice-contiguous for cheap 2D reads.

    Args:
        folder: the subject's (staging) folder.
        cine: (H, W, Z, T) on the prepared grid, in source units; stored as ``image.npy`` (T, Z, H, W) of
            :func:`storage_dtype`.
        labels: (H, W, Z, 2) uint8 [ED, ES]; stored as ``labels.npy`` (2, Z, H, W).
    """
    folder.mkdir(parents=True)
    dtype = storage_dtype(cine)
    image_sha256 = _write(folder / IMAGE_FILE, lambda path: np.save(
        path, np.ascontiguousarray(np.transpose(cine, (3, 2, 0, 1))).astype(dtype, copy=False)))
    labels_sha256 = _write(folder / LABELS_FILE, lambda path: np.save(
        path, np.ascontiguousarray(np.transpose(labels, (3, 2, 0, 1)))))
    return StoredArrays(str(dtype), image_sha256, labels_sha256)


def write_meta(folder: Path, meta: dict) -> None:
    """Write ``meta.json`` (last: it marks the folder complete)."""
    _write(folder / META_FILE, lambda path: path.write_text(json.dumps(meta, indent=1)))


def _write(path: Path, write) -> str:
    """``write(path)``, flushed to disk; returns the file's sha256. An ``OSError`` names ``path``."""
    try:
        write(path)
        digest = hashlib.sha256()
        fd = os.open(path, os.O_RDONLY)
        try:
            while block := os.read(fd, 1 << 20):
                digest.update(block)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as error:
        if error.filename is None:  # a failed write() names no file; the message must
            error.filename = str(path)
        raise
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------------- tables


def subject_row(meta: dict, folder: str) -> dict:
    """The subjects.csv row of a prepared subject whose version folder is ``folder`` (relative to the store)."""
    spacing, centre = meta["spacing"], meta["gt_center"]
    return {
        "dataset": meta["dataset"], "SubjectID": meta["subject"], "Vendor": meta["vendor"],
        "VendorName": meta["vendor_name"], "Pathology": meta["pathology"], "ED": meta["ed"], "ES": meta["es"],
        "n_frames": meta["n_frames"], "n_slices": meta["n_slices"], "height": meta["height"], "width": meta["width"],
        "spacing_0": spacing[0], "spacing_1": spacing[1], "spacing_2": spacing[2], "min": meta["min"],
        "mean": meta["mean"], "std": meta["std"], "max": meta["max"], "gt_center_0": centre[0],
        "gt_center_1": centre[1], "gt_size": meta["gt_size"], "csv_order": meta["csv_order"],
        "folder": folder, "fingerprint": meta["fingerprint"], "image_sha256": meta["image_sha256"],
        "labels_sha256": meta["labels_sha256"],
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


@dataclass
class Generation:
    """A new generation of the tables, not yet written.

    Attributes:
        tables: each of :data:`~.format.TABLE_FILES` as the CSV bytes to write.
        manifest: the manifest naming them (written last: the switch).
        corrections: the rows of ``corrections.csv`` (``dataset``, ``SubjectID``, ``note``).
    """

    tables: dict[str, bytes]
    manifest: dict
    corrections: list[dict]


def new_generation(entries: list[tuple[dict, str]], invalid: list[dict], generation: str) -> Generation:
    """The tables and manifest of a data set.

    Args:
        entries: ``(meta, version folder relative to the store)`` of every subject (not empty), in any
            order; rows (and so ``subject_index``) follow data set, CSV order and subject ID.
        invalid: the rows of ``invalid.csv`` (``subject``, ``file``, ``problem``).
        generation: the generation's name (its tables folder).
    """
    entries = sorted(entries, key=lambda e: (e[0]["dataset"], e[0]["csv_order"], e[0]["subject"]))
    metas = [meta for meta, _ in entries]
    subjects = pd.DataFrame([subject_row(meta, folder) for meta, folder in entries],
                            columns=SUBJECT_COLUMNS + FILE_COLUMNS)
    slices = pd.concat([slice_rows(i, m) for i, m in enumerate(metas)], ignore_index=True)
    corrections = [{"dataset": m["dataset"], "SubjectID": m["subject"], "note": note}
                   for m in metas for note in m.get("notes", [])]
    frames = {
        "subjects.csv": subjects, "slices.csv": slices,
        "corrections.csv": pd.DataFrame(corrections, columns=CORRECTION_COLUMNS),
        "invalid.csv": pd.DataFrame(invalid, columns=INVALID_COLUMNS),
    }
    tables = {name: frames[name].to_csv(index=False).encode() for name in TABLE_FILES}
    manifest = {
        "format_version": FORMAT_VERSION, "generation": generation,
        "created": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "datasets": sorted(subjects["dataset"].unique().tolist()),
        "subjects": len(subjects), "slices": len(slices),
        "tables": {name: {"rows": len(frames[name]), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                   for name, data in tables.items()},
    }
    return Generation(tables, manifest, corrections)


# ----------------------------------------------------------------------------------------------- flushing


def write_synced(path: Path, data: bytes) -> None:
    """Write ``data``, readable as any new file (temporary files start private), and flush it to disk."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fchmod(handle.fileno(), 0o666 & ~_umask())
        os.fsync(handle.fileno())


def _umask() -> int:
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1], 8) for line in status if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        return 0o022


def fsync_path(path: Path, directory: bool = False) -> None:
    """Flush a file (or a folder's entries) to disk, so a power cut after the switch finds what it names."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
