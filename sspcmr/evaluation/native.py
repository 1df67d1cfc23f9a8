"""Bringing predictions back to the native image grid (docs/reference.md#evaluation-procedure).

Each slice of a volume is resampled to the network's grid (image-centred, no augmentation), run
through the network, and its head-0 logits are resampled back with the inverse of the same affine
(bicubic, ``padding_mode="border"``, as the reference), then the argmax gives the label map on the
native, border-cropped grid of the prepared data. No post-processing.
"""

from __future__ import annotations

import torch

from sspcmr.transforms.geometry import resample_to_native


def logits_to_native(logits: torch.Tensor, theta: torch.Tensor, native_size: torch.Tensor,
                     padded_size: tuple[int, int]) -> torch.Tensor:
    """Resample network-grid logits (Z, C, S, S) to the native grid: (Z, C, H, W).

    All slices of one volume share one native size (H, W) = ``native_size[0]``.
    """
    canvas = resample_to_native(logits.float(), theta.float(), native_size, padded_size, mode="bicubic",
                                padding_mode="border")
    height, width = (int(v) for v in native_size[0])
    return canvas[:, :, :height, :width]


def labels_to_native(logits: torch.Tensor, theta: torch.Tensor, native_size: torch.Tensor,
                     padded_size: tuple[int, int]) -> torch.Tensor:
    """Argmax label map (Z, H, W) int64 on the native grid (ties go to the lowest class, as torch)."""
    return logits_to_native(logits, theta, native_size, padded_size).argmax(dim=1)
