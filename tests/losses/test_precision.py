"""``autocast_off``: full precision inside an autocast, and no error on the meta device (FLOP counting)."""

from __future__ import annotations

import torch

from sspcmr.losses import DiceCELoss
from sspcmr.losses.precision import autocast_off


def test_autocast_off_computes_in_float32_inside_a_bf16_autocast():
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (a @ b).dtype == torch.bfloat16
        with autocast_off("cpu"):
            assert (a @ b).dtype == torch.float32
        assert (a @ b).dtype == torch.bfloat16  # restored on exit


def test_losses_run_on_the_meta_device():
    # torch.autocast(device_type="meta") raises; the FLOP counter of `sspcmr study --estimate` runs steps on meta
    logits = torch.empty(2, 4, 8, 8, device="meta", requires_grad=True)
    target = torch.empty(2, 4, 8, 8, device="meta")
    loss = DiceCELoss()(logits, target).total
    assert loss.device.type == "meta" and loss.shape == ()
