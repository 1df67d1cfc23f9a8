"""Deep supervision: a weighted sum of one loss over the U-Net's multi-scale heads
(docs/reference.md#segmentation-loss).

The reference U-Net has 6 segmentation heads, at 256² down to 8² (docs/reference.md#unet). Head i is trained against
the one-hot labels downsampled with ``F.interpolate(mode="nearest-exact")`` (for 256 → 128 this keeps the
odd pixel indices) and weighted by w_i = 2^−i / Σ_j 2^−j over *all* heads, so the full-resolution weight is
≈ 0.508, not 1. The loss and each logged component are Σ_i w_i · [total_i, CE_i, Dice_i].

The paper calls its setup "nnU-Net-style", but nnU-Net also sets the lowest-resolution head's weight to 0
before normalising (docs/reference.md#quirk-not-nnunet); ``weighting="nnunet"`` provides that variant.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from sspcmr.losses.segmentation import SegmentationLossOutput

__all__ = ["DeepSupervisionLoss", "deep_supervision_weights"]

Weighting = Literal["reference", "nnunet"]


def deep_supervision_weights(num_scales: int, weighting: Weighting = "reference") -> torch.Tensor:
    """Per-head loss weights, highest resolution first, summing to 1.

    Args:
        num_scales: Number of heads n (reference: 6).
        weighting: ``"reference"``: w_i ∝ 2^−i over all heads, i.e. [0.507937, 0.253968, 0.126984, 0.063492,
            0.031746, 0.015873] for n = 6 (docs/reference.md#segmentation-loss, #reference-numbers). ``"nnunet"``: the
            same with the lowest-resolution weight set to 0 before normalising (nnU-Net's deep supervision).

    Returns:
        (n,) float64 weights.

    Raises:
        ValueError: If ``weighting`` is unknown, ``num_scales < 1``, or ``"nnunet"`` has fewer than 2 heads.
    """
    if weighting not in ("reference", "nnunet"):
        raise ValueError(f"weighting must be 'reference' or 'nnunet', got {weighting!r}")
    minimum = 2 if weighting == "nnunet" else 1
    if num_scales < minimum:
        raise ValueError(f"num_scales must be >= {minimum} for weighting={weighting!r}, got {num_scales}")
    weights = 0.5 ** torch.arange(num_scales, dtype=torch.float64)
    if weighting == "nnunet":
        weights[-1] = 0.0
    return weights / weights.sum()


class DeepSupervisionLoss(nn.Module):
    """Apply a loss to every deep-supervision head against nearest-exact downsampled targets and sum.

    Args:
        loss: Loss module called as ``loss(logits, target)`` for each head, returning the scalar components
            (total, ce, dice), e.g. :class:`~sspcmr.losses.segmentation.DiceCELoss`.
        num_scales: Number of heads the network outputs (reference: 6).
        weighting: ``"reference"`` (2^−i over all heads) or ``"nnunet"`` (lowest head weight 0); see
            :func:`deep_supervision_weights`.

    Raises:
        ValueError: For an unknown ``weighting`` or too few scales.
    """

    weights: torch.Tensor

    def __init__(self, loss: nn.Module, num_scales: int = 6, weighting: Weighting = "reference") -> None:
        super().__init__()
        self.loss = loss
        self.num_scales = num_scales
        self.weighting = weighting
        # Non-persistent: derived from the constructor arguments, so it stays out of checkpoints.
        self.register_buffer("weights", deep_supervision_weights(num_scales, weighting).float(), persistent=False)

    @staticmethod
    def downsample_target(target: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        """Resize one-hot targets to a head's spatial size with ``nearest-exact`` (docs/reference.md#segmentation-loss).

        Args:
            target: (B, C, H, W) one-hot float targets.
            size: The head's spatial size (h, w).

        Returns:
            (B, C, h, w); for an integer factor f = H / h this is ``target[..., f // 2 :: f, f // 2 :: f]``.
        """
        if tuple(target.shape[2:]) == tuple(size):
            return target
        return F.interpolate(target, size=tuple(size), mode="nearest-exact")

    def forward(self, outputs: Sequence[torch.Tensor], target: torch.Tensor) -> SegmentationLossOutput:
        """Weighted sum of the per-head losses.

        Args:
            outputs: ``num_scales`` logits tensors (B, C, h_i, w_i), highest resolution first.
            target: (B, C, H, W) full-resolution one-hot float targets.

        Returns:
            :class:`SegmentationLossOutput` of scalars Σ_i w_i · (total_i, ce_i, dice_i): the loss and its
            weighted components, as the reference logs them.

        Raises:
            ValueError: If the number of outputs differs from ``num_scales``, or a head is larger than the target
                or disagrees with it in batch size, classes or dimensionality.
        """
        if len(outputs) != self.num_scales:
            raise ValueError(
                f"expected {self.num_scales} deep-supervision outputs (one per weight), got {len(outputs)}"
            )
        sums: list[torch.Tensor] = []
        for i, logits in enumerate(outputs):
            size = logits.shape[2:]
            if (
                logits.ndim != target.ndim
                or logits.shape[:2] != target.shape[:2]
                or any(s > t for s, t in zip(size, target.shape[2:], strict=True))
            ):
                raise ValueError(
                    f"head {i} of shape {tuple(logits.shape)} does not fit the target {tuple(target.shape)}"
                )
            # Every head is evaluated, even at weight 0 ("nnunet"): its parameters then get zero gradients
            # rather than none, which keeps DDP without find_unused_parameters working.
            components = SegmentationLossOutput(*self.loss(logits, self.downsample_target(target, size)))
            weight = self.weights[i].to(logits.device)
            terms = [weight * value for value in components]
            sums = terms if not sums else [a + b for a, b in zip(sums, terms, strict=True)]
        return SegmentationLossOutput(*sums)

    def extra_repr(self) -> str:
        return f"num_scales={self.num_scales}, weighting={self.weighting!r}"
