"""Batched, device-agnostic augmentation reproducing the reference's per-sample MONAI pipeline.

``geometry``: single-step affine resampling; ``intensity``: MONAI-semantics intensity transforms;
``views``: :class:`Augmenter` turning a native-slice batch into views; ``presets``: the reference pipelines.
"""

from sspcmr.transforms.geometry import (
    GeometryAugmentation,
    affine_from_parameters,
    affine_grid,
    build_theta,
    crop_native,
    inverse_theta,
    resample,
    resample_to_native,
    sample_affine,
)
from sspcmr.transforms.intensity import (
    IntensityAugmentation,
    IntensityParams,
    adjust_contrast,
    apply_intensity,
    gaussian_kernels,
    gaussian_smooth,
    sample_intensity,
    standardise,
)
from sspcmr.transforms.presets import contrastive, dino, evaluation, mim, segmentation_train
from sspcmr.transforms.views import Augmenter, ViewSpec

__all__ = [
    "GeometryAugmentation",
    "affine_from_parameters",
    "affine_grid",
    "build_theta",
    "crop_native",
    "inverse_theta",
    "resample",
    "resample_to_native",
    "sample_affine",
    "IntensityAugmentation",
    "IntensityParams",
    "adjust_contrast",
    "apply_intensity",
    "gaussian_kernels",
    "gaussian_smooth",
    "sample_intensity",
    "standardise",
    "Augmenter",
    "ViewSpec",
    "contrastive",
    "dino",
    "evaluation",
    "mim",
    "segmentation_train",
]
