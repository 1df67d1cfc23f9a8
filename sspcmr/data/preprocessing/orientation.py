"""Border crop and a consistent anatomical orientation of short-axis stacks.

Orientation (``anatomical``, the default rule): the slice axis is flipped, where needed,
so that it runs from the base to the apex, i.e. along the heart's long axis, which points to the
patient's left, anterior and inferior (``APEX_PRIOR`` in RAS+ world coordinates) in every cardiac
exam. The in-plane axes are then permuted and flipped so that the first array axis points as
close to posterior as possible and (dim0, dim1, slice) is right-handed: anterior towards the top of
the image, the RV towards the image's left, as cardiologists display short-axis views (flips and a
transpose leave up to +-45 degrees of in-plane rotation between subjects). Only axis flips and
permutations are used (no resampling), and the affine is updated so every voxel keeps its world
position.

The reference reaches the same aim (base at slice 0, consistent in-plane orientation) with
data-set-specific heuristics on nibabel's axis codes; the rule here needs only a correct affine, so it
holds for every vendor convention, including apex-first stacks and transposed in-plane axes. Those heuristics
are :mod:`.reference_orientation` (``sspcmr prepare --orientation reference``); ``sspcmr orientation-check``
lists the subjects on which the two rules disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

APEX_PRIOR = np.array([-1.0, 1.0, -1.0]) / np.sqrt(3.0)  # left, anterior, inferior in RAS+
POSTERIOR = np.array([0.0, -1.0, 0.0])


@dataclass(frozen=True)
class Reorientation:
    """Axis operations applied to an (X, Y, Z, ...) array: optional in-plane swap, then flips."""

    swap_inplane: bool
    flip: tuple[bool, bool, bool]

    def as_dict(self) -> dict:
        return {"swap_inplane": self.swap_inplane, "flip": list(self.flip)}


def border_box(cine: np.ndarray) -> tuple[slice, slice]:
    """In-plane bounding box of non-zero voxels over all slices and frames (removes zero padding)."""
    occupied = np.any(cine != 0, axis=tuple(range(2, cine.ndim)))
    rows, cols = np.flatnonzero(occupied.any(axis=1)), np.flatnonzero(occupied.any(axis=0))
    if rows.size == 0:
        return slice(0, cine.shape[0]), slice(0, cine.shape[1])
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


def crop_affine(affine: np.ndarray, box: tuple[slice, slice]) -> np.ndarray:
    """The affine of an array cropped to ``box`` (voxel (0, 0) moves to the box corner)."""
    shift = np.eye(4)
    shift[0, 3], shift[1, 3] = box[0].start, box[1].start
    return affine @ shift


def choose_reorientation(affine: np.ndarray) -> Reorientation:
    """The flips and in-plane swap that put the base at slice 0 and anterior at the top."""
    columns = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    u, v, n = columns[:, 0], columns[:, 1], columns[:, 2]
    flip_slices = float(n @ APEX_PRIOR) < 0.0
    if flip_slices:
        n = -n
    swap = abs(float(v @ POSTERIOR)) > abs(float(u @ POSTERIOR))
    first, second = (v, u) if swap else (u, v)
    flip_first = float(first @ POSTERIOR) < 0.0
    if flip_first:
        first = -first
    flip_second = float(np.cross(first, second) @ n) < 0.0
    return Reorientation(swap, (flip_first, flip_second, flip_slices))


def apply_reorientation(array: np.ndarray, affine: np.ndarray | None, ops: Reorientation):
    """Apply ``ops`` to an (X, Y, Z, ...) array and (optionally) its affine; world positions are kept."""
    out = np.swapaxes(array, 0, 1) if ops.swap_inplane else array
    new_affine = None
    if affine is not None:
        new_affine = affine.copy()
        if ops.swap_inplane:
            new_affine[:, [0, 1]] = new_affine[:, [1, 0]]
    for axis, flip in enumerate(ops.flip):
        if flip:
            out = np.flip(out, axis=axis)
            if new_affine is not None:
                # new index i' = N - 1 - i: the origin moves to the old last voxel, the axis reverses
                size = out.shape[axis]
                new_affine[:3, 3] += new_affine[:3, axis] * (size - 1)
                new_affine[:3, axis] *= -1
    return np.ascontiguousarray(out), new_affine


def spacing_of(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel spacing in mm from the affine's column norms (header pixdim can disagree with it)."""
    return tuple(float(x) for x in np.linalg.norm(affine[:3, :3], axis=0))
