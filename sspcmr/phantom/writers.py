"""Write synthetic subjects exactly in the M&Ms and M&Ms-2 download layouts, plus a truth sidecar.

M&Ms (``DIR/MnM``)::

    211230_M&Ms_Dataset_information_diagnosis_opendataset.csv
    dataset/<CODE>/<CODE>_sa.nii.gz       4D cine (x, y, slice, time)
    dataset/<CODE>/<CODE>_sa_gt.nii.gz    4D labels, non-zero only at ED and ES

M&Ms-2 (``DIR/MnM2``)::

    dataset_information.csv
    dataset/<NNN>/<NNN>_SA_CINE.nii.gz, _SA_ED(_gt).nii.gz, _SA_ES(_gt).nii.gz
    dataset/<NNN>/<NNN>_LA_CINE.nii.gz, _LA_ED(_gt).nii.gz, _LA_ES(_gt).nii.gz   (four-chamber)
    dataset/<NNN>/<NNN>_LA2CH_CINE_sspcmr.nii.gz    sspcmr extra: two-chamber cine (not in M&Ms-2)

Truths stay apart from the public files (``DIR/sspcmr_truth/<MnM|MnM2>/<ID>/``): ``truth.json``
and the labels of every frame (``<ID>_SA_labels_all_frames.nii.gz``, and for M&Ms-2 the long-axis
views' ``<ID>_LA_<view>_labels_all_frames.nii.gz``).

Every file is written to a temporary name and renamed, so an interrupted run leaves no truncated
file under a final name.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ..data.atomic import atomic_write_bytes
from .pathologies import PATHOLOGY_CODES
from .profiles import VENDOR_PROFILES
from .subject import Series, SyntheticSubject

MNMS_CSV = "211230_M&Ms_Dataset_information_diagnosis_opendataset.csv"
MNMS2_CSV = "dataset_information.csv"
MNMS_CSV_COLUMNS = ["External code", "VendorName", "Vendor", "Centre", "ED", "ES", "Age", "Pathology", "Sex",
                    "Height", "Weight"]
MNMS2_CSV_COLUMNS = ["SUBJECT_CODE", "DISEASE", "VENDOR", "SCANNER", "FIELD"]
TRUTH_DIR = "sspcmr_truth"


def save_nifti(path: Path, array: np.ndarray, affine: np.ndarray, *, slope: float | None = None,
               sform: bool = True, frame_ms: float | None = None) -> None:
    """Write a NIfTI-1 file atomically with qform (and optionally sform) set to ``affine``."""
    img = nib.Nifti1Image(array, affine)
    header = img.header
    header.set_qform(affine, code=1)
    header.set_sform(affine, code=1 if sform else 0)
    header.set_xyzt_units("mm", "msec")
    if frame_ms is not None and array.ndim == 4:
        zooms = list(header.get_zooms())
        zooms[3] = frame_ms
        header.set_zooms(zooms)
    if slope:
        header.set_slope_inter(slope, 0.0)
    atomic_write_bytes(path, lambda tmp: nib.save(img, str(tmp)))


def _frame_ms(subject: SyntheticSubject) -> float:
    return 60000.0 / subject.cycle.heart_rate / subject.cycle.frames


def _write_truth(root: Path, dataset: str, code: str, subject: SyntheticSubject) -> None:
    folder = root / TRUTH_DIR / dataset / code
    sax = subject.short_axis
    save_nifti(folder / f"{code}_SA_labels_all_frames.nii.gz", sax.labels.astype(np.uint8), sax.affine)
    for view, series in subject.long_axis.items():
        save_nifti(folder / f"{code}_LA_{view}_labels_all_frames.nii.gz", series.labels.astype(np.uint8),
                   series.affine)
    truth = dict(subject.truth)
    truth["subject_id"] = code
    truth["dataset"] = dataset
    truth["vendor_profile"] = subject.vendor
    truth["long_axis_affines"] = {view: s.affine.tolist() for view, s in subject.long_axis.items()}
    text = json.dumps(truth, indent=1, default=_json_default)
    atomic_write_bytes(folder / "truth.json", lambda tmp: tmp.write_text(text))


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value)}")


def _only_frames(labels: np.ndarray, frames: tuple[int, ...]) -> np.ndarray:
    out = np.zeros_like(labels)
    for t in frames:
        out[..., t] = labels[..., t]
    return out


def write_mnms_subject(root: Path, code: str, subject: SyntheticSubject) -> dict:
    """Write one subject in the M&Ms layout and return its metadata CSV row."""
    folder = root / "MnM" / "dataset" / code
    sax = subject.short_axis
    ed, es = subject.truth["ed_frame"], subject.truth["es_frame"]
    save_nifti(folder / f"{code}_sa.nii.gz", sax.image, sax.affine, slope=sax.scl_slope, sform=sax.sform,
               frame_ms=_frame_ms(subject))
    save_nifti(folder / f"{code}_sa_gt.nii.gz", _only_frames(sax.labels, (ed, es)), sax.affine, sform=sax.sform,
               frame_ms=_frame_ms(subject))
    _write_truth(root, "MnM", code, subject)
    profile = VENDOR_PROFILES[subject.vendor]
    return {
        "External code": code,
        "VendorName": profile.vendor_name,
        "Vendor": profile.code,
        "Centre": subject.acquisition.centre,
        "ED": ed,
        "ES": es,
        "Age": subject.subject.age,
        "Pathology": PATHOLOGY_CODES["mnms"][subject.truth["pathology"]],
        "Sex": subject.subject.sex,
        "Height": subject.subject.height,
        "Weight": subject.subject.weight,
    }


def write_mnms2_subject(root: Path, code: str, subject: SyntheticSubject) -> dict:
    """Write one subject in the M&Ms-2 layout and return its metadata CSV row."""
    folder = root / "MnM2" / "dataset" / code
    ed, es = subject.truth["ed_frame"], subject.truth["es_frame"]
    frame_ms = _frame_ms(subject)
    views: list[tuple[str, Series]] = [("SA", subject.short_axis)]
    if "4ch" in subject.long_axis:
        views.append(("LA", subject.long_axis["4ch"]))
    for prefix, series in views:
        save_nifti(folder / f"{code}_{prefix}_CINE.nii.gz", series.image, series.affine, slope=series.scl_slope,
                   sform=series.sform, frame_ms=frame_ms)
        for phase, t in (("ED", ed), ("ES", es)):
            # The ED/ES files are exact copies of the cine frame: loaders find ED/ES by matching them.
            save_nifti(folder / f"{code}_{prefix}_{phase}.nii.gz", np.ascontiguousarray(series.image[..., t]),
                       series.affine, slope=series.scl_slope, sform=series.sform)
            save_nifti(folder / f"{code}_{prefix}_{phase}_gt.nii.gz", np.ascontiguousarray(series.labels[..., t]),
                       series.affine, sform=series.sform)
    if "2ch" in subject.long_axis:
        series = subject.long_axis["2ch"]
        save_nifti(folder / f"{code}_LA2CH_CINE_sspcmr.nii.gz", series.image, series.affine,
                   slope=series.scl_slope, sform=series.sform, frame_ms=frame_ms)
    _write_truth(root, "MnM2", code, subject)
    profile = VENDOR_PROFILES[subject.vendor]
    return {
        "SUBJECT_CODE": int(code),
        "DISEASE": PATHOLOGY_CODES["mnms2"][subject.truth["pathology"]],
        "VENDOR": profile.mnms2_vendor,
        "SCANNER": subject.acquisition.scanner,
        "FIELD": subject.acquisition.field,
    }


def write_mnms_csv(root: Path, rows: list[dict]) -> Path:
    """Write the M&Ms metadata CSV (unnamed leading index column, 0-based ED/ES)."""
    frame = pd.DataFrame(rows, columns=MNMS_CSV_COLUMNS)
    path = root / "MnM" / MNMS_CSV
    atomic_write_bytes(path, lambda tmp: frame.to_csv(tmp, index=True))
    return path


def write_mnms2_csv(root: Path, rows: list[dict]) -> Path:
    """Write the M&Ms-2 ``dataset_information.csv``."""
    frame = pd.DataFrame(rows, columns=MNMS2_CSV_COLUMNS)
    path = root / "MnM2" / MNMS2_CSV
    atomic_write_bytes(path, lambda tmp: frame.to_csv(tmp, index=False))
    return path
