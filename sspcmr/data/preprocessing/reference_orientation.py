"""The reference study's reorientation heuristics as a pure function of the voxel-to-world affine.

``sspcmr prepare --orientation reference`` reorients with this rule instead of sspcmr's anatomical one
(:func:`~.orientation.choose_reorientation`), through the same :class:`~.grid.PreparedGrid` path. The steps,
as docs/reference.md#reformatting describes them, on the border-cropped affine:

1. nibabel's closest canonical orientation (:func:`nibabel.orientations.io_orientation`), constrained to keep
   the slice axis third: each axis is flipped to point along the positive direction of the world axis nibabel
   assigns it, and the two in-plane axes are put in the order of their world axes;
2. a swap of the two in-plane axes;
3. for M&Ms (``mm1``): flip all three axes; if the result is left-handed (negative determinant, qfac < 0),
   flip the slice axis too; if the axis codes (:func:`nibabel.aff2axcodes`) are then ``PLI``, swap the
   in-plane axes and flip the first;
4. for M&Ms-2 (``mm2``): flip every axis except the one mapping to world axis 1 (A/P); if the codes are then
   ``PRI``, swap the in-plane axes and "flip them where needed"; otherwise, if left-handed, flip the slice axis.

"Flip them where needed" is not more precise in the description of the reference. sspcmr takes the most
literal reading: after the swap, flip each in-plane axis whose code differs from the first two codes the other
branch aims at, ``P`` and ``R``, position by position. An exact ``PRI`` becomes ``RPI`` after the swap, so
both in-plane axes are flipped (``LAI``); the other possible reading (flip only an axis pointing against its
world axis' letter in ``PR``) flips neither and gives ``RPI``, the same slice order rotated by 180 degrees
in-plane. Under step 1 as described the axis mapping to world axis 1 always points anterior (``A``) at step 4,
so the codes can never be ``PRI`` and the branch (with its ambiguity) never changes a result; it is kept, and
tested on its own, for fidelity to the description.

Consequences that follow from the steps alone (tests/data/test_reference_orientation.py checks them): the result
depends only on which world axis nibabel assigns the slice axis, whatever the vendor's axis order and signs.
M&Ms ends ``RPI`` (slice axis mapped to S/I), ``ILA`` (A/P) or ``IPL`` (R/L): the slices run towards the
patient's left, anterior or inferior side, where the apex lies. M&Ms-2 ends ``ALS``, ``ILA`` or ``IAR``: towards
superior or right unless the slice axis maps to A/P, i.e. apex first for headers in RAS+ world coordinates
(the heuristics were tuned on the real files, whose header conventions ``sspcmr orientation-check`` tests).
"""

from __future__ import annotations

import nibabel as nib
import numpy as np

from .orientation import Reorientation, choose_reorientation

ANATOMICAL, REFERENCE = "anatomical", "reference"
ORIENTATION_RULES = (ANATOMICAL, REFERENCE)
UNCHANGED = Reorientation(False, (False, False, False))
PRI_TARGET = "PR"  # the in-plane codes the M&Ms-2 "PRI" branch flips towards (literal reading, module docstring)
_DATASETS = {"mm1": "mm1", "mnms": "mm1", "mm2": "mm2", "mnms2": "mm2"}


def oriented_directions(affine: np.ndarray, ops: Reorientation = UNCHANGED) -> np.ndarray:
    """Unit world directions (3 x 3, one column per array axis) of an array's axes after ``ops``."""
    columns = np.asarray(affine, dtype=np.float64)[:3, :3]
    columns = columns / np.linalg.norm(columns, axis=0)
    if ops.swap_inplane:
        columns = columns[:, [1, 0, 2]]
    return columns * np.where(ops.flip, -1.0, 1.0)


def axis_codes(affine: np.ndarray, ops: Reorientation = UNCHANGED) -> str:
    """nibabel's axis codes (e.g. ``"PLI"``) of the array's axes after ``ops``; the translation plays no part."""
    frame = np.eye(4)
    frame[:3, :3] = oriented_directions(affine, ops)
    return "".join(nib.aff2axcodes(frame))


