"""Per-step schedules of DINO (docs/reference.md#dino-schedules, #dino-loss), written from DINO's definitions.

DINO sets the learning rate, the weight decay and the teacher momentum at every optimiser step from
precomputed arrays of length ``epochs x iterations_per_epoch``; the teacher temperature changes per epoch
(lightly's ``DINOLoss`` holds that warm-up). lightly's ``cosine_schedule`` divides by ``max_steps - 1`` and
has no warmup, so it does not give the reference's numbers; these functions do.
"""

from __future__ import annotations

import math

import torch


def dino_cosine_schedule(
    base: float,
    final: float,
    epochs: int,
    iterations_per_epoch: int,
    warmup_epochs: int = 0,
    warmup_start: float = 0.0,
) -> torch.Tensor:
    """DINO's ``cosine_scheduler``: a linear warmup, then a half cosine from ``base`` to ``final``.

    The warmup is ``linspace(warmup_start, base, W)`` over W = warmup_epochs x iterations steps (so its last
    step already equals ``base``); the remaining N steps follow ``final + (base - final)(1 + cos(pi i / N)) / 2``
    for i = 0..N-1, so the last value is slightly above ``final``.

    Returns:
        float64 tensor of length ``epochs x iterations_per_epoch``.
    """
    if epochs < 1 or iterations_per_epoch < 1 or warmup_epochs < 0:
        raise ValueError(f"epochs and iterations_per_epoch must be >= 1 and warmup_epochs >= 0; got {epochs}, "
                         f"{iterations_per_epoch}, {warmup_epochs}")
    total = epochs * iterations_per_epoch
    warmup_steps = min(warmup_epochs * iterations_per_epoch, total)
    warmup = torch.linspace(warmup_start, base, warmup_steps, dtype=torch.float64) if warmup_steps else \
        torch.empty(0, dtype=torch.float64)
    steps = torch.arange(total - warmup_steps, dtype=torch.float64)
    cosine = final + 0.5 * (base - final) * (1 + torch.cos(math.pi * steps / max(1, len(steps))))
    return torch.cat([warmup, cosine])
