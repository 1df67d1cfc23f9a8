"""Predictions on raw short-axis NIfTI files, written back on the raw voxel grid.

Preparation (:mod:`sspcmr.data.prepare.subject`) crops a cine to its non-zero in-plane box and reorients
it with axis swaps and flips only (no resampling). :func:`to_raw_grid` undoes both exactly, so a label map
on the prepared grid becomes a label map on the raw file's grid. :func:`predict_nifti` runs the whole
inference chain of ``sspcmr test`` (image-centred resampling to the network grid, head-0 logits, bicubic
inverse resampling, argmax; :mod:`sspcmr.evaluation.native`) on any 3D (X, Y, Z) or 4D (X, Y, Z, T)
short-axis NIfTI and writes a uint8 label file with the input's shape and affine.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from sspcmr.data import keys as K
from sspcmr.data.atomic import atomic_write_bytes
from sspcmr.data.prepare.nifti import load_nifti
from sspcmr.data.prepare.orientation import (
    Reorientation,
    apply_reorientation,
    border_box,
    choose_reorientation,
    crop_affine,
    spacing_of,
)
from sspcmr.evaluation.native import labels_to_native
from sspcmr.transforms import presets

__all__ = ["to_raw_grid", "predict_nifti", "predict_volume", "write_labels_like"]


def to_raw_grid(labels_zhw: np.ndarray, meta: dict, raw_shape_xyz: tuple) -> np.ndarray:
    """Map a (Z, H, W) label map on the prepared grid back onto the raw file's (X, Y, Z) grid.

    The exact inverse of the preparation's crop and reorientation: undo the flips of axes 0, 1, 2, undo the
    in-plane swap, then place the result at the crop box ``meta["crop"]`` in zeros of the raw shape.

    Args:
        labels_zhw: (Z, H, W) labels as stored in ``labels.npy`` / predicted on the prepared grid.
        meta: needs ``crop`` ([[r0, r1], [c0, c1]], raw in-plane indices) and ``reorientation``
            (``{"swap_inplane": bool, "flip": [bool, bool, bool]}``), as in ``meta.json``.
        raw_shape_xyz: the raw (X, Y, Z) shape (extra trailing entries, e.g. T, are ignored).

    Returns:
        (X, Y, Z) array of ``labels_zhw``'s dtype.
    """
    labels = np.asarray(labels_zhw)
    if labels.ndim != 3:
        raise ValueError(f"labels must be (Z, H, W); got shape {labels.shape}")
    x, y, z = (int(s) for s in tuple(raw_shape_xyz)[:3])
    ops = meta["reorientation"]
    (r0, r1), (c0, c1) = meta["crop"]
    out = np.transpose(labels, (1, 2, 0))  # (H, W, Z): the reoriented array's axes
    for axis, flip in enumerate(ops["flip"]):
        if flip:  # a flip is its own inverse, and flips of different axes commute
            out = np.flip(out, axis=axis)
    if ops["swap_inplane"]:
        out = np.swapaxes(out, 0, 1)
    expected = (r1 - r0, c1 - c0, z)
    if out.shape != expected:
        raise ValueError(f"labels map to {out.shape} before padding, but crop {meta['crop']} of the raw shape "
                         f"{(x, y, z)} needs {expected}")
    if not (0 <= r0 < r1 <= x and 0 <= c0 < c1 <= y):
        raise ValueError(f"crop {meta['crop']} lies outside the raw in-plane shape {(x, y)}")
    raw = np.zeros((x, y, z), dtype=labels.dtype)
    raw[r0:r1, c0:c1] = out
    return raw


def _head0(outputs) -> torch.Tensor:
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs


def predict_volume(model: Callable, volume: np.ndarray, spacing: tuple[float, float], stats: dict,
                   output_size: int = 256, output_spacing: float = 1.25, device: str | torch.device = "cpu"
                   ) -> np.ndarray:
    """Labels (Z, H, W) uint8 of one prepared-grid volume (H, W, Z) with min-shifted values.

    ``stats`` holds the subject's ``mean``, ``std`` and ``max`` (after the minimum shift); ``spacing`` is
    the in-plane (dim0, dim1) spacing in mm.
    """
    height, width, n_slices = volume.shape
    image = torch.from_numpy(np.ascontiguousarray(np.transpose(volume, (2, 0, 1)), dtype=np.float32))[:, None]
    batch = {
        K.IMAGE: image,
        K.SIZE: torch.tensor([[height, width]] * n_slices, dtype=torch.int64),
        K.SPACING: torch.tensor([list(spacing)] * n_slices, dtype=torch.float32),
        K.CENTER: torch.tensor([[(height - 1) / 2, (width - 1) / 2]] * n_slices, dtype=torch.float32),
        K.MEAN: torch.full((n_slices,), stats["mean"], dtype=torch.float32),
        K.STD: torch.full((n_slices,), stats["std"], dtype=torch.float32),
        K.MAX: torch.full((n_slices,), stats["max"], dtype=torch.float32),
    }
    batch = {key: value.to(device) for key, value in batch.items()}
    out = presets.evaluation(output_size, output_spacing)(batch, None)  # no random draws
    with torch.no_grad():
        logits = _head0(model(out[K.IMAGE]))
        labels = labels_to_native(logits, out[K.THETA], out[K.SIZE], (height, width))
    return labels.to(torch.uint8).cpu().numpy()


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


def predict_nifti(model: torch.nn.Module | Callable, path: Path, out: Path, output_size: int = 256,
                  output_spacing: float = 1.25, device: str | torch.device = "cpu") -> Path:
    """Segment a short-axis NIfTI (3D (X, Y, Z) or 4D cine (X, Y, Z, T)) and write the labels on its grid.

    The image is cropped and reoriented as ``sspcmr prepare`` does, standardised with its statistics over
    the whole (cropped) volume or cine after the minimum shift (unbiased std), every frame is segmented as
    ``sspcmr test`` segments a volume, and the labels are mapped back to the raw grid.

    Args:
        model: a :class:`~sspcmr.models.UNet` / ``Segmentation`` or any callable mapping (B, 1, S, S) images
            to logits (B, C, S, S) or a list of them (head 0 is used).
        path: input ``.nii`` / ``.nii.gz``.
        out: output label file (uint8, the input's shape, sform and qform).
        output_size: network grid side in pixels (as trained).
        output_spacing: network grid spacing in mm (as trained).
        device: where to run the model (a ``torch.nn.Module`` is moved there).

    Returns:
        ``out``.

    Raises:
        ValueError: the file is not 3D or 4D, is unreadable, or is constant.
    """
    path, out = Path(path), Path(out)
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

    box = border_box(cine)
    cine = cine[box[0], box[1]]
    ops: Reorientation = choose_reorientation(crop_affine(affine, box))
    cine, new_affine = apply_reorientation(cine, crop_affine(affine, box), ops)
    values = cine.astype(np.float64)
    minimum = float(values.min())
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    if not std > 0:
        raise ValueError(f"{path}: the image is constant (zero standard deviation)")
    stats = {"mean": float(values.mean()) - minimum, "std": std, "max": float(values.max()) - minimum}
    spacing = spacing_of(new_affine)[:2]
    meta = {"crop": [[box[0].start, box[0].stop], [box[1].start, box[1].stop]], "reorientation": ops.as_dict()}

    if isinstance(model, torch.nn.Module):
        was_training = model.training
        model.to(device).eval()
    try:
        frames = []
        for t in range(cine.shape[-1]):
            labels = predict_volume(model, values[..., t] - minimum, spacing, stats, output_size, output_spacing,
                                    device)
            frames.append(to_raw_grid(labels, meta, array.shape[:3]))
    finally:
        if isinstance(model, torch.nn.Module):
            model.train(was_training)
    result = np.stack(frames, axis=-1) if ndim == 4 else frames[0]
    return write_labels_like(result.reshape(reference.shape), reference, out)
