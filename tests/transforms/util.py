"""Helpers for the transform tests: synthetic native-slice batches and image measurements."""

from __future__ import annotations

import torch

import sspcmr.data.keys as K


def gaussian_blob(
    shape: tuple[int, int], center: tuple[float, float], sigma_mm: float, spacing: tuple[float, float]
) -> torch.Tensor:
    """(H, W) float64 Gaussian exp(-r²/2s²) with r measured in mm around ``center`` (pixel indices)."""
    rows = (torch.arange(shape[0], dtype=torch.float64) - center[0]) * spacing[0]
    cols = (torch.arange(shape[1], dtype=torch.float64) - center[1]) * spacing[1]
    return torch.exp(-(rows[:, None] ** 2 + cols[None, :] ** 2) / (2 * sigma_mm**2))


def disc(shape: tuple[int, int], center: tuple[float, float], radius_mm: float, spacing: tuple[float, float]):
    """(H, W) float64 indicator of a disc of ``radius_mm`` (circular in mm, elliptical in pixels)."""
    rows = (torch.arange(shape[0], dtype=torch.float64) - center[0]) * spacing[0]
    cols = (torch.arange(shape[1], dtype=torch.float64) - center[1]) * spacing[1]
    return ((rows[:, None] ** 2 + cols[None, :] ** 2) <= radius_mm**2).double()


def centroid(image: torch.Tensor) -> tuple[float, float]:
    """Intensity-weighted centre (dim0, dim1) of an (H, W) image, negative ripples clipped to 0."""
    w = image.double().clamp(min=0)
    rows = torch.arange(w.shape[0], dtype=torch.float64)
    cols = torch.arange(w.shape[1], dtype=torch.float64)
    total = w.sum()
    return float((w.sum(1) * rows).sum() / total), float((w.sum(0) * cols).sum() / total)


def make_batch(
    images: list[torch.Tensor],
    spacings: list[tuple[float, float]],
    centers: list[tuple[float, float]] | None = None,
    labels: list[torch.Tensor] | None = None,
) -> dict:
    """Collate (H_i, W_i) native slices into a zero-padded batch dict with the keys of ``sspcmr.data.keys``."""
    hc = max(img.shape[0] for img in images)
    wc = max(img.shape[1] for img in images)
    b = len(images)
    canvas = torch.zeros(b, 1, hc, wc)
    for i, img in enumerate(images):
        canvas[i, 0, : img.shape[0], : img.shape[1]] = img.float()
    flat = torch.cat([img.flatten().double() for img in images])
    batch = {
        K.IMAGE: canvas,
        K.SIZE: torch.tensor([list(img.shape) for img in images], dtype=torch.int64),
        K.SPACING: torch.tensor(spacings, dtype=torch.float32),
        K.CENTER: torch.tensor(
            centers if centers is not None else [((h - 1) / 2, (w - 1) / 2) for h, w in (im.shape for im in images)],
            dtype=torch.float32,
        ),
        K.MEAN: torch.full((b,), float(flat.mean())),
        K.STD: torch.full((b,), float(flat.std())),
        K.MAX: torch.full((b,), float(flat.max())),
        K.SUBJECT: [f"subject{i}" for i in range(b)],
        K.SLICE: torch.arange(b),
    }
    if labels is not None:
        lab = torch.zeros(b, 1, hc, wc, dtype=torch.int64)
        for i, lb in enumerate(labels):
            lab[i, 0, : lb.shape[0], : lb.shape[1]] = lb
        batch[K.LABEL] = lab
    return batch


def ring_label(shape: tuple[int, int], center: tuple[float, float], spacing: tuple[float, float]) -> torch.Tensor:
    """(H, W) int64 map with classes 1-3: a disc (1), a ring around it (2) and a disc beside it (3)."""
    lv = disc(shape, center, 12.0, spacing).bool()
    myo = disc(shape, center, 18.0, spacing).bool() & ~lv
    rv = disc(shape, (center[0], center[1] + 30.0 / spacing[1]), 10.0, spacing).bool() & ~(lv | myo)
    label = torch.zeros(shape, dtype=torch.int64)
    label[lv], label[myo], label[rv] = 1, 2, 3
    return label
