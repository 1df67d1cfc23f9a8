"""Image formation: tissues -> bSSFP signal with texture -> partial volume -> coil bias and
off-resonance bands -> wrap-around -> k-space truncation and filtering with complex Gaussian noise
-> magnitude (Rician background).

The static torso, textures and bias are computed once per slice and reused for every frame; the
moving heart is evaluated per frame only inside a box around the LV axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .acquisition import Acquisition
from .artefacts import OffResonanceBands, fold_phase
from .geometry import PlaneStack, extend_phase
from .heart import HeartModel
from .noise import BandNoise
from .tissues import CoilBias, Tissue, texture_table
from .torso import TorsoModel


@dataclass
class SceneModels:
    """Everything needed to evaluate one subject's scene at any point and frame."""

    heart: HeartModel
    torso: TorsoModel
    signals: np.ndarray  # per tissue code, myocardium = 1
    texture: BandNoise  # unit RMS, world coordinates
    bias: CoilBias
    bands: OffResonanceBands | None = None


def render_series(stack: PlaneStack, scene: SceneModels, acq: Acquisition, shifts: np.ndarray,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Render every slice and frame of a plane stack.

    Args:
        stack: planes to render.
        scene: the subject's models.
        acq: acquisition parameters (frames, sub-slices, k-space, SNR).
        shifts: (slices, 3) breath-hold scene shifts in world mm.
        rng: random generator for the noise.

    Returns:
        ``(magnitude, labels)``: float32 (nx, ny, slices, frames) and uint8 of the same shape, with
        labels taken at the slice centre.

    With ``acq.wrap`` the scene is rendered ``acq.wrap_pad`` mm beyond both phase edges and folded
    back (see :func:`~.artefacts.fold_phase`); with ``scene.bands`` the signal is multiplied by
    the banding attenuation.
    """
    nx, ny, nz = stack.shape
    pad = int(round(acq.wrap_pad / stack.spacing[1])) if acq.wrap else 0
    grid = extend_phase(stack, pad) if pad else stack
    ny_grid = ny + 2 * pad
    frames = acq.frames
    image = np.zeros((nx, ny, nz, frames), dtype=np.float32)
    labels = np.zeros((nx, ny, nz, frames), dtype=np.uint8)
    amp = texture_table()
    centre_sub = acq.subslices // 2
    reach = scene.heart.extent()
    for k in range(nz):
        points = grid.slice_points(k, acq.subslices, shifts[k], jitter=True)
        static = scene.torso.classify(points)
        # Texture and bias vary over 3-50 mm, so the slice-centre values serve every sub-slice.
        centre_points = points[:, :, centre_sub : centre_sub + 1]
        texture = scene.texture(centre_points)
        bias = scene.bias(centre_points[:, :, 0])
        if scene.bands is not None:
            bias = bias * scene.bands(centre_points[:, :, 0])
        box = _heart_box(grid, k, scene.heart, shifts[k], reach)
        slice_labels = np.zeros((nx, ny_grid, frames), dtype=np.uint8)
        if box is not None:
            (i0, i1), (j0, j1) = box
            box_points = points[i0:i1, j0:j1]
            box_coordinates = scene.heart.heart_coordinates(box_points)
        signal = np.empty((nx, ny_grid, frames), dtype=np.float64)
        for t in range(frames):
            tissue = static.copy()
            if box is not None:
                heart_tissue, heart_label = scene.heart.classify(box_points, scene.heart.states[t], box_coordinates)
                sub = tissue[i0:i1, j0:j1]
                painted = heart_tissue != Tissue.NONE
                sub[painted] = heart_tissue[painted]
                slice_labels[i0:i1, j0:j1, t] = heart_label[:, :, centre_sub]
            values = scene.signals[tissue] * (1.0 + amp[tissue] * texture)
            signal[:, :, t] = values.mean(axis=2) * bias
        if pad:
            signal = fold_phase(signal, slice_labels, pad)
        labels[:, :, k, :] = slice_labels[:, pad : pad + ny]
        image[:, :, k, :] = acquire(signal, acq, scene.signals[Tissue.MYOCARDIUM], rng)
    return image, labels


def _heart_box(stack: PlaneStack, index: int, heart: HeartModel, shift: np.ndarray,
               reach: float) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """Pixel box of slice ``index`` that can contain heart tissue, or None if it cannot."""
    # Closest point of the LV axis segment (extended by the reach) to the slice plane, in pixels.
    axis = heart.axis
    plane_point = stack.origin + index * stack.spacing[2] * stack.normal - shift
    denom = axis @ stack.normal
    if abs(denom) < 0.5:  # a long-axis plane: the heart can be anywhere in it
        return (0, stack.shape[0]), (0, stack.shape[1])
    s = ((plane_point - heart.pose.apex) @ stack.normal) / denom
    length = heart.shape.lv_length
    if s < -reach or s > length + reach:
        return None
    s = float(np.clip(s, -20.0, length + 60.0))
    centre = stack.to_pixel(index, heart.pose.apex + s * axis + shift)
    half = np.array([reach / stack.spacing[0], reach / stack.spacing[1]]) * 1.1
    lo = np.floor(centre - half).astype(int)
    hi = np.ceil(centre + half).astype(int) + 1
    i0, j0 = max(lo[0], 0), max(lo[1], 0)
    i1, j1 = min(hi[0], stack.shape[0]), min(hi[1], stack.shape[1])
    if i1 <= i0 or j1 <= j0:
        return None
    return (i0, i1), (j0, j1)


def kspace_window(shape: tuple[int, int], read: float, phase: float, smooth: float) -> np.ndarray:
    """Acquisition window in centred k-space: a rectangle of the acquired fractions, tapered by a
    Hann window of weight ``smooth`` (0: sharp edges and Gibbs ringing, 1: smooth and blurry)."""
    windows = []
    for n, fraction in zip(shape, (read, phase), strict=True):
        k = np.fft.fftshift(np.fft.fftfreq(n)) * 2.0  # -1 .. 1
        half = fraction
        inside = np.abs(k) <= half
        hann = 0.5 * (1.0 + np.cos(np.pi * np.clip(k / max(half, 1e-6), -1.0, 1.0)))
        windows.append(inside * ((1.0 - smooth) + smooth * hann))
    return windows[0][:, None] * windows[1][None, :]


def acquire(signal: np.ndarray, acq: Acquisition, myocardium: float, rng: np.random.Generator) -> np.ndarray:
    """Simulate reconstruction of (nx, ny, frames) signal: complex noise, k-space window, magnitude.

    Noise is added to the complex image before the k-space window so that it is band-limited like
    the signal; its standard deviation is chosen so that after windowing the myocardial SNR is
    ``acq.snr``. Taking the magnitude makes the background Rician.
    """
    nx, ny, _ = signal.shape
    window = kspace_window((nx, ny), acq.kspace_read, acq.kspace_phase, acq.kspace_filter)
    sigma_out = myocardium / acq.snr
    sigma_in = sigma_out / np.sqrt(np.mean(window**2))
    noise = rng.standard_normal(signal.shape) + 1j * rng.standard_normal(signal.shape)
    noisy = signal + sigma_in / np.sqrt(2.0) * noise
    k = np.fft.fftshift(np.fft.fft2(noisy, axes=(0, 1), norm="ortho"), axes=(0, 1))
    k *= window[:, :, None]
    image = np.fft.ifft2(np.fft.ifftshift(k, axes=(0, 1)), axes=(0, 1), norm="ortho")
    return np.abs(image).astype(np.float32)


def quantise(magnitude: np.ndarray, acq: Acquisition, dtype: str, scl_slope: float | None,
             reference: float | None = None) -> tuple[np.ndarray, float]:
    """Apply the vendor's contrast curve and intensity range and cast to the on-disk dtype.

    Args:
        magnitude: float image.
        acq: acquisition (gamma, intensity maximum).
        dtype: on-disk dtype name.
        scl_slope: NIfTI scaling slope (the stored integers are ``value / slope``) or None.
        reference: intensity mapped to ``intensity_max``; default the 99.5th percentile.

    Returns:
        ``(stored array, reference)``; with a slope, ``stored * slope`` is the physical value.
    """
    if reference is None:
        reference = float(np.percentile(magnitude, 99.5)) or 1.0
    scaled = np.clip(magnitude / reference, 0.0, None) ** acq.gamma * acq.intensity_max
    if np.issubdtype(np.dtype(dtype), np.integer):
        if scl_slope:
            scaled = scaled / scl_slope
        info = np.iinfo(np.dtype(dtype))
        return np.clip(np.round(scaled), 0, info.max).astype(dtype), reference
    return scaled.astype(dtype), reference
