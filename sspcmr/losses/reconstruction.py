"""Reconstruction losses of the pretext tasks that restore an image: masked image modelling and inpainting.

:func:`masked_mse` is MIM's loss (docs/reference.md#mim-loss): the MSE on the masked pixels only, pooled over the
batch. :func:`restoration_loss` is inpainting's (Dominic et al. 2023): an L2 loss over all pixels. Both are
computed in float32 whatever the autocast precision (their inputs are cast at the entry; the element-wise
operations and sums they use are never lowered by autocast), and neither reads a value on the host.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = ["masked_mse", "restoration_loss"]


def masked_mse(output: Tensor, target: Tensor, mask: Tensor, check_empty: bool = False) -> Tensor:
    """Mean squared error over the masked elements of the whole batch.

    ``Σ mask · (output − target)² / Σ mask`` in float32, with the mask broadcast over the channels (both sums
    over the broadcast mask, so it is the mean over masked elements; for the reference's single channel this
    is the masked-pixel mean). Pooled over the batch as in the reference: an image with more masked pixels
    weighs more, unlike a mean of per-image losses.

    An empty mask (no masked element; MIM's masker never draws one) gives 0, still attached to the graph (zero
    gradients, so every rank of a DDP step runs the same backward): the denominator is replaced by 1 there
    rather than checked, because reading it on the host would stop the device at every step.

    Args:
        output: (B, C, H, W) reconstruction.
        target: (B, C, H, W) original images.
        mask: (B, 1, H, W) or (B, C, H, W) mask, 1 (or True) where masked.
        check_empty: Raise on an empty mask instead (a debugging aid: it reads the mask's sum on the host,
            a device synchronisation).

    Returns:
        Scalar float32 loss.

    Raises:
        ValueError: On mismatched shapes, or on an empty mask with ``check_empty``.
    """
    if output.shape != target.shape:
        raise ValueError(f"output and target shapes differ: {tuple(output.shape)} vs {tuple(target.shape)}")
    try:
        shape = torch.broadcast_shapes(mask.shape, output.shape)
    except RuntimeError as error:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to {tuple(output.shape)}") from error
    if shape != output.shape:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to {tuple(output.shape)}")
    weights = mask.float().expand(shape)
    total = weights.sum()
    if check_empty and total.item() == 0:
        raise ValueError("masked_mse: the mask is empty (no masked pixel), the loss is undefined")
    squared = (output.float() - target.float()).square()
    # Dividing by 1 where the mask is empty (the numerator is 0 there) keeps the loss defined without a host read.
    return (weights * squared).sum() / torch.where(total > 0, total, 1.0)


def restoration_loss(output: Tensor, target: Tensor, reduction: Literal["mean", "sum"]) -> Tensor:
    """L2 loss over all pixels in float32: ``mean`` over every element, or the paper's eq. A1 (``sum`` over
    the pixels of each image and channel, mean over batch and channels), which is ``H·W`` times the mean."""
    squared = (output.float() - target.float()).square()
    if reduction == "sum":
        return squared.sum(dim=(2, 3)).mean()
    return squared.mean()
