"""smallest_enclosing_circle against a brute force over every pair and triple of points."""

from __future__ import annotations

import numpy as np
import pytest

from sspcmr.data.prepare.circle import smallest_enclosing_circle

from .helpers import brute_force_circle


def _point_sets():
    rng = np.random.default_rng(1234)
    sets = []
    for n in (1, 2, 3, 4, 5, 8, 13, 30):
        sets.append(rng.normal(0, 10, (n, 2)))
    for n in (3, 6, 25):  # integer grid points with many duplicates (like label pixels)
        sets.append(rng.integers(0, 6, (n, 2)).astype(float))
    for n in (2, 3, 7, 20):  # collinear, random direction, with duplicates
        t = rng.integers(-10, 10, n).astype(float)
        sets.append(np.array([3.0, -2.0]) + t[:, None] * np.array([0.6, 0.8]))
    sets.append(np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0]]))  # collinear on a diagonal
    sets.append(np.array([[0.0, 0.0], [0.0, 5.0], [0.0, 1.0], [0.0, 5.0]]))  # vertical with duplicate
    sets.append(np.full((5, 2), 7.5))  # one point repeated
    sets.append(np.array([[0.0, 0.0], [4.0, 0.0], [2.0, 0.1]]))  # obtuse: diameter circle, not circumcircle
    sets.append(np.array([[0.0, 0.0], [4.0, 0.0], [2.0, 3.0]]))  # acute: circumcircle
    square = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])  # four co-circular points
    sets.append(np.concatenate([square, square, [[0.5, 0.5], [0.2, 0.7]]]))  # duplicates and interior points
    angles = rng.uniform(0, 2 * np.pi, 12)  # points on one circle plus interior ones
    sets.append(np.concatenate([np.c_[np.cos(angles), np.sin(angles)] * 5 + 2, rng.uniform(-1, 1, (10, 2))]))
    return sets


@pytest.mark.parametrize("index", range(len(_point_sets())))
def test_matches_brute_force(index):
    points = _point_sets()[index]
    centre, radius = smallest_enclosing_circle(points)
    expected_centre, expected_radius = brute_force_circle(points)
    assert radius == pytest.approx(expected_radius, abs=1e-9, rel=1e-9)
    np.testing.assert_allclose(centre, expected_centre, atol=1e-6)
    assert np.linalg.norm(points - centre, axis=1).max() <= radius + 1e-9


def test_random_sets_and_seed_independence():
    rng = np.random.default_rng(7)
    for _ in range(40):
        points = rng.integers(0, 20, (int(rng.integers(1, 40)), 2)).astype(float)
        expected_centre, expected_radius = brute_force_circle(points)
        for seed in (0, 3):
            centre, radius = smallest_enclosing_circle(points, seed=seed)
            assert radius == pytest.approx(expected_radius, abs=1e-9)
            np.testing.assert_allclose(centre, expected_centre, atol=1e-6)


def test_input_order_does_not_matter():
    rng = np.random.default_rng(3)
    points = rng.normal(size=(50, 2))
    centre, radius = smallest_enclosing_circle(points)
    centre2, radius2 = smallest_enclosing_circle(points[::-1])
    np.testing.assert_allclose(centre, centre2, atol=1e-9)
    assert radius == pytest.approx(radius2, abs=1e-12)


def test_no_points():
    with pytest.raises(ValueError):
        smallest_enclosing_circle(np.zeros((0, 2)))
