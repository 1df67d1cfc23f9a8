"""host_to_device: the values and dtype of ``Tensor.to``; on a GPU, a copy that does not synchronise."""

from __future__ import annotations

import pytest
import torch

from sspcmr.transforms.host_to_device import host_to_device


def test_values_and_dtype_are_those_of_to() -> None:
    x = torch.arange(12, dtype=torch.int64).view(3, 4)
    for dtype in (None, torch.float64, torch.float32, torch.bool):
        expected = x if dtype is None else x.to(dtype)
        out = host_to_device(x[:, 1:], torch.device("cpu"), dtype)  # a non-contiguous view too
        assert out.dtype == expected.dtype and torch.equal(out, expected[:, 1:])
    assert host_to_device(x, "cpu") is x  # nothing to change: the tensor itself, no copy
    y = torch.tensor([0.1, 1 / 3], dtype=torch.float64)
    assert torch.equal(host_to_device(y, "cpu", torch.float32), y.float())  # rounded once, like .to


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_cuda_copy_does_not_synchronise() -> None:
    x = torch.randn(64, 3, dtype=torch.float64)
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = host_to_device(x, "cuda", torch.float32)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert out.is_cuda and torch.equal(out.cpu(), x.float())
