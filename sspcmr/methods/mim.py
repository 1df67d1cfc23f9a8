"""``MIM``: masked image modelling, the U-Net reconstructs the patches hidden from it.

Reference (docs/reference.md#mim-network, #mim-loss, #optimisation): the whole U-Net with a single full-resolution
1-channel head (no deep supervision); the augmented, standardised batch is cut into 32x32 patches on a grid from (0, 0),
75 % of them (48 of 64 at 256 px) set to 0.0 per image; the loss is the squared error over the masked
pixels only, pooled over the batch; SGD Nesterov momentum 0.99, weight decay 3e-5, learning rate 0.01
cosine-annealed over 100 epochs; 128 slices per batch; fp16 mixed precision. The encoder and decoder
transfer (the paper fine-tuned both), never the 1-channel head.

Masks come from the module's own generator (seeded, saved in checkpoints, one stream per rank); the
validation masks restart from the same seed every epoch
(:class:`~sspcmr.methods.reconstruction.Reconstruction`).
"""

from __future__ import annotations

from typing import Any

import torch

from sspcmr.checks import check_int, check_number
from sspcmr.corruptions.patches import PatchMasker
from sspcmr.losses.reconstruction import masked_mse
from sspcmr.methods.reconstruction import Reconstruction


class MIM(Reconstruction):
    """Masked image modelling with the full U-Net.

    Args:
        patch_size: side of the square patches in output pixels (reference 32); the image side must be a
            multiple of it.
        mask_ratio: fraction of the patches masked per image, rounded to a count (reference 0.75).
        mask_value: value of masked pixels in standardised units (reference 0.0, about the subject mean).
        mask_seed: seed of the mask generator (rank r uses ``mask_seed + 1009 r``).
        **kwargs: the SGD recipe and ``log_images`` (:class:`~sspcmr.methods.reconstruction.Reconstruction`),
            the U-Net, probe and monitor options (:class:`~sspcmr.methods.pretrain.Pretraining`), the output
            grid, intensity convention, centring and augmentation seed (:class:`~sspcmr.methods.base.CineModule`).
    """

    method = "mim"

    def __init__(self, patch_size: int = 32, mask_ratio: float = 0.75, mask_value: float = 0.0, mask_seed: int = 0,
                 **kwargs: Any) -> None:
        check_int("patch_size", patch_size, 1)
        check_number("mask_ratio", mask_ratio, 0, 1, low_open=True)
        check_number("mask_value", mask_value)
        check_int("mask_seed", mask_seed)
        super().__init__(**kwargs)
        self.masker = PatchMasker(patch_size=patch_size, ratio=mask_ratio, fill_value=mask_value)

    def check_output_size(self, size: int) -> None:
        super().check_output_size(size)
        patch = self.hparams.patch_size
        if size % patch:
            raise ValueError(f"output_size {size} is not a multiple of MIM's patch_size {patch} (use a multiple of "
                             f"{patch}, or a patch_size that divides {size})")

    def corrupt(self, image: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The masked images and their masks (:class:`~sspcmr.corruptions.patches.PatchMasker`)."""
        return self.masker(image, generator)

    def reconstruction_loss(self, output: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The squared error over the masked pixels only, pooled over the batch (the reference's)."""
        return masked_mse(output, image, mask)
