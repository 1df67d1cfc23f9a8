"""Every vendor convention (base-/apex-first, flips, transposed axes, qform-only, scaled int16, float32)
ends up base at slice 0 with one in-plane orientation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from sspcmr.data.prepare import PreparedDataset

from .helpers import check_subject_arrays, csv_ids, truth

POSTERIOR = np.array([0.0, -1.0, 0.0])


@pytest.fixture(scope="module")
def vendors(prepared_vendors):
    raw, out, report = prepared_vendors
    ds = PreparedDataset(out)
    assert sorted(ds.subjects["Vendor"]) == sorted("ABCDE" * 2)
    return raw, ds


def test_arrays_match_raw_for_every_convention(vendors):
    raw, ds = vendors
    for index, subject in enumerate(csv_ids(raw, "mm1")):
        check_subject_arrays(raw, ds, index, "mm1", subject)


def test_base_at_slice_zero(vendors):
    raw, ds = vendors
    for index, row in ds.subjects.iterrows():
        subject = row["SubjectID"]
        lv_area = (np.asarray(ds.labels(index)[0]) == 1).sum(axis=(1, 2))  # ED, per slice
        labelled = np.flatnonzero(lv_area)
        assert len(labelled) >= 3, subject
        rho = spearmanr(labelled, lv_area[labelled]).statistic
        assert rho < 0, (subject, lv_area.tolist())
        assert np.polyfit(labelled, lv_area[labelled], 1)[0] < 0, subject
        assert lv_area[labelled[-1]] < lv_area[labelled[:3]].max(), (subject, lv_area.tolist())
        # The truth's normalised positions (0 base, 1 apex, in the vendor's slice order) increase in prepared order.
        positions = np.asarray(truth(raw, "mm1", subject)["slice_positions"])
        flipped = ds.meta(index)["reorientation"]["flip"][2]
        prepared_positions = positions[::-1] if flipped else positions
        assert np.all(np.diff(prepared_positions) > 0), (subject, positions.tolist())
        # ... and the stored affine's slice axis points from the base towards the apex.
        long_axis = np.asarray(truth(raw, "mm1", subject)["long_axis_world"])  # apex -> base
        slice_axis = np.asarray(ds.meta(index)["affine"])[:3, 2]
        assert slice_axis @ long_axis < 0, subject


def test_apex_first_vendors_are_flipped(vendors):
    _, ds = vendors
    for index, row in ds.subjects.iterrows():
        # profiles: B and D store apex first, A, C and E base first
        assert ds.meta(index)["reorientation"]["flip"][2] == (row["Vendor"] in ("B", "D")), row["SubjectID"]


def test_in_plane_orientation(vendors, prepared_tiny):
    """Rows run posterior-wards (within 45 degrees), axes are right-handed, the RV lies anterior of the LV
    (image top) on the same side for every subject."""
    angles = []
    for ds in (vendors[1], PreparedDataset(prepared_tiny[1])):
        for index, row in ds.subjects.iterrows():
            affine = np.asarray(ds.meta(index)["affine"])[:3, :3]
            axes = affine / np.linalg.norm(affine, axis=0)
            normal = axes[:, 2]
            posterior = POSTERIOR - (POSTERIOR @ normal) * normal
            posterior /= np.linalg.norm(posterior)
            assert posterior @ axes[:, 0] >= np.cos(np.radians(45)) - 1e-9, row["SubjectID"]
            assert np.linalg.det(axes) > 0
            labels = np.asarray(ds.labels(index)[0])
            lv = np.argwhere(labels == 1)[:, 1:].mean(axis=0)
            rv = np.argwhere(labels == 3)[:, 1:].mean(axis=0)
            offset = (rv - lv) * np.array([row["spacing_0"], row["spacing_1"]])
            assert offset[0] < 0, row["SubjectID"]  # RV towards row 0 (anterior)
            angles.append(np.arctan2(offset[1], offset[0]))
    # all directions inside one 90-degree sector
    angles = np.sort(np.mod(np.degrees(angles), 360))
    gaps = np.diff(np.concatenate([angles, angles[:1] + 360]))
    assert 360 - gaps.max() < 90, angles.round().tolist()
