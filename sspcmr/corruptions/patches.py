"""Random patch masking, the corruption of masked image modelling (docs/reference.md#mim-loss).

The reference masks 75 % of the 32 × 32 patches of each 256 × 256 slice (48 of 64, on a grid starting at the
top-left corner), fills them with 0, and trains the U-Net to reconstruct the original image with an MSE
computed on the masked pixels only (:func:`sspcmr.losses.reconstruction.masked_mse`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from sspcmr.transforms.host_to_device import host_to_device

__all__ = ["PatchMasker"]


class PatchMasker:
    """Mask a fixed number of random grid-aligned square patches in every image.

    Each image gets its own ``max(1, round(ratio · n_patches))`` patches (Python ``round``, i.e. halves to
    even), those with the lowest of uniform scores drawn on the CPU: the same generator state gives the same
    masks on any device, and the masks do not depend on the image values.

    Args:
        patch_size: Side of the square patches in pixels (reference 32); the grid starts at (0, 0).
        ratio: Fraction of the patches to mask, in (0, 1] (reference 0.75).
        fill_value: Value written into the masked pixels (reference 0.0).
    """

    def __init__(self, patch_size: int = 32, ratio: float = 0.75, fill_value: float = 0.0) -> None:
        if patch_size < 1:
            raise ValueError(f"patch_size must be >= 1; got {patch_size}")
        if not 0 < ratio <= 1:
            raise ValueError(f"ratio must be in (0, 1]; got {ratio}")
        self.patch_size = int(patch_size)
        self.ratio = float(ratio)
        self.fill_value = float(fill_value)

    def __repr__(self) -> str:
        return f"PatchMasker(patch_size={self.patch_size}, ratio={self.ratio}, fill_value={self.fill_value})"

    def num_masked(self, num_patches: int) -> int:
        """Patches masked per image out of ``num_patches``."""
        return max(1, round(self.ratio * num_patches))

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Mask ``images``.

        Args:
            images: (B, C, H, W) images; H and W must be multiples of ``patch_size``. Not modified.
            generator: CPU generator the patch scores are drawn from (None: the global CPU generator).

        Returns:
            ``(masked, mask)``: the masked copy of ``images`` and the (B, 1, H, W) mask (1 = masked) on the
            images' device and dtype.

        Raises:
            ValueError: If ``images`` is not 4-D or its size is not a multiple of ``patch_size``.
        """
        if images.ndim != 4:
            raise ValueError(f"images must be (B, C, H, W); got shape {tuple(images.shape)}")
        batch, _, height, width = images.shape
        p = self.patch_size
        if height % p or width % p:
            raise ValueError(f"image size {height}x{width} is not a multiple of patch_size={p}")
        rows, cols = height // p, width // p
        num_patches = rows * cols
        # Scores on the CPU so that a seeded generator reproduces the masks on CPU and GPU alike.
        scores = torch.rand(batch, num_patches, generator=generator)
        chosen = scores.argsort(dim=1)[:, : self.num_masked(num_patches)]
        patches = torch.zeros(batch, num_patches, dtype=torch.bool)
        patches.scatter_(1, chosen, True)
        # Only the patch grid crosses to the device (without a host synchronisation); the pixels are filled there.
        patches = host_to_device(patches, images.device)
        mask = (patches.view(batch, 1, rows, 1, cols, 1).expand(batch, 1, rows, p, cols, p)
                .reshape(batch, 1, height, width))
        masked = images.masked_fill(mask, self.fill_value)  # out of place: the input stays intact
        return masked, mask.to(images.dtype)

