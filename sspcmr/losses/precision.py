"""Regions computed in full precision whatever the surrounding autocast (docs/cli.md#precision)."""

from __future__ import annotations

import contextlib

import torch

__all__ = ["autocast_off"]


def autocast_off(device: torch.device | str) -> contextlib.AbstractContextManager:
    """A context that turns autocast off on ``device``; a no-op where the device type has no autocast at all
    (``meta``, on which ``sspcmr study --estimate`` counts FLOPs without computing anything)."""
    device_type = torch.device(device).type
    if not torch.amp.is_autocast_available(device_type):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, enabled=False)
