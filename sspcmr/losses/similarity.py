"""The similarity logits the contrastive losses share: NT-Xent (:mod:`sspcmr.losses.ntxent`) and PCL
(:mod:`sspcmr.losses.contrastive`, docs/reference.md#pcl-loss).

Each anchor's similarity with itself is set to -inf rather than dropped by boolean-mask indexing: exp(-inf) = 0
leaves it out of every softmax denominator, and the logits keep their shape, whereas mask indexing is a
``nonzero`` whose output size the host has to wait for, on a GPU at every step.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["self_masked_logits"]


def self_masked_logits(anchors: Tensor, candidates: Tensor, own: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    """``anchors · candidatesᵀ / temperature`` with each anchor's own column at -inf, and where those are.

    Args:
        anchors: (A, D) L2-normalised anchor embeddings (this rank's rows).
        candidates: (C, D) L2-normalised candidate embeddings (every rank's rows when gathering), same dtype.
        own: (A,) long, on the anchors' device: the column of ``candidates`` that is anchor i itself.
        temperature: Softmax temperature T.

    Returns:
        The (A, C) logits with ``logits[i, own[i]] = -inf``, and the (A, C) bool mask of those entries.
    """
    logits = anchors @ candidates.T / temperature
    is_self = torch.zeros_like(logits, dtype=torch.bool)
    is_self[torch.arange(anchors.shape[0], device=anchors.device), own] = True
    return logits.masked_fill(is_self, float("-inf")), is_self
