"""Predictions on plain short-axis NIfTI files, written back on the file's voxel grid.

A file is brought onto the prepared grid exactly as ``sspcmr prepare`` brings a subject's cine
(:mod:`sspcmr.data.preprocessing`: crop to the non-zero in-plane box, axis swaps and flips, statistics over
the whole cropped volume or cine), every frame is segmented as ``sspcmr test`` segments a volume
(:func:`~sspcmr.inference.volume.predict_volume`), and the labels are mapped back with the exact inverse
(:func:`~sspcmr.data.preprocessing.to_raw_grid`) into a uint8 file of the input's shape and affine.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from sspcmr.data.atomic import atomic_write_bytes
from sspcmr.data.prepare.nifti import load_nifti
from sspcmr.data.preprocessing import PreparedGrid, intensity_statistics, spacing_of, to_raw_grid

from .volume import predict_volume


def read_short_axis(path: Path) -> tuple[nib.Nifti1Image, np.ndarray, np.ndarray]:
    """``(image, cine (X, Y, Z, T) with T = 1 for a 3D file, affine)`` of a 3D or 4D short-axis file.

    Raises:
        ValueError: the file is missing, not 3D or 4D, unreadable or empty.
    """
    if not path.is_file():
        raise ValueError(f"{path}: file is missing")
    reference = nib.load(str(path))
    ndim = len(reference.shape)
    if ndim not in (3, 4):
        raise ValueError(f"{path}: expected a 3D (X, Y, Z) or 4D (X, Y, Z, T) short-axis image; "
                         f"found {ndim}D data of shape {tuple(reference.shape)}")
    array, affine = load_nifti(path, path.name, ndim=ndim)
    cine = array if ndim == 4 else array[..., None]  # (X, Y, Z, T)
    if cine.shape[-1] < 1 or min(cine.shape[:3]) < 1:
        raise ValueError(f"{path}: empty image of shape {tuple(reference.shape)}")
    return reference, cine, affine


def predict_nifti(model: torch.nn.Module | Callable, path: Path, out: Path, output_size: int | None = None,
                  output_spacing: float | None = None, device: str | torch.device = "cpu") -> Path:
    """Segment a short-axis NIfTI (3D (X, Y, Z) or 4D cine (X, Y, Z, T)) and write the labels on its grid.

    Args:
        model: a :class:`~sspcmr.models.UNet` / ``Segmentation`` or any callable mapping (B, 1, S, S) images
            to logits (B, C, S, S) or a list of them (head 0 is used).
        path: input ``.nii`` / ``.nii.gz``.
        out: output label file (uint8, the input's shape, sform and qform).
        output_size: network grid side in pixels (as trained); None: the model's own ``output_size`` (a sspcmr
            ``Segmentation`` knows the grid it was trained on), else 256.
        output_spacing: network grid spacing in mm (as trained); None: the model's own, else 1.25.
        device: where to run the model (a ``torch.nn.Module`` is moved there).

    Returns:
        ``out``.

    Raises:
        ValueError: the file is not 3D or 4D, is unreadable, or is constant.
    """
    path, out = Path(path), Path(out)
    output_size = output_size or getattr(model, "output_size", 256)
    output_spacing = output_spacing or getattr(model, "output_spacing", 1.25)
    reference, raw, affine = read_short_axis(path)
    grid = PreparedGrid.of(raw, affine)
    cine, new_affine = grid.apply(raw, affine)
    statistics = intensity_statistics(cine)
    if not statistics.std > 0:
        raise ValueError(f"{path}: the image is constant (zero standard deviation)")
    spacing, meta = spacing_of(new_affine)[:2], grid.as_meta()
    if isinstance(model, torch.nn.Module):
        was_training = model.training
        model.to(device).eval()
    try:
        frames = []
        for t in range(cine.shape[-1]):
            volume = cine[..., t].astype(np.float64) - statistics.minimum
            labels = predict_volume(model, volume, spacing, statistics, output_size, output_spacing, device)
            frames.append(to_raw_grid(labels, meta, raw.shape[:3]))
    finally:
        if isinstance(model, torch.nn.Module):
            model.train(was_training)
    result = np.stack(frames, axis=-1) if len(reference.shape) == 4 else frames[0]
    return write_labels_like(result.reshape(reference.shape), reference, out)


def write_labels_like(labels: np.ndarray, reference: nib.Nifti1Image, out: Path) -> Path:
    """Write uint8 ``labels`` (of ``reference``'s shape) with ``reference``'s sform/qform, atomically."""
    if tuple(labels.shape) != tuple(reference.shape):
        raise ValueError(f"labels shape {labels.shape} differs from the reference shape {reference.shape}")
    header = reference.header.copy()
    header.set_data_dtype(np.uint8)
    image = type(reference)(np.asarray(labels, dtype=np.uint8), None, header)
    image.header.set_slope_inter(1.0, 0.0)
    sform, sform_code = reference.header.get_sform(coded=True)
    qform, qform_code = reference.header.get_qform(coded=True)
    if sform is not None:
        image.set_sform(sform, int(sform_code))
    else:
        image.set_sform(None, 0)
    if qform is not None:
        image.set_qform(qform, int(qform_code))
    else:
        image.set_qform(None, 0)
    out = Path(out)
    atomic_write_bytes(out, lambda tmp: nib.save(image, str(tmp)))
    return out
