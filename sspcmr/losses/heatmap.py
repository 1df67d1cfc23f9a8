"""The masked heatmap regression loss of the orientation pretext task (Zhang et al., paper eq. 2)."""

from __future__ import annotations

import torch

__all__ = ["heatmap_loss"]


def heatmap_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Squared error averaged over the valid (slice, channel) pairs and their pixels.

    Args:
        pred: (B, K, S, S) predicted heatmaps, any float dtype (the loss is computed in float32: it uses only
            element-wise operations and means, which autocast never lowers).
        target: (B, K, S, S) target heatmaps.
        valid: (B, K) bool; invalid channels contribute nothing (a row without any contributes nothing).

    Returns:
        Scalar fp32 loss; ``pred.sum() * 0`` (zero, still attached to the graph, so every rank of a DDP
        step runs the same backward) when no channel is valid.
    """
    weights = valid.to(torch.float32)
    count = weights.sum()
    per_channel = (pred.float() - target.float()).square().mean(dim=(2, 3))  # (B, K)
    # The zero fallback is selected without a host synchronisation on ``count``.
    return torch.where(count > 0, (per_channel * weights).sum() / count.clamp(min=1.0), pred.float().sum() * 0)
