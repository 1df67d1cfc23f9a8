"""Measurements that check the phantom behaves like cine CMR (used by the tests and
``benchmarks/phantom_realism.py``): contrast, label volumes against the truths, a
threshold-plus-largest-component segmentation baseline, and base-versus-apex appearance.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .heart import LABEL_LV, LABEL_MYO, LABEL_RV


def voxel_volume_ml(affine: np.ndarray) -> float:
    """Voxel volume in mL from a voxel -> world affine (slice spacing includes the gap)."""
    return float(abs(np.linalg.det(affine[:3, :3]))) / 1000.0


def label_volumes_ml(labels: np.ndarray, affine: np.ndarray) -> dict[str, float]:
    """LV, myocardium and RV volumes (mL) of a 3D label volume by voxel counting (Cavalieri)."""
    vox = voxel_volume_ml(affine)
    return {name: float((labels == value).sum()) * vox
            for name, value in (("lv", LABEL_LV), ("myo", LABEL_MYO), ("rv", LABEL_RV))}


def blood_myocardium_ratio(image: np.ndarray, labels: np.ndarray) -> float:
    """Median LV blood-pool intensity over median myocardial intensity (eroded masks, to keep
    partial-volume edges out)."""
    blood = ndimage.binary_erosion(labels == LABEL_LV, structure=np.ones((3, 3, 1)))
    myo = labels == LABEL_MYO
    if blood.sum() < 10 or myo.sum() < 10:
        raise ValueError("too few labelled voxels to measure contrast")
    return float(np.median(image[blood]) / np.median(image[myo]))


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of a 1D sample."""
    hist, edges = np.histogram(values, bins=bins)
    centres = 0.5 * (edges[1:] + edges[:-1])
    weight = np.cumsum(hist)
    total = weight[-1]
    mean = np.cumsum(hist * centres)
    between = (mean[-1] * weight - mean * total) ** 2 / np.maximum(weight * (total - weight), 1e-12)
    return float(centres[np.argmax(between[:-1])])


def dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two boolean masks (1 when both are empty)."""
    denominator = prediction.sum() + truth.sum()
    return 1.0 if denominator == 0 else float(2.0 * (prediction & truth).sum() / denominator)


def threshold_baseline(image: np.ndarray, labels: np.ndarray, spacing: tuple[float, float, float],
                       wall_mm: float = 8.0) -> dict[str, float]:
    """Dice of a naive segmentation: Otsu threshold, largest bright 3D component as the LV blood
    pool, and the dark ring within ``wall_mm`` around it as myocardium.

    A phantom on which this scores near 1 would make segmentation trivial; real cine does not
    allow it (bright atria, vessels, RV and fat touch the LV; papillary muscles are dark).
    """
    bright = image > otsu_threshold(image.ravel())
    components, count = ndimage.label(bright)
    if count == 0:
        return {"lv": 0.0, "myo": 0.0}
    sizes = ndimage.sum(bright, components, index=np.arange(1, count + 1))
    lv = components == (int(np.argmax(sizes)) + 1)
    radius = [max(1, int(round(wall_mm / s))) for s in spacing[:2]]
    structure = np.zeros((2 * radius[0] + 1, 2 * radius[1] + 1, 1), dtype=bool)
    ii, jj = np.meshgrid(np.arange(-radius[0], radius[0] + 1), np.arange(-radius[1], radius[1] + 1), indexing="ij")
    structure[..., 0] = (ii / radius[0]) ** 2 + (jj / radius[1]) ** 2 <= 1.0
    myo = ndimage.binary_dilation(lv, structure=structure) & ~bright
    # Oracle-seeded variant: the bright component that overlaps the true LV most. It measures how
    # separable the blood pool is from touching bright structures once the LV has been found.
    overlap = ndimage.sum(labels == LABEL_LV, components, index=np.arange(1, count + 1))
    seeded = components == (int(np.argmax(overlap)) + 1)
    return {
        "lv": dice(lv, labels == LABEL_LV),
        "myo": dice(myo, labels == LABEL_MYO),
        "lv_seeded": dice(seeded, labels == LABEL_LV),
    }


def slice_features(image2d: np.ndarray, pixel_mm: float, bins: int = 16, radius_mm: float = 70.0) -> np.ndarray:
    """Label-free appearance descriptor of a slice: intensity histograms (robustly normalised per
    slice) of the whole slice and of a central disc of ``radius_mm``, where the heart usually is."""
    lo, hi = np.percentile(image2d, [1, 99])
    values = np.clip((image2d - lo) / max(hi - lo, 1e-6), 0, 1)
    nx, ny = image2d.shape
    ii, jj = np.meshgrid(np.arange(nx) - (nx - 1) / 2, np.arange(ny) - (ny - 1) / 2, indexing="ij")
    centre = (ii**2 + jj**2) * pixel_mm**2 < radius_mm**2
    parts = []
    for region in (values, values[centre]):
        hist, _ = np.histogram(region, bins=bins, range=(0, 1))
        parts.append(hist / max(hist.sum(), 1))
    return np.concatenate(parts)


def nearest_centroid_accuracy(features: np.ndarray, classes: np.ndarray, groups: np.ndarray) -> float:
    """Leave-one-group-out accuracy of a nearest-centroid classifier (groups = subjects)."""
    correct = 0
    for i in range(len(classes)):
        train = groups != groups[i]
        centroids = {c: features[train & (classes == c)].mean(axis=0) for c in np.unique(classes[train])}
        guess = min(centroids, key=lambda c: np.sum((features[i] - centroids[c]) ** 2))
        correct += int(guess == classes[i])
    return correct / len(classes)
