"""The orientation task's masked heatmap loss in mixed precision (its values: tests/methods/test_orientation.py)."""

from __future__ import annotations

import torch

from sspcmr.losses import heatmap_loss
from tests.losses.autocast import assert_float32_under_autocast


def test_float32_under_autocast() -> None:
    generator = torch.Generator().manual_seed(0)
    pred, target = torch.rand(3, 2, 16, 16, generator=generator), torch.rand(3, 2, 16, 16, generator=generator)
    valid = torch.tensor([[True, False], [False, False], [True, True]])
    assert_float32_under_autocast(lambda p, t: heatmap_loss(p, t, valid), pred, target)
    # No valid channel: a float32 zero under autocast too.
    empty = torch.zeros(3, 2, dtype=torch.bool)
    assert assert_float32_under_autocast(lambda p, t: heatmap_loss(p, t, empty), pred, target).item() == 0.0
