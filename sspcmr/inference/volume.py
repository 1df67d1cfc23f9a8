"""Labels of one whole volume on the prepared grid: the one inference path of every entry point.

Each slice is resampled to the network's grid (image-centred, no augmentation:
:func:`sspcmr.transforms.presets.evaluation`), run through the network, and head 0's logits are brought
back with the inverse of the same affine and arg-maxed (:mod:`sspcmr.evaluation.native`).
:func:`volume_labels` does the last two steps on an evaluation batch, whoever built it; :func:`predict_volume`
builds that batch from a bare volume and its intensity statistics (``sspcmr segment`` on NIfTI files).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from sspcmr.data import keys as K
from sspcmr.data.preprocessing import IntensityStatistics
from sspcmr.evaluation.native import labels_to_native
from sspcmr.transforms import presets


def head0(outputs: torch.Tensor | list | tuple) -> torch.Tensor:
    """The highest-resolution head's logits of a network that may return one tensor or a list of heads."""
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs


def volume_labels(model: Callable, batch: dict) -> torch.Tensor:
    """(Z, H, W) int64 labels on the prepared grid of one evaluation batch holding a whole volume's slices.

    Args:
        model: maps (Z, 1, S, S) images to logits (Z, C, S, S) or a list of them (head 0 is used).
        batch: a batch resampled by :func:`~sspcmr.transforms.presets.evaluation` (``IMAGE``, ``THETA``,
            ``SIZE``); the canvas the resampling saw is ``NATIVE_LABEL``'s (H, W) where the batch kept its
            native labels, else the volume's size (the slices of one volume share it and need no padding).
    """
    logits = head0(model(batch[K.IMAGE]))
    size = batch[K.SIZE]
    native = batch.get(K.NATIVE_LABEL)
    padded = tuple(native.shape[-2:]) if native is not None else tuple(int(v) for v in size[0])
    return labels_to_native(logits, batch[K.THETA], size, padded)


def volume_batch(volume: np.ndarray, spacing: tuple[float, float], statistics: IntensityStatistics) -> dict:
    """The native batch of a volume's slices, as the data module serves a prepared volume.

    Args:
        volume: (H, W, Z) on the prepared grid with the subject's minimum subtracted.
        spacing: in-plane (dim0, dim1) spacing in mm.
        statistics: the subject's statistics (``mean``, ``std``, ``max`` after the minimum shift).
    """
    height, width, n_slices = volume.shape
    image = torch.from_numpy(np.ascontiguousarray(np.transpose(volume, (2, 0, 1)), dtype=np.float32))[:, None]
    return {
        K.IMAGE: image,
        K.SIZE: torch.tensor([[height, width]] * n_slices, dtype=torch.int64),
        K.SPACING: torch.tensor([list(spacing)] * n_slices, dtype=torch.float32),
        K.CENTER: torch.tensor([[(height - 1) / 2, (width - 1) / 2]] * n_slices, dtype=torch.float32),
        K.MEAN: torch.full((n_slices,), statistics.mean, dtype=torch.float32),
        K.STD: torch.full((n_slices,), statistics.std, dtype=torch.float32),
        K.MAX: torch.full((n_slices,), statistics.max, dtype=torch.float32),
    }


def predict_volume(model: Callable, volume: np.ndarray, spacing: tuple[float, float],
                   statistics: IntensityStatistics, output_size: int = 256, output_spacing: float = 1.25,
                   device: str | torch.device = "cpu") -> np.ndarray:
    """Labels (Z, H, W) uint8 of one prepared-grid volume (H, W, Z) with min-shifted values.

    Args:
        model: as for :func:`volume_labels` (already on ``device`` and in eval mode).
        volume: as for :func:`volume_batch`.
        spacing: as for :func:`volume_batch`.
        statistics: as for :func:`volume_batch`.
        output_size: network grid side in pixels (as trained).
        output_spacing: network grid spacing in mm (as trained).
        device: where the batch goes.
    """
    batch = {key: value.to(device) for key, value in volume_batch(volume, spacing, statistics).items()}
    out = presets.evaluation(output_size, output_spacing)(batch, None)  # no random draws
    with torch.no_grad():
        labels = volume_labels(model, out)
    return labels.to(torch.uint8).cpu().numpy()