def closest_canonical(affine: np.ndarray) -> Reorientation:
    """Step 1: nibabel's closest canonical orientation with the slice axis kept third.

    Raises:
        ValueError: an affine whose axes nibabel cannot assign to world axes (singular).
    """
    ornt = nib.orientations.io_orientation(np.asarray(affine, dtype=np.float64))  # (world axis, +-1) per axis
    if np.isnan(ornt).any():
        raise ValueError("singular voxel-to-world affine: no closest canonical orientation")
    order = (1, 0) if ornt[0, 0] > ornt[1, 0] else (0, 1)
    return Reorientation(order == (1, 0), (bool(ornt[order[0], 1] < 0), bool(ornt[order[1], 1] < 0),
                                           bool(ornt[2, 1] < 0)))


def swapped(ops: Reorientation) -> Reorientation:
    """``ops`` followed by a swap of the two in-plane axes."""
    return Reorientation(not ops.swap_inplane, (ops.flip[1], ops.flip[0], ops.flip[2]))


def flipped(ops: Reorientation, axes: tuple[int, ...]) -> Reorientation:
    """``ops`` followed by a flip of each of ``axes`` (of the array as ``ops`` leaves it)."""
    flip = list(ops.flip)
    for axis in axes:
        flip[axis] = not flip[axis]
    return Reorientation(ops.swap_inplane, (flip[0], flip[1], flip[2]))


def left_handed(affine: np.ndarray, ops: Reorientation = UNCHANGED) -> bool:
    """True when the axes after ``ops`` form a left-handed frame (the reference's qfac < 0)."""
    return float(np.linalg.det(oriented_directions(affine, ops))) < 0.0


def mnms_steps(affine: np.ndarray, ops: Reorientation) -> Reorientation:
    """Step 3 (M&Ms) applied after ``ops``: flip all; flip the slices if left-handed; fix up ``PLI``."""
    ops = flipped(ops, (0, 1, 2))
    if left_handed(affine, ops):
        ops = flipped(ops, (2,))
    if axis_codes(affine, ops) == "PLI":
        ops = flipped(swapped(ops), (0,))
    return ops


def mnms2_steps(affine: np.ndarray, ops: Reorientation) -> Reorientation:
    """Step 4 (M&Ms-2) applied after ``ops``: flip all but the A/P axis; then the ``PRI`` or handedness fix."""
    codes = axis_codes(affine, ops)
    ops = flipped(ops, tuple(axis for axis in range(3) if codes[axis] not in "AP"))
    if axis_codes(affine, ops) == "PRI":
        ops = swapped(ops)
        codes = axis_codes(affine, ops)
        return flipped(ops, tuple(axis for axis in (0, 1) if codes[axis] != PRI_TARGET[axis]))
    if left_handed(affine, ops):
        ops = flipped(ops, (2,))
    return ops


def reference_reorientation(affine: np.ndarray, dataset: str) -> Reorientation:
    """The reference's in-plane swap and flips of a (border-cropped) short-axis stack.

    Args:
        affine: the 4 x 4 voxel-to-world affine (only its 3 x 3 part matters; the array's shape plays no part,
            since the steps permute and flip axes without looking at their sizes).
        dataset: ``mm1`` / ``mnms`` or ``mm2`` / ``mnms2``: the heuristics differ per data set.

    Returns:
        The :class:`~.orientation.Reorientation` that :func:`~.orientation.apply_reorientation` applies.

    Raises:
        ValueError: an unknown data set or a singular affine.
    """
    if dataset not in _DATASETS:
        raise ValueError(f"the reference orientation rule knows mnms and mnms2 only, not {dataset!r}")
    ops = swapped(closest_canonical(affine))
    return mnms_steps(affine, ops) if _DATASETS[dataset] == "mm1" else mnms2_steps(affine, ops)


def reorientation_by_rule(rule: str, affine: np.ndarray, dataset: str) -> Reorientation:
    """The reorientation of ``rule`` (``anatomical``: sspcmr's, any data set; ``reference``: the heuristics).

    Raises:
        ValueError: an unknown rule (or, for ``reference``, an unknown data set).
    """
    if rule == ANATOMICAL:
        return choose_reorientation(affine)
    if rule == REFERENCE:
        return reference_reorientation(affine, dataset)
    raise ValueError(f"orientation must be one of {', '.join(ORIENTATION_RULES)}; got {rule!r}")
