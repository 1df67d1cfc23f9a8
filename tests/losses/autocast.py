"""The mixed-precision check every loss passes (float32 losses under autocast)."""

from __future__ import annotations

from collections.abc import Callable

import torch


def assert_float32_under_autocast(loss: Callable[..., torch.Tensor], *inputs: torch.Tensor) -> torch.Tensor:
    """Assert that ``loss`` of the floating inputs rounded to bfloat16, called under CPU bfloat16 autocast, is a
    finite float32 tensor equal (to float32 rounding) to ``loss`` of the same values in float32 without autocast.

    Any operation of the loss that autocast lowers to bfloat16 (a matmul, a softmax over bfloat16 logits) or
    that keeps the inputs' bfloat16 shows as a relative difference of about 1e-3 or more, far beyond the
    tolerance. ``loss`` is called twice: a stateful loss should be built afresh in it.

    Returns:
        The loss under autocast.
    """
    low = [x.bfloat16() if x.is_floating_point() else x for x in inputs]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(*low)
    reference = loss(*[x.float() if x.is_floating_point() else x for x in low])
    assert value.dtype == torch.float32, value.dtype
    assert torch.isfinite(value).all()
    torch.testing.assert_close(value, reference, rtol=1e-5, atol=1e-6)
    return value
