"""Copies of small host tensors (random parameters drawn on the CPU, constants) to the device without a host
synchronisation.

A plain ``cpu_tensor.to("cuda")`` is a blocking copy: PyTorch issues it as ``cudaMemcpyAsync`` followed by
``cudaStreamSynchronize``, so the host waits until every kernel queued before it has run, and the GPU then idles
until the host queues more work. Copying from pinned (page-locked) memory with ``non_blocking=True`` only
queues the copy; PyTorch's pinned-memory cache keeps the staging buffer until the copy has run, so the source
can be dropped at once.
"""

from __future__ import annotations

import torch

__all__ = ["host_to_device"]


def host_to_device(tensor: torch.Tensor, device: torch.device | str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``tensor`` on ``device`` (and in ``dtype``), without waiting for the device.

    Args:
        tensor: A tensor on any device; usually a small host tensor.
        device: The target device, e.g. ``image.device``.
        dtype: The target dtype (None: keep it). The cast happens before the copy, on the tensor's own device.

    Returns:
        The tensor on ``device``; ``tensor`` itself when nothing changes. Values are the same as
        ``tensor.to(device, dtype)``.
    """
    device = torch.device(device)
    if dtype is not None:
        tensor = tensor.to(dtype)
    if tensor.device.type == "cpu" and device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    # CPU to CPU copies nothing, so ``non_blocking`` changes nothing there; every other pair of devices copies
    # as PyTorch does by default (a non-blocking copy to the host could be read before it has arrived).
    return tensor.to(device, non_blocking=tensor.device.type == device.type == "cpu")
