"""Acquisition geometry: oblique short-axis stacks and long-axis planes, affines, vendor layouts.

A :class:`PlaneStack` is a set of parallel planes with an exact voxel-to-world affine. Rendering
always happens in a canonical layout (slice 0 most basal, right-handed axes); a vendor's
:class:`~.profiles.OrientationConvention` then reorders the arrays and updates the affine so that
every voxel keeps its true world position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .profiles import OrientationConvention


@dataclass(frozen=True)
class PlaneStack:
    """Parallel image planes with a common in-plane grid.

    Attributes:
        origin: world position of voxel (0, 0, 0) centre.
        u: unit world direction of the first array axis.
        v: unit world direction of the second array axis.
        normal: unit world direction of the slice axis (``u x v``).
        spacing: (dx, dy, slice spacing) in mm.
        shape: (nx, ny, nslices).
        thickness: slice thickness in mm (<= slice spacing; the rest is the gap).
    """

    origin: np.ndarray
    u: np.ndarray
    v: np.ndarray
    normal: np.ndarray
    spacing: tuple[float, float, float]
    shape: tuple[int, int, int]
    thickness: float

    @property
    def affine(self) -> np.ndarray:
        """4x4 voxel-index -> world (RAS+ mm) affine."""
        aff = np.eye(4)
        aff[:3, 0] = self.u * self.spacing[0]
        aff[:3, 1] = self.v * self.spacing[1]
        aff[:3, 2] = self.normal * self.spacing[2]
        aff[:3, 3] = self.origin
        return aff

    def slice_points(self, index: int, subslices: int, shift: np.ndarray | None = None,
                     jitter: bool = False) -> np.ndarray:
        """World points (nx, ny, subslices, 3) sampling slice ``index`` across its thickness.

        Sub-slices are evenly spread over the slice thickness (the middle one at the slice centre).
        ``shift`` moves the *scene*: points are returned at ``p - shift`` so that the anatomy
        appears displaced by ``+shift`` (per-slice breath-hold offsets). With ``jitter`` the
        non-central sub-slices are also offset in plane by 0.35 pixel in a rotated pattern, so that
        averaging them gives in-plane partial volume too (no staircase edges); the central
        sub-slice stays on the pixel centre (labels are taken there).
        """
        nx, ny, _ = self.shape
        i = np.arange(nx, dtype=float)[:, None, None, None]
        j = np.arange(ny, dtype=float)[None, :, None, None]
        if subslices > 1:
            offsets = np.linspace(-0.5, 0.5, subslices + 2)[1:-1] * self.thickness
        else:
            offsets = np.zeros(1)
        k = offsets[None, None, :, None]
        di = np.zeros(len(offsets))
        dj = np.zeros(len(offsets))
        if jitter and subslices > 1:
            others = [m for m in range(subslices) if m != subslices // 2]
            angles = 0.46 + 2 * np.pi * np.arange(len(others)) / len(others)
            di[others], dj[others] = 0.35 * np.cos(angles), 0.35 * np.sin(angles)
        i = i + di[None, None, :, None]
        j = j + dj[None, None, :, None]
        base = self.origin + index * self.spacing[2] * self.normal
        pts = base + i * self.spacing[0] * self.u + j * self.spacing[1] * self.v + k * self.normal
        if shift is not None:
            pts = pts - shift
        return pts

    def to_pixel(self, index: int, point: np.ndarray) -> np.ndarray:
        """In-plane (i, j) pixel coordinates of a world point projected onto slice ``index``."""
        rel = point - (self.origin + index * self.spacing[2] * self.normal)
        return np.array([rel @ self.u / self.spacing[0], rel @ self.v / self.spacing[1]])


def extend_phase(stack: PlaneStack, pad: int) -> PlaneStack:
    """The same stack with ``pad`` extra rows on both sides of the second (phase) axis."""
    nx, ny, nz = stack.shape
    origin = stack.origin - pad * stack.spacing[1] * stack.v
    return PlaneStack(origin, stack.u, stack.v, stack.normal, stack.spacing, (nx, ny + 2 * pad, nz), stack.thickness)


def make_stack(centre: np.ndarray, u: np.ndarray, normal: np.ndarray, pixel: float, shape: tuple[int, int, int],
               slice_spacing: float, thickness: float) -> PlaneStack:
    """Stack whose slice 0 is centred (in plane) on ``centre``; slices advance along ``normal``."""
    normal = normal / np.linalg.norm(normal)
    u = u - u.dot(normal) * normal
    u = u / np.linalg.norm(u)
    v = np.cross(normal, u)
    nx, ny, _ = shape
    origin = centre - 0.5 * (nx - 1) * pixel * u - 0.5 * (ny - 1) * pixel * v
    return PlaneStack(origin, u, v, normal, (pixel, pixel, slice_spacing), shape, thickness)


def apply_orientation(array: np.ndarray, affine: np.ndarray, convention: OrientationConvention,
                      slice_axis_is_apex_to_base: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Reorder a canonical (x, y, slice[, time]) array to a vendor layout, keeping world positions.

    Args:
        array: canonical array, slice 0 most basal (unless ``slice_axis_is_apex_to_base``).
        affine: its voxel -> world affine.
        convention: the vendor's storage convention.
        slice_axis_is_apex_to_base: the canonical array is already apex first.

    Returns:
        ``(array, affine)`` in the vendor's layout.
    """
    affine = affine.copy()
    flips = []
    if convention.flip_x:
        flips.append(0)
    if convention.flip_y:
        flips.append(1)
    if convention.apex_first != slice_axis_is_apex_to_base:
        flips.append(2)
    for axis in flips:
        n = array.shape[axis]
        array = np.flip(array, axis=axis)
        affine[:3, 3] = affine[:3, 3] + (n - 1) * affine[:3, axis]
        affine[:3, axis] = -affine[:3, axis]
    if convention.transpose:
        order = [1, 0] + list(range(2, array.ndim))
        array = np.transpose(array, order)
        affine[:, [0, 1]] = affine[:, [1, 0]]
    return np.ascontiguousarray(array), affine
