"""Independent re-computations used by the prepare tests (numpy / nibabel only, no sspcmr.data.prepare)."""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy.spatial import ConvexHull, QhullError

MNMS_CSV = "211230_M&Ms_Dataset_information_diagnosis_opendataset.csv"
MNMS2_CSV = "dataset_information.csv"
FOLDERS = {"mm1": "MnM", "mm2": "MnM2"}


# ----------------------------------------------------------------------------------------------- raw folders

def copy_raw(src: Path, dst: Path, datasets: tuple[str, ...] = ("mm1", "mm2")) -> Path:
    """Copy the public part of a synthetic raw folder (no truth sidecar) to ``dst``."""
    dst.mkdir(parents=True, exist_ok=True)
    for dataset in datasets:
        shutil.copytree(src / FOLDERS[dataset], dst / FOLDERS[dataset])
    return dst


def hash_tree(root: Path) -> dict[str, tuple[str, int]]:
    """Relative path -> (sha1, mtime_ns) of every file below ``root``."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            out[str(path.relative_to(root))] = (hashlib.sha1(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
    return out


def table_path(out: Path, name: str) -> Path:
    """A table (``subjects.csv``, ``slices.csv``, ``invalid.csv``, ``corrections.csv``) of the prepared folder's
    current generation, as its ``manifest.json`` names it."""
    generation = json.loads((out / "manifest.json").read_text())["generation"]
    return out / "tables" / generation / name


def read_table(out: Path, name: str, **kwargs) -> pd.DataFrame:
    return pd.read_csv(table_path(out, name), **kwargs)


def csv_path(raw: Path, dataset: str) -> Path:
    return raw / FOLDERS[dataset] / (MNMS_CSV if dataset == "mm1" else MNMS2_CSV)


def read_csv_rows(raw: Path, dataset: str) -> tuple[list[str], list[list[str]]]:
    with csv_path(raw, dataset).open(newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def write_csv_rows(raw: Path, dataset: str, header: list[str], rows: list[list[str]]) -> None:
    with csv_path(raw, dataset).open("w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])


def csv_ids(raw: Path, dataset: str) -> list[str]:
    """Subject IDs in CSV row order (M&Ms-2 codes zero-padded to 3 digits)."""
    header, rows = read_csv_rows(raw, dataset)
    column = header.index("External code" if dataset == "mm1" else "SUBJECT_CODE")
    return [r[column] if dataset == "mm1" else f"{int(r[column]):03d}" for r in rows]


def set_csv_value(raw: Path, dataset: str, subject: str, column: str, value: str) -> None:
    header, rows = read_csv_rows(raw, dataset)
    ids = csv_ids(raw, dataset)
    rows[ids.index(subject)][header.index(column)] = value
    write_csv_rows(raw, dataset, header, rows)


def subject_dir(raw: Path, dataset: str, subject: str) -> Path:
    return raw / FOLDERS[dataset] / "dataset" / subject


def raw_files(raw: Path, dataset: str, subject: str) -> dict[str, Path]:
    folder = subject_dir(raw, dataset, subject)
    if dataset == "mm1":
        return {"cine": folder / f"{subject}_sa.nii.gz", "labels": folder / f"{subject}_sa_gt.nii.gz"}
    return {"cine": folder / f"{subject}_SA_CINE.nii.gz", "ed": folder / f"{subject}_SA_ED.nii.gz",
            "es": folder / f"{subject}_SA_ES.nii.gz", "ed_gt": folder / f"{subject}_SA_ED_gt.nii.gz",
            "es_gt": folder / f"{subject}_SA_ES_gt.nii.gz"}


def truth(root: Path, dataset: str, subject: str) -> dict:
    return json.loads((root / "sspcmr_truth" / FOLDERS[dataset] / subject / "truth.json").read_text())


def load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Scaled voxel data as float64 and nibabel's affine (sform, else qform)."""
    image = nib.load(str(path))
    return np.asarray(image.dataobj, dtype=np.float64), np.asarray(image.affine, dtype=np.float64)


def raw_labels(raw: Path, dataset: str, subject: str, ed: int, es: int) -> np.ndarray:
    """(X, Y, Z, 2) labels [ED, ES] from the raw files."""
    files = raw_files(raw, dataset, subject)
    if dataset == "mm1":
        labels, _ = load(files["labels"])
        return np.stack([labels[..., ed], labels[..., es]], axis=-1)
    return np.stack([load(files["ed_gt"])[0], load(files["es_gt"])[0]], axis=-1)


# ----------------------------------------------------------------------------------------------- geometry

def bounding_box(cine: np.ndarray) -> list[list[int]]:
    """[[r0, r1], [c0, c1]] of the in-plane voxels that are non-zero in some slice or frame."""
    occupied = (cine != 0).any(axis=(2, 3))
    rows, cols = np.nonzero(occupied.any(axis=1))[0], np.nonzero(occupied.any(axis=0))[0]
    return [[int(rows.min()), int(rows.max()) + 1], [int(cols.min()), int(cols.max()) + 1]]


