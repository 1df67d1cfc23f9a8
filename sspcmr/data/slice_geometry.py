"""Where each short-axis slice lies in its stack, from the image geometry (Zhang et al., section 4.2).

The relative slice location of slice i of a parallel stack s_0..s_{N-1} is
``l_i = d(s_i, s_0) / d(s_{N-1}, s_0)``, with d the Euclidean distance between the parallel planes:
each slice origin is projected onto the stack normal. Unlike the index-based ``slice / n_slices``
(PCL's position, docs/reference.md#pcl-loss), this honours uneven spacing and gaps when slice origins are
known individually; for a stack described by one affine it is ``i / (N - 1)``. Prepared stacks are
ordered base first, so the base is 0 and the apex 1.
"""

from __future__ import annotations

import numpy as np


def stack_slice_origins(affine: np.ndarray, n_slices: int) -> np.ndarray:
    """World origins (N, 3) of the slices of a stack whose (4, 4) affine maps (i, j, k) voxels to world
    (the prepared store's convention: k is the slice axis)."""
    affine = np.asarray(affine, dtype=np.float64)
    k = np.arange(n_slices, dtype=np.float64)
    return affine[:3, 3][None] + k[:, None] * affine[:3, 2][None]


def relative_slice_locations(origins: np.ndarray, normal: np.ndarray | None = None) -> np.ndarray:
    """Relative locations (N,) in [0, 1] of parallel slices given their world origins (N, 3).

    Args:
        origins: a point on each slice plane, in stack order.
        normal: the planes' normal (any length); None uses the direction from the first to the last origin.

    Raises:
        ValueError: fewer than one slice, or first and last planes coincide (N > 1).
    """
    origins = np.asarray(origins, dtype=np.float64)
    if origins.ndim != 2 or origins.shape[1] != 3 or len(origins) < 1:
        raise ValueError(f"origins must be (N, 3) with N >= 1; got {origins.shape}")
    if len(origins) == 1:
        return np.zeros(1)
    direction = origins[-1] - origins[0] if normal is None else np.asarray(normal, dtype=np.float64)
    norm = np.linalg.norm(direction)
    if norm == 0:
        raise ValueError("the stack's first and last slices lie in the same plane")
    distances = (origins - origins[0]) @ (direction / norm)
    if abs(distances[-1]) < 1e-9:
        raise ValueError("the stack's first and last slices lie in the same plane")
    # The centrosymmetric target sin(pi l) is the SliceLocation method's (methods.slice_location.location_target).
    return distances / distances[-1]
