"""The smallest circle enclosing a set of points (Welzl's algorithm on the convex hull).

The reference centres its training crops on the centre of the smallest circle enclosing every
labelled pixel of a subject, projected over slices and the ED and ES frames.
"""

from __future__ import annotations

import contextlib

import numpy as np
from scipy.spatial import ConvexHull, QhullError


def _circle_two(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, float]:
    centre = (a + b) / 2.0
    return centre, float(np.linalg.norm(a - centre))


def _circle_three(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, float] | None:
    d = 2.0 * (a[0] * (b[1] - c[1]) + b[0] * (c[1] - a[1]) + c[0] * (a[1] - b[1]))
    if abs(d) < 1e-12:
        return None  # collinear: no circumcircle
    sq = (a * a).sum(), (b * b).sum(), (c * c).sum()
    ux = (sq[0] * (b[1] - c[1]) + sq[1] * (c[1] - a[1]) + sq[2] * (a[1] - b[1])) / d
    uy = (sq[0] * (c[0] - b[0]) + sq[1] * (a[0] - c[0]) + sq[2] * (b[0] - a[0])) / d
    centre = np.array([ux, uy])
    return centre, float(np.linalg.norm(a - centre))


def _inside(circle: tuple[np.ndarray, float], p: np.ndarray) -> bool:
    return float(np.linalg.norm(p - circle[0])) <= circle[1] * (1 + 1e-12) + 1e-9


def smallest_enclosing_circle(points: np.ndarray, seed: int = 0) -> tuple[np.ndarray, float]:
    """Centre (2,) and radius of the smallest circle containing all ``points`` (N, 2).

    Expected linear time after a random shuffle (the result does not depend on the seed).
    """
    points = np.unique(np.asarray(points, dtype=np.float64), axis=0)
    if len(points) == 0:
        raise ValueError("no points")
    if len(points) > 3:
        with contextlib.suppress(QhullError):  # collinear points have no hull: then all of them are kept
            points = points[ConvexHull(points).vertices]  # only hull vertices can lie on the circle
    points = points[np.random.default_rng(seed).permutation(len(points))]
    circle = (points[0], 0.0)
    for i in range(1, len(points)):
        if _inside(circle, points[i]):
            continue
        circle = (points[i], 0.0)
        for j in range(i):
            if _inside(circle, points[j]):
                continue
            circle = _circle_two(points[i], points[j])
            for k in range(j):
                if not _inside(circle, points[k]):
                    three = _circle_three(points[i], points[j], points[k])
                    circle = three if three is not None else _farthest_pair(points[i], points[j], points[k])
    return np.asarray(circle[0], dtype=np.float64), float(circle[1])


def _farthest_pair(*points: np.ndarray) -> tuple[np.ndarray, float]:
    pairs = [(a, b) for i, a in enumerate(points) for b in points[i + 1:]]
    return max((_circle_two(a, b) for a, b in pairs), key=lambda c: c[1])
