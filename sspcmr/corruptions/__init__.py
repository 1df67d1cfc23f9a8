"""Corruption generators of the restoring pretext tasks: what the U-Net is shown instead of the image.

``patches``: :class:`PatchMasker`, masked image modelling's random grid patches (docs/reference.md#mim-loss);
``inpainting``: :class:`MaskBank`, the precomputed context prediction / restoration layouts (Dominic et al.).
Their losses live in :mod:`sspcmr.losses.reconstruction`.
"""

from sspcmr.corruptions.inpainting import MaskBank
from sspcmr.corruptions.patches import PatchMasker

__all__ = ["MaskBank", "PatchMasker"]
