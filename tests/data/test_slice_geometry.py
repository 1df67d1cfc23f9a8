"""Relative slice location from the geometry (Zhang et al. 4.2): uneven spacing, gaps, oblique stacks."""

from __future__ import annotations

import numpy as np
import pytest

from sspcmr.data import keys as K
from sspcmr.data.datamodule import CineDataModule
from sspcmr.data.slice_geometry import relative_slice_locations, stack_slice_origins


def _oblique_normal() -> np.ndarray:
    normal = np.array([-1.0, 1.0, -1.0])
    return normal / np.linalg.norm(normal)


def test_uneven_spacing_and_a_gap_follow_plane_distances():
    normal = _oblique_normal()
    in_plane = np.cross(normal, [1.0, 0.0, 0.0])
    depths = np.array([0.0, 8.0, 18.0, 26.0, 50.0])  # uneven, with a gap before the last slice
    # Each origin also moves within its plane: that must not change the distance between planes.
    origins = np.array([10.0, -4.0, 7.0]) + depths[:, None] * normal + np.arange(5)[:, None] * 3.0 * in_plane
    expected = depths / 50.0
    np.testing.assert_allclose(relative_slice_locations(origins, normal=normal), expected, atol=1e-12)
    index_based = np.arange(5) / 4
    assert not np.allclose(expected, index_based)  # the index would be wrong here


def test_stack_described_by_one_affine_is_evenly_spaced():
    affine = np.array([[0.0, -1.2, -7.0, 65.0], [-1.2, -0.9, 7.4, 10.0], [1.0, 0.3, 5.0, -20.0], [0, 0, 0, 1]])
    origins = stack_slice_origins(affine, 9)
    np.testing.assert_allclose(origins[3], affine[:3, 3] + 3 * affine[:3, 2])
    np.testing.assert_allclose(relative_slice_locations(origins), np.arange(9) / 8, atol=1e-12)


def test_even_stacks_and_degenerate_stacks():
    origins = np.array([[0.0, 0.0, z] for z in (0.0, 5.0, 10.0, 15.0, 20.0)])
    np.testing.assert_allclose(relative_slice_locations(origins), [0, 0.25, 0.5, 0.75, 1.0], atol=1e-12)
    assert relative_slice_locations(origins[:1]).tolist() == [0.0]
    with pytest.raises(ValueError, match="same plane"):
        relative_slice_locations(np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        relative_slice_locations(np.zeros((3, 2)))


def test_batches_carry_the_geometric_location(prepared_tiny):
    root, split = prepared_tiny
    module = CineDataModule(str(root), str(split), mode="pretrain", batch_size=8, num_workers=0, output_size=64)
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    location = batch[K.LOCATION].numpy()
    expected = batch[K.SLICE].numpy() / (batch[K.N_SLICES].numpy() - 1)  # prepared stacks: one affine each
    np.testing.assert_allclose(location, expected, atol=1e-6)
    assert location.dtype == np.float32 and ((location >= 0) & (location <= 1)).all()
