"""Small numerical primitives of the implicit anatomy: table lookup, angle wrapping, unit vectors
and inside-tests for ellipsoids and capsules (tubes)."""

from __future__ import annotations

import numpy as np


def lookup(table: np.ndarray, start: float, span: float, x: np.ndarray, periodic: bool = False) -> np.ndarray:
    """Linear interpolation in a table sampled uniformly over ``[start, start + span]``
    (``span`` is the period and the table excludes its end point when ``periodic``)."""
    n = table.shape[0]
    pos = (np.asarray(x, dtype=float) - start) * ((n if periodic else n - 1) / span)
    if periodic:
        pos = np.mod(pos, n)
        i0 = np.floor(pos).astype(np.intp)
        frac = pos - i0
        i0 %= n
        return table[i0] * (1.0 - frac) + table[(i0 + 1) % n] * frac
    pos = np.clip(pos, 0.0, n - 1.000001)
    i0 = pos.astype(np.intp)
    frac = pos - i0
    return table[i0] * (1.0 - frac) + table[i0 + 1] * frac


def wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2 * np.pi) - np.pi


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def unit_perp(v: np.ndarray, n: np.ndarray) -> np.ndarray:
    return unit(v - v.dot(n) * n)


def in_ellipsoid(points: np.ndarray, centre: np.ndarray, axes: tuple, half: np.ndarray) -> np.ndarray:
    rel = points - centre
    total = np.zeros(points.shape[:-1])
    for direction, length in zip(axes, half, strict=True):
        total += (rel @ direction / length) ** 2
    return total < 1.0


def capsule_distance2(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Squared distance of points to the segment start-end."""
    seg = end - start
    rel = points - start
    t = np.clip(rel @ seg / seg.dot(seg), 0.0, 1.0)
    closest = rel - t[..., None] * seg
    return np.einsum("...i,...i->...", closest, closest)


def rotate(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues rotation of ``v`` about unit ``axis`` by ``angle`` radians."""
    axis = unit(axis)
    return (
        v * np.cos(angle)
        + np.cross(axis, v) * np.sin(angle)
        + axis * axis.dot(v) * (1.0 - np.cos(angle))
    )
