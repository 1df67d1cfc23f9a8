"""Turn a native-slice batch into augmented views (docs/reference.md#augmentation-order, #contrastive-views), batched on
its device.

Per view and per sample, with independent draws: one geometric resample (bicubic image, nearest
label), subject standardisation, then the intensity transforms, then the label one-hot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

import sspcmr.data.keys as K
from sspcmr.transforms.geometry import GeometryAugmentation, affine_grid, build_theta, resample, sample_affine
from sspcmr.transforms.intensity import IntensityAugmentation, apply_intensity, sample_intensity, standardise

__all__ = ["ViewSpec", "Augmenter"]


@dataclass(frozen=True)
class ViewSpec:
    """One kind of view.

    Attributes:
        geometry: Geometric resampling and its augmentation.
        intensity: Intensity augmentation applied after standardisation.
        count: Number of independently drawn views of this kind per sample.
    """

    geometry: GeometryAugmentation
    intensity: IntensityAugmentation
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"count must be at least 1, got {self.count}")


def _repeat(tensor: torch.Tensor, times: int) -> torch.Tensor:
    """Repeat each row of a (B, ...) tensor ``times`` times in place: row b·times + k is copy k of b."""
    return tensor if times == 1 else tensor.repeat_interleave(times, dim=0)


class Augmenter:
    """Batched augmentation of native slices into one or more views; Lightning-free, device-agnostic.

    A pipeline with a single view of count 1 writes ``IMAGE`` (B, 1, S, S), ``THETA`` (B, 2, 3) and,
    if the batch has ``LABEL``, a (B, num_classes, S, S) float one-hot ``LABEL``. Any other pipeline
    writes ``VIEWS``: a list of (B, 1, S_v, S_v) tensors in the order of ``views`` (each spec's copies
    consecutively), and drops the native ``IMAGE``/``LABEL``. All other keys pass through unchanged.

    Args:
        views: The view kinds.
        num_classes: Label classes for the one-hot.
    """

    def __init__(self, views: Sequence[ViewSpec], num_classes: int = 4) -> None:
        if not views:
            raise ValueError("views must not be empty")
        self.views = tuple(views)
        self.num_classes = num_classes

    @property
    def single_view(self) -> bool:
        """Whether this pipeline writes ``IMAGE`` (one view) rather than ``VIEWS``."""
        return len(self.views) == 1 and self.views[0].count == 1

    @property
    def num_views(self) -> int:
        """Total number of views per sample."""
        return sum(spec.count for spec in self.views)

    def __repr__(self) -> str:
        return f"Augmenter(views={list(self.views)!r}, num_classes={self.num_classes})"

    def __call__(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> dict[str, Any]:
        """Augment a native-slice batch (see :mod:`sspcmr.data.keys`).

        Args:
            batch: Needs ``IMAGE`` (B, 1, Hc, Wc), ``SIZE``, ``SPACING``, ``MEAN``, ``STD``, ``MAX`` and,
                for ground-truth centring, ``CENTER``; ``LABEL`` (B, 1, Hc, Wc) is optional.
            generator: CPU generator for every random draw (None: the global generator).

        Returns:
            A new dict; the input dict and its tensors are not modified.
        """
        image = batch[K.IMAGE]
        b, c = image.shape[:2]
        padded = (int(image.shape[-2]), int(image.shape[-1]))
        size, spacing, center = batch[K.SIZE], batch[K.SPACING], batch.get(K.CENTER)
        mean, std = batch[K.MEAN], batch[K.STD]
        max_std = standardise(batch[K.MAX].to(image.dtype), mean, std)
        out = {key: value for key, value in batch.items() if key not in (K.IMAGE, K.LABEL)}

        views: list[torch.Tensor] = []
        theta = grid = torch.empty(0)
        for spec in self.views:
            n, size_out = spec.count, spec.geometry.output_size
            # The n copies of a sample are drawn as n·B samples ordered (sample, copy).
            params = sample_affine(b * n, spec.geometry, generator)
            centers = None if center is None else _repeat(center, n)
            theta = build_theta(params, _repeat(size, n), _repeat(spacing, n), centers, padded, spec.geometry)
            grid = affine_grid(theta.to(image.dtype), size_out, size_out)
            # Stacking a sample's n grids vertically samples all copies from the un-repeated native image.
            # The input is min-shifted, so the zero padding equals the subject minimum.
            stacked = resample(image, theta, size_out, mode="bicubic", grid=grid.view(b, n * size_out, size_out, 2))
            view = stacked.view(b, c, n, size_out, size_out).transpose(1, 2).reshape(b * n, c, size_out, size_out)
            view = standardise(view, _repeat(mean, n), _repeat(std, n))
            iparams = sample_intensity(b * n, spec.intensity, generator)
            view = apply_intensity(view, iparams, _repeat(max_std, n), inplace=True)  # view is ours
            if n == 1:
                views.append(view)
            else:  # one copy turns (sample, copy) order into n contiguous (B, C, S, S) views
                views.extend(view.view(b, n, c, size_out, size_out).transpose(0, 1).contiguous().unbind(0))

        if not self.single_view:
            out[K.VIEWS] = views
            return out
        out[K.IMAGE] = views[0]
        out[K.THETA] = theta
        label = batch.get(K.LABEL)
        if label is not None:
            size_out = self.views[0].geometry.output_size
            # Nearest sampling keeps label values; outside the native extent it reads 0 (background).
            warped = resample(label.to(image.dtype), theta, size_out, mode="nearest", grid=grid)
            # Writing each class's comparison into a preallocated float tensor builds the one-hot
            # (nearest sampling returns the stored integers exactly) faster than one_hot + permute + cast.
            # No range check: it would force a device synchronisation; a value outside 0..C-1 gives a
            # zero pixel.
            onehot = torch.empty(b, self.num_classes, size_out, size_out, device=image.device, dtype=image.dtype)
            for cls in range(self.num_classes):
                onehot[:, cls].copy_(warped[:, 0] == cls)
            out[K.LABEL] = onehot
        return out
