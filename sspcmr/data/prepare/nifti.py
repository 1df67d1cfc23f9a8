"""Checked NIfTI reading: every way a file can be unusable becomes a one-line :class:`DataError`."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from ..errors import DataError


def load_nifti(path: Path, subject: str, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """Load a NIfTI file fully (scaling applied) and check it.

    Args:
        path: the ``.nii`` / ``.nii.gz`` file.
        subject: ``"<dataset> <ID>"`` for error messages.
        ndim: expected number of dimensions (4 for cines, 3 for single frames).

    Returns:
        ``(array, affine)``: the scaled voxel array (integer dtype kept when the file has no
        scaling, float32 otherwise) and the 4x4 voxel-to-world affine (sform if set, else qform).

    Raises:
        DataError: missing, truncated or corrupt file; wrong number of dimensions; NaN or Inf
            voxels; singular affine.
    """
    if not path.is_file():
        raise DataError("file is missing", subject, path)
    try:
        image = nib.load(str(path))
        array = _read_array(image)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile, nib.filebasedimages.ImageFileError, ValueError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(f"cannot read NIfTI (truncated or corrupt file: {reason})", subject, path) from None
    if array.ndim == ndim + 1 and array.shape[-1] == 1:
        array = array[..., 0]  # a trailing singleton dimension carries no data
    if array.ndim != ndim:
        kind = {3: "3D volume", 4: "4D cine (x, y, slice, time)"}[ndim]
        raise DataError(f"expected a {kind}, found {array.ndim}D data of shape {array.shape}", subject, path)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        count = int((~np.isfinite(array)).sum())
        raise DataError(f"{count} NaN or Inf voxels", subject, path)
    affine = np.asarray(image.affine, dtype=np.float64)
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-6:
        raise DataError("singular or non-finite voxel-to-world affine", subject, path)
    return array, affine


def _read_array(image: nib.Nifti1Image) -> np.ndarray:
    """Voxel data with scaling applied; integers stay integers when the header does not scale."""
    slope, inter = image.dataobj.slope, image.dataobj.inter
    raw_dtype = image.get_data_dtype()
    unscaled = (slope in (1.0, None) or np.isnan(slope)) and (inter in (0.0, None) or np.isnan(inter))
    if raw_dtype.kind in "iu" and unscaled:
        return np.asarray(image.dataobj.get_unscaled())
    return np.asarray(image.dataobj, dtype=np.float32)


def read_header_geometry(path: Path, subject: str) -> tuple[tuple[int, ...], np.ndarray]:
    """Shape and affine of a NIfTI file without reading its voxels (long-axis geometry)."""
    try:
        image = nib.load(str(path))
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile, nib.filebasedimages.ImageFileError, ValueError) as error:
        raise DataError(f"cannot read NIfTI header ({error})", subject, path) from None
    return tuple(int(s) for s in image.shape), np.asarray(image.affine, dtype=np.float64)
