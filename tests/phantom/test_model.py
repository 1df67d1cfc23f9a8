"""Golden values and invariants of the phantom's building blocks."""

from __future__ import annotations

import numpy as np
import pytest

from sspcmr.phantom.anatomy import sample_subject
from sspcmr.phantom.geometry import apply_orientation, make_stack
from sspcmr.phantom.heart import HeartModel
from sspcmr.phantom.motion import sample_cycle
from sspcmr.phantom.profiles import OrientationConvention
from sspcmr.phantom.render import kspace_window
from sspcmr.phantom.tissues import RELAXATION, Tissue, bssfp_signal


@pytest.mark.parametrize(("flip", "expected"), [(45.0, 2.87), (75.0, 3.8)])
def test_bssfp_blood_to_myocardium_ratio(flip, expected):
    blood = bssfp_signal(*RELAXATION[1.5][Tissue.BLOOD], flip)
    myo = bssfp_signal(*RELAXATION[1.5][Tissue.MYOCARDIUM], flip)
    assert blood / myo == pytest.approx(expected, abs=0.08)


def test_bssfp_golden_value():
    # Hand-computed: PD 1, T1 = T2 = 1000 ms, 90 degrees, TR 3 ms:
    # E = exp(-0.003); S = (1 - E) / (1 - E^2) * exp(-0.0015) = exp(-0.0015) / (1 + E)
    e = np.exp(-0.003)
    assert bssfp_signal(1.0, 1000.0, 1000.0, 90.0) == pytest.approx(np.exp(-0.0015) / (1 + e), rel=1e-12)


def _heart(seed: int, pathology: str | None = None, frames: int = 20) -> HeartModel:
    rng = np.random.default_rng(seed)
    subject = sample_subject(rng, pathology)
    return HeartModel(subject.shape, subject.pose, sample_cycle(rng, frames))


@pytest.mark.parametrize("pathology", ["normal", "dilated", "hypertrophic", "rv_dilated"])
def test_volume_curve_and_constant_myocardium(pathology):
    heart = _heart(3, pathology)
    cycle = heart.cycle
    lv = np.array([heart.volumes(t)["lv"] for t in range(cycle.frames)])
    myo = np.array([heart.volumes(t)["myo"] for t in range(cycle.frames)])
    assert int(np.argmax(lv)) == cycle.ed_frame and int(np.argmin(lv)) == cycle.es_frame
    ef = (lv.max() - lv.min()) / lv.max()
    assert ef == pytest.approx(heart.shape.lv_ef, rel=1e-6)
    np.testing.assert_allclose(myo, myo[0], rtol=1e-9)  # incompressible myocardium
    rv_target = heart.shape.rv_edv_ratio * heart.lv_edv_mm3 / 1000
    rv = [heart.volumes(t)["rv"] / rv_target for t in range(cycle.frames)]
    np.testing.assert_allclose(rv, [cycle.rv_volume_fraction(t, heart.shape.rv_ef) for t in range(cycle.frames)],
                               rtol=1e-9)


def test_voxelised_model_matches_integrated_volumes():
    heart = _heart(8, "normal", frames=12)
    for frame in (heart.cycle.ed_frame, heart.cycle.es_frame):
        state = heart.states[frame]
        step = 0.6
        g = np.arange(-110, 110, step)
        z = np.arange(-25, heart.shape.lv_length + 5, step)
        x, y, s = np.meshgrid(g, g, z, indexing="ij")
        points = heart.pose.apex + x[..., None] * heart.e1 + y[..., None] * heart.e2 + s[..., None] * heart.axis
        _, label = heart.classify(points, state)
        vox = step**3 / 1000
        truth = heart.volumes(frame)
        assert (label == 1).sum() * vox == pytest.approx(truth["lv"], rel=0.015)
        assert (label == 2).sum() * vox == pytest.approx(truth["myo"], rel=0.015)
        assert (label == 3).sum() * vox == pytest.approx(truth["rv"], rel=0.03)


def test_wall_thickens_and_base_descends():
    heart = _heart(4, "normal")
    ed, es = heart.states[heart.cycle.ed_frame], heart.states[heart.cycle.es_frame]
    zeta, phi = np.full(36, 0.5), np.linspace(-np.pi, np.pi, 36, endpoint=False)
    endo_ed, epi_ed = heart.radii(zeta, phi, ed)
    endo_es, epi_es = heart.radii(zeta, phi, es)
    thickening = (epi_es - endo_es) / (epi_ed - endo_ed) - 1
    assert 0.3 < thickening.mean() < 0.9  # normal thickening 40-70%
    assert ed.length - es.length == pytest.approx(heart.shape.base_descent)


