"""The phantom behaves like cine CMR: anatomy, function, contrast, vendors, non-trivial segmentation."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from sspcmr.phantom import TRUTH_DIR
from sspcmr.phantom.realism import (
    blood_myocardium_ratio,
    label_volumes_ml,
    otsu_threshold,
    threshold_baseline,
)


def _physical(subject) -> np.ndarray:
    return subject.short_axis.image.astype(np.float64) * (subject.short_axis.scl_slope or 1.0)


def _axis_pixel(truth: dict, affine: np.ndarray, k: int) -> np.ndarray:
    """(i, j) pixel where the LV long axis crosses slice k (ignoring breath-hold shifts)."""
    apex, axis = np.array(truth["apex_world_mm"]), np.array(truth["long_axis_world"])
    inv = np.linalg.inv(affine)
    a = inv[:3, :3] @ apex + inv[:3, 3]
    d = inv[:3, :3] @ axis
    t = (k - a[2]) / d[2]
    return (a + t * d)[:2]


def test_lv_enclosed_by_myocardium_and_rv_absent_at_apex(small_subjects):
    for subject in small_subjects:
        labels = subject.short_axis.labels.astype(np.uint8)
        positions = np.array(subject.truth["slice_positions"])
        for t in (subject.truth["ed_frame"], subject.truth["es_frame"]):
            # Below 0.3 an oblique slice can cross the mitral plane at ES, where the label is open.
            for k in np.flatnonzero((positions > 0.3) & (positions < 0.8)):
                lv = labels[:, :, k, t] == 1
                if not lv.any():
                    continue
                ring = ndimage.binary_dilation(lv) & ~lv  # 4-neighbours of the blood pool
                assert set(np.unique(labels[:, :, k, t][ring])) <= {2}, "LV touches non-myocardium"
            lv_slices = [k for k in range(labels.shape[2]) if (labels[:, :, k, t] == 1).any()]
            apical = max(lv_slices, key=lambda k: positions[k])
            assert not (labels[:, :, apical, t] == 3).any(), "RV present in the most apical LV slice"
            basal = min(lv_slices, key=lambda k: positions[k])
            assert (labels[:, :, basal, t] == 3).any()


def test_lv_cross_section_shrinks_towards_apex(small_subjects):
    for subject in small_subjects:
        ed = subject.truth["ed_frame"]
        labels = subject.short_axis.labels[..., ed].astype(np.uint8)
        positions = np.array(subject.truth["slice_positions"])
        order = np.argsort(positions)
        areas = [(labels[:, :, k] == 1).sum() for k in order if 0.3 < positions[k] < 1.0]
        assert len(areas) >= 2 and areas[0] > areas[-1]
        assert all(b <= a * 1.15 for a, b in zip(areas, areas[1:], strict=False))


def test_label_volumes_reproduce_truths(small_subjects):
    rows = []
    for subject in small_subjects:
        truth = subject.truth
        labels, affine = subject.short_axis.labels.astype(np.uint8), subject.short_axis.affine
        ed = label_volumes_ml(labels[..., truth["ed_frame"]], affine)
        es = label_volumes_ml(labels[..., truth["es_frame"]], affine)
        rows.append({
            "edv": ed["lv"] / truth["lv_edv_ml"] - 1,
            "esv": es["lv"] / truth["lv_esv_ml"] - 1,
            "ef": (ed["lv"] - es["lv"]) / ed["lv"] - truth["lv_ef"],
            "rv_edv": ed["rv"] / truth["rv_edv_ml"] - 1,
            "myo": es["myo"] / ed["myo"] - 1,
        })
    errors = pd.DataFrame(rows)
    # Cavalieri sampling of 8-10 slices with gaps: a few percent on average, more per subject.
    assert errors["edv"].abs().mean() < 0.05 and errors["edv"].abs().max() < 0.12
    assert errors["esv"].abs().mean() < 0.08 and errors["esv"].abs().max() < 0.18
    assert errors["ef"].abs().mean() < 0.04 and errors["ef"].abs().max() < 0.08
    assert errors["rv_edv"].abs().mean() < 0.08
    assert errors["myo"].abs().mean() < 0.05 and errors["myo"].abs().max() < 0.12


def test_blood_myocardium_contrast(small_subjects):
    ratios = []
    for subject in small_subjects:
        assert 2.5 < subject.truth["blood_to_myocardium_signal"] < 4.5  # bSSFP signal model
        ed = subject.truth["ed_frame"]
        ratios.append(blood_myocardium_ratio(_physical(subject)[..., ed], subject.short_axis.labels[..., ed]))
    # On disk the ratio also carries vendor contrast curves, blur and partial volume.
    assert all(1.7 < r < 4.8 for r in ratios)
    assert 2.5 < np.mean(ratios) < 3.8


def test_segmentation_is_not_thresholding(small_subjects):
    scores = []
    for subject in small_subjects:
        ed = subject.truth["ed_frame"]
        spacing = tuple(np.linalg.norm(subject.short_axis.affine[:3, :3], axis=0))
        scores.append(threshold_baseline(_physical(subject)[..., ed], subject.short_axis.labels[..., ed], spacing))
    scores = pd.DataFrame(scores)
    assert scores["lv"].mean() < 0.6 and scores["myo"].mean() < 0.6
    # Even knowing which bright component is the LV, touching bright structures spoil it.
    assert scores["lv_seeded"].mean() < 0.8


def test_basal_and_apical_slices_differ(small_subjects):
    """Around the LV axis, basal slices show far more bright blood than apical ones."""
    diffs = []
    for subject in small_subjects:
        ed = subject.truth["ed_frame"]
        image = _physical(subject)[..., ed]
        affine = subject.short_axis.affine
        positions = np.array(subject.truth["slice_positions"])
        pixel = float(np.linalg.norm(affine[:3, 0]))
        threshold = otsu_threshold(image.ravel())
        fractions = {}
        for name, target in (("base", 0.1), ("apex", 0.85)):
            k = int(np.argmin(np.abs(positions - target)))
            centre = _axis_pixel(subject.truth, affine, k)
            ii, jj = np.meshgrid(np.arange(image.shape[0]), np.arange(image.shape[1]), indexing="ij")
            disc = ((ii - centre[0]) ** 2 + (jj - centre[1]) ** 2) * pixel**2 < 45.0**2
            fractions[name] = float((image[:, :, k][disc] > threshold).mean())
        diffs.append(fractions["base"] - fractions["apex"])
    assert min(diffs) > 0.05 and np.mean(diffs) > 0.15


def test_vendors_differ_in_geometry_and_intensity(tiny_dataset):
    root, summary = tiny_dataset
    frame = pd.DataFrame([s for s in summary if s["layout"] == "mnms"])
    assert frame.groupby("vendor")["dtype"].first().nunique() >= 3
    stats = {}
    for _, row in frame.iterrows():
        img = nib.load(root / "MnM" / "dataset" / row["subject"] / f"{row['subject']}_sa.nii.gz")
        data = img.get_fdata()
        stats.setdefault(row["vendor"], []).append(np.percentile(data, 99))
    p99 = {v: np.mean(x) for v, x in stats.items()}
    assert max(p99.values()) / min(p99.values()) > 5  # vendor intensity ranges differ widely
    assert frame.groupby("vendor")["slice_mm"].mean().std() > 0.2


def test_long_and_short_axis_geometries_intersect_consistently(tiny_dataset):
    """The four-chamber plane contains the LV axis, and labels agree where the planes cross."""
    root, _ = tiny_dataset
    for code in ("001", "002", "003"):
        folder = root / "MnM2" / "dataset" / code
        truth = json.loads((root / TRUTH_DIR / "MnM2" / code / "truth.json").read_text())
        sa = nib.load(folder / f"{code}_SA_ED_gt.nii.gz")
        la = nib.load(folder / f"{code}_LA_ED_gt.nii.gz")
        # The LV long axis lies in the long-axis plane (up to the breath-hold shift of <= 5 mm).
        normal = la.affine[:3, 2] / np.linalg.norm(la.affine[:3, 2])
        for s in (0.0, 40.0, 80.0):
            point = np.array(truth["apex_world_mm"]) + s * np.array(truth["long_axis_world"])
            assert abs((point - la.affine[:3, 3]) @ normal) < 5.0
        # Where the long-axis slice crosses short-axis slices, the labels mostly agree.
        la_labels = np.asarray(la.dataobj)[:, :, 0]
        sa_labels = np.asarray(sa.dataobj)
        ii, jj = np.nonzero(la_labels > 0)
        world = la.affine[:3, :3] @ np.stack([ii, jj, np.zeros_like(ii)]) + la.affine[:3, 3:4]
        vox = np.linalg.inv(sa.affine)[:3, :3] @ world + np.linalg.inv(sa.affine)[:3, 3:4]
        k = np.round(vox[2]).astype(int)
        near = np.abs(vox[2] - k) < 0.2  # close to a short-axis slice centre
        inside = near & (k >= 0) & (k < sa.shape[2])
        i, j = np.round(vox[0]).astype(int), np.round(vox[1]).astype(int)
        inside &= (i >= 0) & (i < sa.shape[0]) & (j >= 0) & (j < sa.shape[1])
        assert inside.sum() > 10
        agree = sa_labels[i[inside], j[inside], k[inside]] == la_labels[ii[inside], jj[inside]]
        assert agree.mean() > 0.7


@pytest.mark.parametrize("vendor", ["A", "B", "C", "D", "E"])
def test_stack_ordering_follows_vendor_convention(tiny_dataset, vendor):
    """Slice positions in the sidecar run base->apex or apex->base as the vendor stores them."""
    from sspcmr.phantom import VENDOR_PROFILES, synthesise_subject

    subject = synthesise_subject(np.random.SeedSequence([5, ord(vendor)]), vendor, "tiny", long_axis_views=())
    positions = np.array(subject.truth["slice_positions"])
    steps = np.diff(positions)
    if VENDOR_PROFILES[vendor].orientation.apex_first:
        assert (steps < 0).all()
    else:
        assert (steps > 0).all()
