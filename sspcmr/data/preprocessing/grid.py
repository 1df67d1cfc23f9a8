"""The prepared grid of a short-axis stack: the raw (X, Y, Z, ...) array cropped to its non-zero in-plane box
and reoriented with axis swaps and flips (:mod:`.orientation`), and the exact way back.

``sspcmr prepare`` stores every subject on this grid, and inference on a plain NIfTI file predicts on it
and maps the labels back with :func:`to_raw_grid`; no voxel is ever resampled on either way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .orientation import Reorientation, apply_reorientation, border_box, choose_reorientation, crop_affine


@dataclass(frozen=True)
class PreparedGrid:
    """How a raw array maps to the prepared grid: the in-plane crop ``box``, then ``reorientation``.

    Attributes:
        box: (rows, columns) slices of the raw in-plane axes holding every non-zero voxel.
        reorientation: the in-plane swap and flips applied after the crop.
    """

    box: tuple[slice, slice]
    reorientation: Reorientation

    @classmethod
    def of(cls, cine: np.ndarray, affine: np.ndarray,
           choose: Callable[[np.ndarray], Reorientation] = choose_reorientation) -> PreparedGrid:
        """The grid of a raw (X, Y, Z, ...) ``cine`` with voxel-to-world ``affine``.

        The box covers the non-zero voxels of every slice and frame (it removes zero padding); the
        orientation is chosen from the cropped array's affine by ``choose`` (default: sspcmr's anatomical
        rule; ``sspcmr prepare --orientation reference`` passes the reference's heuristics).
        """
        box = border_box(cine)
        return cls(box, choose(crop_affine(affine, box)))

    def apply(self, array: np.ndarray, affine: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Crop and reorient a raw (X, Y, Z, ...) array (the cine or its labels) and, if given, its affine.

        Returns:
            ``(array on the prepared grid (H, W, Z, ...), C-contiguous; its affine or None)``.
        """
        cropped = array[self.box[0], self.box[1]]
        return apply_reorientation(cropped, None if affine is None else crop_affine(affine, self.box),
                                   self.reorientation)

    def as_meta(self) -> dict:
        """``{"crop": [[r0, r1], [c0, c1]], "reorientation": {...}}`` as recorded in ``meta.json``."""
        (rows, columns), ops = self.box, self.reorientation
        return {"crop": [[rows.start, rows.stop], [columns.start, columns.stop]], "reorientation": ops.as_dict()}


def to_raw_grid(labels_zhw: np.ndarray, meta: dict, raw_shape_xyz: tuple) -> np.ndarray:
    """Map a (Z, H, W) label map on the prepared grid back onto the raw file's (X, Y, Z) grid.

    The exact inverse of :meth:`PreparedGrid.apply`: undo the flips of axes 0, 1, 2, undo the in-plane
    swap, then place the result at the crop box ``meta["crop"]`` in zeros of the raw shape.

    Args:
        labels_zhw: (Z, H, W) labels as stored in ``labels.npy`` / predicted on the prepared grid.
        meta: needs ``crop`` ([[r0, r1], [c0, c1]], raw in-plane indices) and ``reorientation``
            (``{"swap_inplane": bool, "flip": [bool, bool, bool]}``), as in ``meta.json``
            (:meth:`PreparedGrid.as_meta`).
        raw_shape_xyz: the raw (X, Y, Z) shape (extra trailing entries, e.g. T, are ignored).

    Returns:
        (X, Y, Z) array of ``labels_zhw``'s dtype.

    Raises:
        ValueError: labels that are not (Z, H, W) or do not fit the crop box of the raw shape.
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