def source_indices(meta: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every prepared voxel (h, w, z) the raw voxel (i, j, k) it was taken from, as (H, W, Z) grids.

    Undoes, by index arithmetic, the recorded flips, then the in-plane swap, then the crop.
    """
    height, width, slices = meta["height"], meta["width"], meta["n_slices"]
    flips, swap = meta["reorientation"]["flip"], meta["reorientation"]["swap_inplane"]
    h, w, z = np.meshgrid(np.arange(height), np.arange(width), np.arange(slices), indexing="ij")
    a0 = height - 1 - h if flips[0] else h
    a1 = width - 1 - w if flips[1] else w
    a2 = slices - 1 - z if flips[2] else z
    c0, c1 = (a1, a0) if swap else (a0, a1)
    return c0 + meta["crop"][0][0], c1 + meta["crop"][1][0], a2


def world(affine: np.ndarray, i: np.ndarray, j: np.ndarray, k: np.ndarray) -> np.ndarray:
    """World positions (..., 3) of voxel indices."""
    index = np.stack([i, j, k, np.ones_like(i)], axis=-1).astype(np.float64)
    return (index @ affine.T)[..., :3]


# ----------------------------------------------------------------------------------------------- circles

def brute_force_circle(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Smallest enclosing circle by trying every pair (diameter) and every triple (circumcircle)."""
    pts = np.unique(np.asarray(points, dtype=np.float64), axis=0)
    if len(pts) == 1:
        return pts[0], 0.0
    centres, radii = [], []
    for a, b in itertools.combinations(range(len(pts)), 2):
        centres.append((pts[a] + pts[b]) / 2)
        radii.append(np.linalg.norm(pts[a] - pts[b]) / 2)
    for a, b, c in itertools.combinations(range(len(pts)), 3):
        (ax, ay), (bx, by), (cx, cy) = pts[a], pts[b], pts[c]
        d = 2 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by))
        if abs(d) < 1e-9:
            continue
        ux = ((ax**2 + ay**2) * (by - cy) + (bx**2 + by**2) * (cy - ay) + (cx**2 + cy**2) * (ay - by)) / d
        uy = ((ax**2 + ay**2) * (cx - bx) + (bx**2 + by**2) * (ax - cx) + (cx**2 + cy**2) * (bx - ax)) / d
        centres.append(np.array([ux, uy]))
        radii.append(np.hypot(ax - ux, ay - uy))
    centres, radii = np.array(centres), np.array(radii)
    farthest = np.linalg.norm(pts[None, :, :] - centres[:, None, :], axis=-1).max(axis=1)
    enclosing = farthest <= radii * (1 + 1e-9) + 1e-9
    best = np.flatnonzero(enclosing)[np.argmin(radii[enclosing])]
    return centres[best], float(radii[best])


def brute_force_pixel_circle(mask: np.ndarray) -> tuple[np.ndarray, float]:
    """Smallest circle enclosing the centres of the True pixels of a 2D mask.

    Only the first and last pixel of each row can touch the circle (a disk containing them contains
    the row between them), and of those only the convex-hull vertices; the rest is brute force.
    """
    points = []
    for row in np.flatnonzero(mask.any(axis=1)):
        cols = np.flatnonzero(mask[row])
        points += [(row, cols[0]), (row, cols[-1])]
    points = np.unique(np.array(points, dtype=np.float64), axis=0)
    if len(points) > 3:
        try:
            points = points[ConvexHull(points).vertices]
        except QhullError:  # collinear
            pass
    return brute_force_circle(points)


# ----------------------------------------------------------------------------------------------- arrays

def check_subject_arrays(raw, ds, index, dataset_name, subject):
    """Prepared image / labels equal the raw NIfTI data moved by the recorded crop and reorientation, and
    the stored affine puts every prepared voxel where its raw voxel was. Returns the raw cine."""
    meta = ds.meta(index)
    files = raw_files(raw, dataset_name, subject)
    cine, affine = load(files["cine"])
    image, labels = ds.image(index), ds.labels(index)
    assert isinstance(image, np.memmap) and isinstance(labels, np.memmap)
    assert image.shape == (meta["n_frames"], meta["n_slices"], meta["height"], meta["width"])
    assert labels.shape == (2, meta["n_slices"], meta["height"], meta["width"]) and labels.dtype == np.uint8
    assert image.dtype == np.dtype(meta["dtype"])
    # The crop is the bounding box of non-zero voxels, and only zeros lie outside it.
    assert meta["crop"] == bounding_box(cine)
    (r0, r1), (c0, c1) = meta["crop"]
    assert sorted((meta["height"], meta["width"])) == sorted((r1 - r0, c1 - c0))
    i, j, k = source_indices(meta)
    # (T, Z, H, W) prepared vs raw[i, j, k, t]
    expected = np.transpose(cine[i, j, k, :], (3, 2, 0, 1))
    np.testing.assert_array_equal(np.asarray(image, dtype=np.float64), expected)
    expected_labels = np.transpose(raw_labels(raw, dataset_name, subject, meta["ed"], meta["es"])[i, j, k, :],
                                   (3, 2, 0, 1))
    np.testing.assert_array_equal(np.asarray(labels), expected_labels)
    new_affine = np.asarray(meta["affine"])
    h, w, z = np.meshgrid(*(np.arange(n) for n in (meta["height"], meta["width"], meta["n_slices"])), indexing="ij")
    np.testing.assert_allclose(world(new_affine, h, w, z), world(affine, i, j, k), atol=1e-6)
    np.testing.assert_allclose(meta["spacing"], np.linalg.norm(new_affine[:3, :3], axis=0), rtol=1e-12)
    return cine
