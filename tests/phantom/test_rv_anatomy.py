"""RV crescent anatomy (tapering horns, septal insertion points, bellows contraction) and pathologies.

Thickness is measured on labels only: short-axis label planes perpendicular to the LV axis are
sampled from the continuous model, and rays from the LV blood-pool centroid count RV samples.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from sspcmr.phantom import synthesise_subject
from sspcmr.phantom.anatomy import sample_subject
from sspcmr.phantom.heart import LABEL_LV, LABEL_MYO, LABEL_RV, HeartModel
from sspcmr.phantom.motion import sample_cycle
from sspcmr.phantom.pathologies import DATASET_PATHOLOGIES, PATHOLOGY_CODES, PATHOLOGY_PROBABILITIES
from sspcmr.phantom.realism import label_volumes_ml
from sspcmr.phantom.tissues import Tissue
from sspcmr.phantom.writers import (
    MNMS2_CSV,
    MNMS_CSV,
    write_mnms2_csv,
    write_mnms2_subject,
    write_mnms_csv,
    write_mnms_subject,
)

NEW_PATHOLOGIES = ["arrhythmogenic", "tetralogy", "interatrial", "tricuspid", "hypertensive", "athlete",
                   "ischaemic", "noncompaction"]
_HEARTS: dict[tuple[int, str], HeartModel] = {}


def _heart(seed: int, pathology: str = "normal") -> HeartModel:
    if (seed, pathology) not in _HEARTS:
        rng = np.random.default_rng(seed)
        subject = sample_subject(rng, pathology)
        _HEARTS[seed, pathology] = HeartModel(subject.shape, subject.pose, sample_cycle(rng, 12))
    return _HEARTS[seed, pathology]


def _plane(heart: HeartModel, frame: int, zeta: float, step: float, half: float = 110.0):
    """Tissue and labels of a short-axis plane at normalised level ``zeta`` (material level at that frame)."""
    state = heart.states[frame]
    grid = np.arange(-half, half, step)
    x, y = np.meshgrid(grid, grid, indexing="ij")
    s = (1.0 - zeta) * state.length
    points = heart.pose.apex + s * heart.axis + x[..., None] * heart.e1 + y[..., None] * heart.e2
    return heart.classify(points, state)


def _rays(labels: np.ndarray, step: float, values=(LABEL_RV,), rays: int = 360, dr: float = 0.25):
    """Per ray from the LV centroid: length (mm) of samples whose value is in ``values``."""
    ii, jj = np.nonzero(labels == LABEL_LV)
    centre = np.array([ii.mean(), jj.mean()])
    angles = np.linspace(0.0, 2 * np.pi, rays, endpoint=False)
    r = np.arange(0.0, labels.shape[0] / 2 * step, dr) / step
    pi = np.rint(centre[0] + np.cos(angles)[:, None] * r).astype(int)
    pj = np.rint(centre[1] + np.sin(angles)[:, None] * r).astype(int)
    inside = (pi >= 0) & (pi < labels.shape[0]) & (pj >= 0) & (pj < labels.shape[1])
    samples = np.where(inside, labels[np.clip(pi, 0, labels.shape[0] - 1), np.clip(pj, 0, labels.shape[1] - 1)], -1)
    return np.isin(samples, values).sum(axis=1) * dr, angles


def _rv_arc(thickness: np.ndarray) -> np.ndarray:
    """Ray indices of the longest circular run of rays crossing the RV, in angular order."""
    on = thickness > 0
    assert on.any() and not on.all(), "the RV must cover part of the circle"
    n = on.size
    order = (int(np.flatnonzero(~on)[0]) + np.arange(n)) % n
    best_start, best_len, start = 0, 0, None
    for k, index in enumerate(order):
        if on[index]:
            start = k if start is None else start
            if k - start + 1 > best_len:
                best_start, best_len = start, k - start + 1
        else:
            start = None
    return order[best_start:best_start + best_len]


def _profile(heart: HeartModel, frame: int, zeta: float = 0.45, step: float = 0.5) -> np.ndarray:
    _, labels = _plane(heart, frame, zeta, step)
    thickness, _ = _rays(labels, step)
    return thickness[_rv_arc(thickness)]


def _at(profile: np.ndarray, fraction: float) -> float:
    return float(profile[int(round(fraction * (profile.size - 1)))])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ed_crescent_thickest_at_free_wall_and_tapering_to_horns(seed):
    heart = _heart(seed)
    profile = _profile(heart, heart.cycle.ed_frame)
    peak = float(profile.max())
    assert 90 <= profile.size <= 230  # span in degrees (one ray per degree)
    assert 0.25 < np.argmax(profile) / (profile.size - 1) < 0.75  # thickest near mid-angle
    # Quarter points of the span (the thickest point may sit off-centre, towards one of them).
    assert _at(profile, 0.25) + _at(profile, 0.75) < 1.6 * peak
    assert _at(profile, 0.03) < 0.25 * peak and _at(profile, 0.97) < 0.25 * peak  # horns taper
    assert peak > 10.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rv_horns_insert_on_lv_myocardium(seed):
    heart = _heart(seed)
    step = 1.5  # a cine voxel
    _, labels = _plane(heart, heart.cycle.ed_frame, 0.45, step)
    thickness, angles = _rays(labels, step)
    arc = _rv_arc(thickness)
    distance_to_myo = ndimage.distance_transform_edt(labels != LABEL_MYO)
    rv = labels == LABEL_RV
    ii, jj = np.nonzero(labels == LABEL_LV)
    centre = np.array([ii.mean(), jj.mean()])
    pi, pj = np.nonzero(rv)
    angle = np.mod(np.arctan2(pj - centre[1], pi - centre[0]), 2 * np.pi)
    for end in (arc[0], arc[-1]):
        # RV voxels within 3 degrees of the arc's end ray touch (are within 2 voxels of) the myocardium.
        near = np.abs(np.angle(np.exp(1j * (angle - angles[end])))) < np.deg2rad(3.0)
        assert near.any()
        assert distance_to_myo[pi[near], pj[near]].min() <= 2.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_es_rv_remains_a_tapering_crescent(seed):
    heart = _heart(seed)
    ed = _profile(heart, heart.cycle.ed_frame)
    es = _profile(heart, heart.cycle.es_frame)
    assert es.max() >= 6.0  # a visible cavity (several voxels), not a 1-2 px ring
    assert es.max() / es.mean() > 1.4  # tapering, not an even shell
    assert _at(es, 0.25) + _at(es, 0.75) < 1.7 * es.max()
    assert es.size > 0.8 * ed.size  # the insertion points stay: the span barely shrinks
    assert es.max() < 0.8 * ed.max()  # the free wall moved inwards at mid-angle


@pytest.mark.parametrize("pathology", NEW_PATHOLOGIES)
def test_new_pathologies_keep_exact_volumes(pathology):
    heart = _heart(5, pathology)
    cycle = heart.cycle
    lv = np.array([heart.volumes(t)["lv"] for t in range(cycle.frames)])
    myo = np.array([heart.volumes(t)["myo"] for t in range(cycle.frames)])
    assert (lv.max() - lv.min()) / lv.max() == pytest.approx(heart.shape.lv_ef, rel=1e-6)
    np.testing.assert_allclose(myo, myo[0], rtol=1e-9)
    rv_target = heart.shape.rv_edv_ratio * heart.lv_edv_mm3 / 1000
    rv = [heart.volumes(t)["rv"] / rv_target for t in range(cycle.frames)]
    np.testing.assert_allclose(rv, [cycle.rv_volume_fraction(t, heart.shape.rv_ef) for t in range(cycle.frames)],
                               rtol=1e-9)


def test_rv_label_volume_follows_truth_every_frame():
    subject = synthesise_subject(np.random.SeedSequence([77, 1]), "A", "small", pathology="tetralogy",
                                 long_axis_views=())
    labels, affine = subject.short_axis.labels.astype(np.uint8), subject.short_axis.affine
    truth = np.array(subject.truth["volumes_ml"]["rv"])
    measured = np.array([label_volumes_ml(labels[..., t], affine)["rv"] for t in range(labels.shape[-1])])
    errors = measured / truth - 1
    # Cavalieri sampling of 8-10 slices with gaps, breath-hold offsets and a base sweeping through the
    # slices: per-frame errors of up to about 15% in one subject, with a few percent on average.
    assert np.abs(errors).mean() < 0.12 and np.abs(errors).max() < 0.25
    assert np.corrcoef(measured, truth)[0, 1] > 0.9  # the measured curve follows the true one


def _truth_figures(pathology: str, seeds=range(3)) -> pd.DataFrame:
    rows = []
    for seed in seeds:
        heart = _heart(seed, pathology)
        ed, es = heart.volumes(heart.cycle.ed_frame), heart.volumes(heart.cycle.es_frame)
        rows.append({"lv_ef": 1 - es["lv"] / ed["lv"], "rv_ef": 1 - es["rv"] / ed["rv"], "rv_edv": ed["rv"],
                     "rv_lv": ed["rv"] / ed["lv"]})
    return pd.DataFrame(rows)


def test_rv_pathologies_have_their_volumes_and_function():
    normal = _truth_figures("normal")
    assert normal["rv_ef"].min() >= 0.5 and normal["rv_lv"].max() < 1.35
    arr, fall = _truth_figures("arrhythmogenic"), _truth_figures("tetralogy")
    cia, tri = _truth_figures("interatrial"), _truth_figures("tricuspid")
    assert arr["rv_ef"].max() < 0.40 and arr["rv_lv"].min() > 1.45  # dilated, hypokinetic RV
    assert fall["rv_ef"].max() < 0.50 and fall["rv_lv"].min() > 1.55
    for frame in (cia, tri):
        assert frame["rv_lv"].min() > 1.4 and frame["rv_edv"].mean() > 1.2 * normal["rv_edv"].mean()


def _free_wall(heart: HeartModel) -> float:
    """Median thickness (mm) of unlabelled myocardium just outside the RV cavity, middle half of the span."""
    step = 0.5
    tissue, labels = _plane(heart, heart.cycle.ed_frame, 0.35, step)
    thickness, _ = _rays(labels, step)
    arc = _rv_arc(thickness)
    wall = np.where((labels == 0) & (tissue == Tissue.MYOCARDIUM), 9, labels)
    wall_thickness, _ = _rays(wall, step, values=(9,))
    middle = arc[arc.size // 4: 3 * arc.size // 4]
    return float(np.median(wall_thickness[middle]))


def test_tetralogy_thick_and_arrhythmogenic_thin_rv_free_wall():
    normal = [_free_wall(_heart(s)) for s in range(3)]
    fall = [_free_wall(_heart(s, "tetralogy")) for s in range(3)]
    arr = [_free_wall(_heart(s, "arrhythmogenic")) for s in range(3)]
    assert max(normal) <= 5.0 and min(fall) >= 5.0 and max(arr) <= 3.0


def test_arrhythmogenic_free_wall_bulges():
    """Aneurysmal bulges push the free wall out locally, more at RV end-systole (dyskinesia)."""
    for seed in range(3):
        heart = _heart(seed, "arrhythmogenic")
        s = heart.shape
        assert 2 <= len(s.rv_bulges) <= 4
        smooth = HeartModel(replace(s, rv_bulges=np.zeros((0, 5))), heart.pose, heart.cycle)
        for v, level, *_ in s.rv_bulges:
            u = v * (1 - s.rv_skew) + s.rv_skew if v >= 0 else v * (1 + s.rv_skew) + s.rv_skew
            rel = np.clip(level / s.rv_end, 0, 1)
            phi = np.array([s.rv_centre_angle + u * s.rv_half_span * (1.25 - 0.4 * rel)])
            zeta = np.array([level])
            bulge_ed = heart.rv_profile(zeta, phi, 0.0) / smooth.rv_profile(zeta, phi, 0.0)
            bulge_es = heart.rv_profile(zeta, phi, 1.0) / smooth.rv_profile(zeta, phi, 1.0)
            assert bulge_ed[0] > 1.25 and bulge_es[0] > bulge_ed[0]
    # A normal crescent has no bulge: its thickness falls monotonically from the peak to both horns.
    heart = _heart(0)
    v = np.linspace(-0.99, 0.99, 199)
    s = heart.shape
    u = np.where(v >= 0, v * (1 - s.rv_skew), v * (1 + s.rv_skew)) + s.rv_skew
    h0 = heart.rv_profile(np.full(v.size, 0.4), s.rv_centre_angle + u * s.rv_half_span * (1.25 - 0.4 * 0.4 / s.rv_end))
    peak = int(np.argmax(h0))
    assert np.all(np.diff(h0[:peak + 1]) >= 0) and np.all(np.diff(h0[peak:]) <= 0)


def test_septal_flattening():
    """Interatrial communication and tetralogy flatten the septum: the LV endocardium is straighter there."""
    def septal_bulge(heart):
        zeta = np.full(3, 0.4)
        phi = np.array([-0.3, 0.0, 0.3])  # +-17 degrees around the RV direction
        endo, _ = heart.radii_ed(zeta, phi)
        chord_ratio = endo * np.cos(phi) / endo[1]  # 1 on a flat septum
        return float(np.abs(chord_ratio[[0, -1]] - 1).mean())

    normal = np.mean([septal_bulge(_heart(s)) for s in range(3)])
    for pathology in ("interatrial", "tetralogy"):
        assert np.mean([septal_bulge(_heart(s, pathology)) for s in range(3)]) < 0.5 * normal


def test_ischaemic_sector_is_thin_and_akinetic_and_lv_ef_reduced():
    heart = _heart(1, "ischaemic")
    assert _truth_figures("ischaemic")["lv_ef"].max() < 0.46 < _truth_figures("normal")["lv_ef"].min()
    angle = heart.shape.infarct[0]
    zeta = np.full(2, 0.7)
    phi = np.array([angle, angle + np.pi])  # scar centre and the opposite (remote) wall
    ed, es = heart.states[heart.cycle.ed_frame], heart.states[heart.cycle.es_frame]
    endo_ed, epi_ed = heart.radii(zeta, phi, ed)
    endo_es, epi_es = heart.radii(zeta, phi, es)
    wall_ed, wall_es = epi_ed - endo_ed, epi_es - endo_es
    assert wall_ed[0] < 0.7 * wall_ed[1]  # thinned scar
    thickening = wall_es / wall_ed - 1
    assert thickening[0] < 0.6 * thickening[1]  # akinetic scar (length change only), thickening remote wall
    assert endo_es[0] > 0.9 * endo_ed[0]  # the scar's endocardium barely moves


def test_noncompaction_trabecular_layer_inside_lv_label():
    def trabecular_fraction(heart):
        tissue, labels = _plane(heart, heart.cycle.ed_frame, 0.6, 0.7)
        return float(np.mean(tissue[labels == LABEL_LV] == Tissue.TRABECULAR))

    normal = max(trabecular_fraction(_heart(s)) for s in range(3))
    lvnc = min(trabecular_fraction(_heart(s, "noncompaction")) for s in range(3))
    assert lvnc > 0.3 and lvnc > 3 * normal
    assert _truth_figures("noncompaction")["lv_ef"].max() < 0.46


def test_lv_pathologies_walls_and_sizes():
    def figures(pathology):
        shapes = [_heart(s, pathology).shape for s in range(3)]
        return np.mean([2 * s.endo_radius for s in shapes]), np.mean([s.wall_thickness for s in shapes])

    normal, hhd, ahs = figures("normal"), figures("hypertensive"), figures("athlete")
    assert hhd[1] > normal[1] + 2 and abs(hhd[0] - normal[0]) < 6  # concentric hypertrophy
    assert ahs[0] > normal[0] + 4 and ahs[1] > normal[1]  # mildly dilated, slightly thicker walls
    assert _truth_figures("athlete")["lv_ef"].min() >= 0.55


def test_pathology_mix_and_codes_are_valid_for_each_data_set():
    assert sum(PATHOLOGY_PROBABILITIES.values()) == pytest.approx(1.0)
    assert sum(PATHOLOGY_PROBABILITIES[p] for p in ("normal", "dilated", "hypertrophic")) >= 0.6
    for layout, codes in PATHOLOGY_CODES.items():
        assert set(codes) == set(PATHOLOGY_PROBABILITIES), layout
        assert set(codes.values()) <= DATASET_PATHOLOGIES[layout], layout
    assert {PATHOLOGY_CODES["mnms2"][p] for p in PATHOLOGY_PROBABILITIES} == DATASET_PATHOLOGIES["mnms2"]
    assert DATASET_PATHOLOGIES["mnms"] - {PATHOLOGY_CODES["mnms"][p] for p in PATHOLOGY_PROBABILITIES} == {"Other"}
    with pytest.raises(ValueError, match="unknown pathology"):
        sample_subject(np.random.default_rng(0), "amyloid")


@pytest.mark.parametrize(("pathology", "mnms", "mnms2"), [("tetralogy", "ARV", "FALL"), ("ischaemic", "IHD", "LV")])
def test_codes_written_to_both_csvs(tmp_path, pathology, mnms, mnms2):
    subject = synthesise_subject(3, "B", "tiny", pathology=pathology, long_axis_views=())
    assert subject.truth["pathology"] == pathology
    write_mnms_csv(tmp_path, [write_mnms_subject(tmp_path, "A0B1C2", subject)])
    write_mnms2_csv(tmp_path, [write_mnms2_subject(tmp_path, "001", subject)])
    row1 = pd.read_csv(tmp_path / "MnM" / MNMS_CSV, index_col=0).iloc[0]
    row2 = pd.read_csv(tmp_path / "MnM2" / MNMS2_CSV).iloc[0]
    assert row1["Pathology"] == mnms and row1["Pathology"] in DATASET_PATHOLOGIES["mnms"]
    assert row2["DISEASE"] == mnms2 and row2["DISEASE"] in DATASET_PATHOLOGIES["mnms2"]
