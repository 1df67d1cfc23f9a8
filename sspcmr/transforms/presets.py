"""The reference study's shared augmentation pipelines as :class:`Augmenter` factories.

A method chooses its own recipe (``train_augmentation``); the ones several methods share live here, a
recipe of one method lives with it (DINO's multi-crop views in :mod:`sspcmr.methods.dino`).

Translation bounds are the reference's pixel values at a 256 px output and scale with
``output_size / 256``, so a smaller output (e.g. 64 px in tests) keeps the same bounds relative to its
field of view. ``output_spacing`` is never changed implicitly.
"""

from __future__ import annotations

from typing import Literal

import torch

import sspcmr.data.keys as K
from sspcmr.transforms.geometry import GeometryAugmentation
from sspcmr.transforms.intensity import IntensityAugmentation
from sspcmr.transforms.views import Augmenter, ViewSpec

__all__ = ["augmented_geometry", "segmentation_train", "evaluation", "resample_for_evaluation"]

ScaleConvention = Literal["monai", "multiplier"]
Centring = Literal["gt", "image"]
CentreConvention = Literal["reference", "exact"]


def augmented_geometry(
    output_size: int,
    output_spacing: float,
    centring: Centring,
    centre_convention: CentreConvention,
    scale_range: tuple[float, float] = (0.7, 1.4),
    translation_range: float | None = None,
) -> GeometryAugmentation:
    """Rotation ±180° (p=1), linked scale (p=1), flips (p=0.5 per axis), translation (p=1).

    ``translation_range`` defaults to the reference's ±40 px at 256 px, scaled to ``output_size``.
    """
    return GeometryAugmentation(
        output_size=output_size,
        output_spacing=output_spacing,
        scale_range=scale_range,
        translation_range=40.0 * output_size / 256 if translation_range is None else translation_range,
        centring=centring,
        centre_convention=centre_convention,
    )


def segmentation_train(
    output_size: int = 256,
    output_spacing: float = 1.25,
    scale_convention: ScaleConvention = "monai",
    centring: Centring = "gt",
    centre_convention: CentreConvention = "reference",
    views: int = 1,
) -> Augmenter:
    """The reference's augmented pipeline, GT-centred: one view (``IMAGE``, the baseline and fine-tuning
    training) or ``views`` independent draws (``VIEWS``: SimCLR and PCL contrast two)."""
    geometry = augmented_geometry(output_size, output_spacing, centring, centre_convention)
    return Augmenter([ViewSpec(geometry, IntensityAugmentation(scale_convention=scale_convention), count=views)])


def evaluation(output_size: int = 256, output_spacing: float = 1.25) -> Augmenter:
    """Validation, test and inference: image-centred resampling and standardisation only."""
    geometry = GeometryAugmentation.none(output_size=output_size, output_spacing=output_spacing)
    return Augmenter([ViewSpec(geometry, IntensityAugmentation.none())])


def resample_for_evaluation(recipe: Augmenter, batch: dict) -> dict:
    """Apply an :func:`evaluation` recipe to a native batch; a whole volume (a batch with ``PHASE``) keeps its
    native labels as ``NATIVE_LABEL``, to be scored against in native space."""
    # The recipe draws nothing that changes its output (every probability is 0), so any stream serves.
    out = recipe(batch, torch.Generator().manual_seed(0))
    if K.PHASE in batch:
        out[K.NATIVE_LABEL] = batch[K.LABEL]
    return out