def test_ed_frame_and_es_fraction_distribution():
    cycles = [sample_cycle(np.random.default_rng(i), 25) for i in range(400)]
    ed_zero = np.mean([c.ed_frame == 0 for c in cycles])
    assert 0.65 < ed_zero < 0.85
    assert any(c.ed_frame == 24 for c in cycles) and any(0 < c.ed_frame < 4 for c in cycles)
    fractions = [((c.es_frame - c.ed_frame) % c.frames) / c.frames for c in cycles]
    assert min(fractions) >= 0.28 and max(fractions) <= 0.46


def test_volume_curve_phases():
    cycle = sample_cycle(np.random.default_rng(0), 30)
    p = np.linspace(0, 1, 2001)[:-1]
    f = cycle.filling(p)
    es = cycle.es_phase
    assert f[0] == 0 and f[np.searchsorted(p, es)] == pytest.approx(1.0, abs=1e-2)
    ejection = f[p <= es]
    assert np.all(np.diff(ejection) >= 0)  # monotone ejection, fastest early
    assert np.diff(ejection)[0] > np.diff(ejection)[-1]
    ivr = (p > es) & (p <= es + cycle.ivr)
    assert np.all(f[ivr] == 1.0)
    after_rapid = cycle.filling(es + cycle.ivr + cycle.rapid_duration)
    assert 1 - after_rapid == pytest.approx(cycle.rapid_fraction)
    kick_start = cycle.filling(1 - cycle.kick_duration)
    assert kick_start == pytest.approx(cycle.kick_fraction)


@pytest.mark.parametrize(
    "convention",
    [OrientationConvention(), OrientationConvention(apex_first=True, flip_y=True),
     OrientationConvention(flip_x=True, flip_y=True), OrientationConvention(apex_first=True, transpose=True),
     OrientationConvention(flip_x=True, transpose=True)],
)
def test_orientation_conventions_keep_world_positions(convention):
    stack = make_stack(np.array([10.0, -5.0, 3.0]), np.array([1.0, 0.2, 0.0]), np.array([0.3, -0.2, -0.9]),
                       1.5, (6, 5, 4), 9.0, 8.0)
    array = np.random.default_rng(0).random((6, 5, 4, 3))
    out, affine = apply_orientation(array, stack.affine, convention)
    for index in [(0, 0, 0), (5, 4, 3), (2, 3, 1)]:
        world = stack.affine @ np.array([*index, 1.0])
        new_index = np.round(np.linalg.inv(affine) @ world).astype(int)[:3]
        assert out[tuple(new_index)][0] == array[index][0]
    assert (np.linalg.det(affine[:3, :3]) < 0) == (
        (convention.flip_x + convention.flip_y + convention.apex_first + convention.transpose) % 2 == 1
    )


def test_kspace_window():
    full = kspace_window((32, 32), 1.0, 1.0, 0.0)
    assert np.all(full == 1.0)
    part = kspace_window((32, 32), 0.5, 0.75, 0.0)
    assert part.sum() == pytest.approx((32 * 0.5 + 1) * (32 * 0.75 + 1), rel=0.1)
    smooth = kspace_window((32, 32), 1.0, 1.0, 1.0)
    assert smooth[16, 16] == pytest.approx(1.0) and smooth[0, 16] < 0.01


@pytest.mark.parametrize("vendor", ["A", "B", "C", "D", "E"])
def test_realistic_acquisition_ranges(vendor):
    """Realistic size: 192-256 px (the larger side), 8-14 slices, 20-35 frames, slices cover the heart."""
    from sspcmr.phantom.acquisition import sample_acquisition
    from sspcmr.phantom.profiles import SIZE_PRESETS, VENDOR_PROFILES
    from sspcmr.phantom.subject import plan_stack

    for seed in range(25):
        rng = np.random.default_rng(seed)
        subject = sample_subject(rng)
        acq = sample_acquisition(rng, VENDOR_PROFILES[vendor], SIZE_PRESETS["realistic"])
        heart = HeartModel(subject.shape, subject.pose, sample_cycle(rng, acq.frames))
        stack = plan_stack(rng, acq, heart, SIZE_PRESETS["realistic"])
        assert 192 <= max(acq.matrix) <= 256 and 20 <= acq.frames <= 35
        assert 8 <= stack.shape[2] <= 14 and acq.breath_hold.shape == (stack.shape[2], 3)
        assert 0 < acq.slice_thickness <= stack.spacing[2]
        # Where each slice plane crosses the LV axis (mm from the apex): the first above the base
        # plane, the last near or beyond the apex.
        crossings = [
            float((stack.origin + k * stack.spacing[2] * stack.normal - heart.pose.apex) @ stack.normal
                  / (heart.axis @ stack.normal))
            for k in (0, stack.shape[2] - 1)
        ]
        assert crossings[0] > heart.shape.lv_length and crossings[1] < 15.0
