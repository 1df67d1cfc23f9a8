"""Preparing one subject: read and check its files, find ED/ES, bring the stack onto the prepared grid and
compute its statistics (:mod:`sspcmr.data.preprocessing`, shared with inference), and write its arrays and
metadata into a (staging) folder (:mod:`sspcmr.data.store.writer`).

The orientation rule (``anatomical``, the default, or the reference's heuristics) is part of the fingerprint
and, when not the default, of ``meta.json``: a default run fingerprints and writes exactly what it did before
the option existed, so stores prepared then are reused as they are."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..preprocessing import IntensityStatistics, PreparedGrid, intensity_statistics, spacing_of
from ..preprocessing.reference_orientation import ANATOMICAL, reorientation_by_rule
from ..store.format import FORMAT_VERSION
from ..store.writer import StoredArrays, write_arrays, write_meta
from .circle import smallest_enclosing_circle
from .frames import check_csv_frames, check_labels, frame_by_match, frames_from_labels
from .nifti import load_nifti, read_header_geometry
from .sources import RawSubject


def fingerprint(subject: RawSubject, orientation: str = ANATOMICAL) -> str:
    """Changes when a source file, the metadata row (or its position in the CSV), the preparation format or the
    orientation rule changes (the default rule adds nothing, so older fingerprints stay valid)."""
    digest = hashlib.sha1(f"v{FORMAT_VERSION}".encode())
    if orientation != ANATOMICAL:
        digest.update(f"orientation:{orientation}".encode())
    digest.update(json.dumps(subject.row, sort_keys=True, default=str).encode())
    digest.update(f"csv_order:{subject.csv_order}".encode())  # recorded in meta.json; splits depend on it
    for role, path in sorted(subject.files.items()):
        stat = path.stat() if path.exists() else None
        digest.update(f"{role}:{path.name}:{stat.st_size if stat else -1}:{stat.st_mtime_ns if stat else -1}".encode())
    return digest.hexdigest()


def load_subject(subject: RawSubject) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int, list[str]]:
    """Read and check a subject's files.

    Returns:
        ``(cine (X, Y, Z, T), labels (X, Y, Z, 2) uint8 [ED, ES], affine, ed, es, notes)``; notes
        record CSV values that were corrected.
    """
    name, files, notes = subject.name, subject.files, []
    cine, affine = load_nifti(files["cine"], name, ndim=4)
    n_frames = cine.shape[-1]
    if n_frames < 2:
        raise DataError(f"cine has {n_frames} frame(s); ED and ES need at least 2", name, files["cine"])
    if subject.dataset == "mm1":
        raw_labels, _ = load_nifti(files["labels"], name, ndim=4)
        if raw_labels.shape != cine.shape:
            raise DataError(f"label shape {raw_labels.shape} differs from image shape {cine.shape}",
                            name, files["labels"])
        labels4d = check_labels(raw_labels, name, files["labels"])
        ed, es = frames_from_labels(labels4d, name, files["labels"])
        csv_ed, csv_es = check_csv_frames(subject.row, n_frames, name, subject.csv or "metadata CSV")
        if (csv_ed, csv_es) != (ed, es):
            notes.append(f"CSV ED/ES {csv_ed}/{csv_es} corrected to {ed}/{es} from the labels")
        labels = np.stack([labels4d[..., ed], labels4d[..., es]], axis=-1)
    else:
        frames = []
        for phase in ("ed", "es"):
            volume, _ = load_nifti(files[phase], name, ndim=3)
            frames.append(frame_by_match(cine, volume, name, files[phase]))
        ed, es = frames
        if ed == es:
            raise DataError(f"ED and ES volumes both match frame {ed}", name, files["es"])
        stack = []
        for phase in ("ed_gt", "es_gt"):
            gt, _ = load_nifti(files[phase], name, ndim=3)
            if gt.shape != cine.shape[:3]:
                raise DataError(f"label shape {gt.shape} differs from image shape {cine.shape[:3]}", name, files[phase])
            stack.append(check_labels(gt, name, files[phase]))
        labels = np.stack(stack, axis=-1)
    return cine, labels, affine, ed, es, notes


def prepare_subject(subject: RawSubject, folder: Path, orientation: str = ANATOMICAL) -> dict:
    """Prepare one subject into ``folder`` (created; must not exist) and return its metadata.

    Arrays are stored slice-contiguous for cheap 2D reads: ``image.npy`` (T, Z, H, W) in the
    source's values (int16 when they are integers), ``labels.npy`` (2, Z, H, W) uint8 for
    [ED, ES]. ``meta.json`` holds geometry, frames, statistics and the metadata row.
    ``orientation`` names the rule that puts the stack in order
    (:mod:`sspcmr.data.preprocessing.reference_orientation`).
    """
    cine, labels, affine, ed, es, notes = load_subject(subject)
    grid = PreparedGrid.of(cine, affine, lambda cropped: reorientation_by_rule(orientation, cropped, subject.dataset))
    cine, new_affine = grid.apply(cine, affine)
    labels, _ = grid.apply(labels)
    statistics = intensity_statistics(cine)  # over the whole 4D cine after subtracting its minimum
    if not statistics.std > 0:
        raise DataError("cine is constant (zero standard deviation)", subject.name, subject.files["cine"])
    foreground = np.argwhere(labels.any(axis=(2, 3)))
    if foreground.size == 0:
        raise DataError("labels are empty in both ED and ES", subject.name, subject.files.get("labels",
                                                                                       subject.files.get("ed_gt")))
    centre, radius = smallest_enclosing_circle(foreground.astype(np.float64))
    arrays = write_arrays(folder, cine, labels)
    height, width, n_slices, n_frames = cine.shape
    meta = {
        **_identity(subject, orientation),
        "n_frames": int(n_frames), "n_slices": int(n_slices), "height": int(height), "width": int(width),
        "ed": int(ed), "es": int(es),
        "spacing": list(spacing_of(new_affine)),
        "affine": new_affine.tolist(),
        "dtype": arrays.dtype,
        **_statistics(statistics),
        "gt_center": centre.tolist(), "gt_size": 2.0 * radius,
        **grid.as_meta(),
        "notes": notes,
        "sources": {role: str(path) for role, path in sorted(subject.files.items())},
        "long_axis": _long_axis_geometry(subject),
        **_hashes(arrays),
    }
    write_meta(folder, meta)
    return meta


def _identity(subject: RawSubject, orientation: str) -> dict:
    """The metadata that names the subject: format, fingerprint, data set, ID and its metadata row (and the
    orientation rule, when not the default)."""
    rule = {} if orientation == ANATOMICAL else {"orientation": orientation}
    return {
        "format_version": FORMAT_VERSION,
        **rule,
        "fingerprint": fingerprint(subject, orientation),
        "dataset": subject.dataset,
        "subject": subject.subject_id,
        "vendor": str(subject.row.get("Vendor", "")),
        "vendor_name": str(subject.row.get("VendorName", "")),
        "pathology": str(subject.row.get("Pathology", "")),
        "csv_order": subject.csv_order,
        "row": subject.row,
    }


def _statistics(statistics: IntensityStatistics) -> dict:
    return {"min": statistics.minimum, "mean": statistics.mean, "std": statistics.std, "max": statistics.max}


def _hashes(arrays: StoredArrays) -> dict:
    return {"image_sha256": arrays.image_sha256, "labels_sha256": arrays.labels_sha256}


def _long_axis_geometry(subject: RawSubject) -> dict:
    """Shape and affine of each long-axis cine (for the orientation pretext task), headers only."""
    out = {}
    for role, path in sorted(subject.files.items()):
        if role.startswith("la_"):
            shape, affine = read_header_geometry(path, subject.name)
            out[role[3:]] = {"shape": list(shape), "affine": affine.tolist()}
    return out
