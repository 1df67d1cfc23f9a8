"""No host synchronisation on any method's training hot path.

One real training step per method (Lightning, one batch of the tiny phantom, 64 px, a 4-stage U-Net) runs with
every tensor that would live on the accelerator marked: the transferred batch, the module's buffers, and
everything computed from them or created with an explicit ``device=``. While the module's own code runs
(``on_after_batch_transfer`` -> ``augment`` -> ``add_targets``, ``training_step`` with its losses, ``backward`` and
the module's batch hooks; not Lightning's ``self.log``, which handles tensors itself), every operation that on a
GPU waits for the device raises:

* reading a device value on the host: ``item``, ``tolist``, ``numpy``, ``cpu``, ``bool``/``int``/``float`` of a
  tensor (``if tensor:``), ``nonzero`` and boolean-mask indexing (their output size depends on the values),
  ``unique``, ``equal``/``allclose``, and ``.to`` / ``copy_`` from a device tensor into a host one;
* a blocking host-to-device copy: ``.to``/``.cuda``/``copy_`` of a host tensor onto the device without
  ``non_blocking=True``, ``torch.tensor(data, device=...)``, and indexing a device tensor with a list or a host
  index tensor. PyTorch issues these as ``cudaMemcpyAsync`` followed by ``cudaStreamSynchronize``: the host
  waits for every kernel queued before the copy.

On a CPU there is no second device, so the emulation gives one a name: a marked tensor reports its device as
``cpu:0``, the host's is ``cpu`` (PyTorch computes on both alike). ``x.device`` of a marked tensor thus names the
accelerator wherever code passes it on (``.to(x.device)``, ``torch.zeros(..., device=x.device)``), while plain
tensors (the random parameters drawn from the CPU generators) and ``"cpu"`` stay the host. Limitation: the
module's parameters are not marked (everything computed from them with a batch tensor is).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import lightning as L
import pytest
import torch
from lightly.loss import NTXentLoss as LightlyNTXentLoss
from lightning.pytorch.callbacks import Callback
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves, tree_map

from sspcmr.data.datamodule import CineDataModule
from sspcmr.methods import DINO, MIM, PCL, Inpainting, Multitask, Orientation, Segmentation, SimCLR, SliceLocation

# The guard replaces the module's transfer hook, which Lightning notes when a data module is used.
pytestmark = pytest.mark.filterwarnings("ignore:You have overridden `transfer_batch_to_device`")

TINY = [8, 16, 32, 64]
GRID = {"output_size": 64, "output_spacing": 2.5}
# Method -> (constructor options, data-module options).
METHODS: dict[str, tuple[type, dict, dict]] = {
    "simclr": (SimCLR, {}, {}),
    "pcl": (PCL, {}, {}),
    "dino": (DINO, {"hidden_dim": 32, "bottleneck_dim": 16, "output_dim": 64}, {}),
    "mim": (MIM, {"patch_size": 16}, {}),
    "inpainting": (Inpainting, {"patch_size": 16, "bank_size": 4}, {}),
    "slice_location": (SliceLocation, {}, {}),
    "orientation": (Orientation, {}, {"long_axis_only": True}),
    "multitask": (Multitask, {}, {"long_axis_only": True}),
    "segmentation": (Segmentation, {}, {"mode": "segment"}),
}

# Operations that read a device tensor's values on the host (their result, or its size, depends on them).
HOST_READS = frozenset({"item", "tolist", "numpy", "cpu", "__bool__", "__int__", "__float__", "__index__",
                        "__complex__", "__array__", "_local_scalar_dense", "nonzero", "argwhere", "masked_select",
                        "unique", "unique_consecutive", "equal", "allclose", "is_nonzero"})


class HostSyncError(AssertionError):
    """An operation that would synchronise the host with the accelerator ran on the hot path."""


DEVICE = torch.device("cpu", 0)  # the emulated accelerator: a CPU device with an index, unlike the host's


class OnDevice(torch.Tensor):
    """Marks a tensor that would live on the accelerator; results of operations on it stay marked (PyTorch's
    default ``__torch_function__`` converts a subclass's outputs to the subclass)."""

    @property
    def device(self) -> torch.device:  # type: ignore[override]
        return DEVICE


def mark(value: Any) -> Any:
    """``value`` with every tensor in it marked as on the device."""
    return tree_map(lambda t: t.as_subclass(OnDevice) if isinstance(t, torch.Tensor) and not isinstance(
        t, OnDevice) else t, value)


def _host(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and not isinstance(value, OnDevice)


def _device_target(value: Any) -> bool | None:
    """Whether a ``.to`` / ``device=`` argument means the device (True), the host (False) or neither (None)."""
    if isinstance(value, torch.Tensor):
        return isinstance(value, OnDevice)
    if isinstance(value, (torch.device, str)):
        value = torch.device(value)
        return value.type != "cpu" or value.index is not None
    return None


def _to_target(args: tuple, kwargs: dict) -> bool | None:
    for value in (kwargs.get("device"), *args[1:]):
        target = _device_target(value)
        if target is not None:
            return target
    return None


def _check_index(name: str, args: tuple) -> None:
    index = args[1]
    for item in index if isinstance(index, tuple) else (index,):
        if isinstance(item, torch.Tensor) and item.dtype == torch.bool:
            raise HostSyncError(f"{name} with a boolean mask (a nonzero: its size is read on the host)")
        if _host(item) or isinstance(item, list):
            raise HostSyncError(f"{name} with a list or host index tensor (a blocking host-to-device copy)")
    if name == "__setitem__" and _host(args[2]) and args[2].dim() > 0:
        raise HostSyncError("__setitem__ of a host tensor into a device tensor (a blocking host-to-device copy)")


def check(func: Callable, args: tuple, kwargs: dict) -> None:
    """Raise :class:`HostSyncError` if ``func(*args, **kwargs)`` would synchronise with the device."""
    name = getattr(func, "__name__", "")
    self = args[0] if args else None
    if name in HOST_READS and any(isinstance(t, OnDevice) for t in tree_leaves((args, kwargs))):
        raise HostSyncError(f"{name}() reads a device tensor on the host")
    blocking = not kwargs.get("non_blocking", False)
    if name in ("to", "cuda") and isinstance(self, torch.Tensor):
        target = True if name == "cuda" else _to_target(args, kwargs)
        if isinstance(self, OnDevice) and target is False:
            raise HostSyncError(f"{name}() copies a device tensor to the host")
        if _host(self) and target and blocking:
            raise HostSyncError(f"{name}() copies a host tensor to the device without non_blocking=True")
    if name == "copy_":
        blocking = blocking and not (len(args) > 2 and args[2])
        if _host(self) and isinstance(args[1], OnDevice):
            raise HostSyncError("copy_() copies a device tensor into a host tensor")
        if isinstance(self, OnDevice) and _host(args[1]) and args[1].dim() > 0 and blocking:
            raise HostSyncError("copy_() copies a host tensor to the device without non_blocking=True")
    if name in ("__getitem__", "__setitem__") and isinstance(self, OnDevice):
        _check_index(name, args)
    if name in ("tensor", "as_tensor") and _device_target(kwargs.get("device")) and not isinstance(
            self, torch.Tensor):
        raise HostSyncError(f"torch.{name}(data, device=...) copies host data to the device (blocking)")
    if name == "repeat_interleave" and isinstance(args[1] if len(args) > 1 else None, OnDevice) and kwargs.get(
            "output_size") is None:
        raise HostSyncError("repeat_interleave with device repeats and no output_size reads them on the host")


class HostSyncGuard(TorchFunctionMode):
    """While active: :func:`check` every torch call, and mark what is created on (or moved to) the device."""

    def __init__(self) -> None:
        super().__init__()
        self.paused = False
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.paused:
            return func(*args, **kwargs)
        self.calls += 1
        check(func, args, kwargs)
        out = func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        created = _device_target(kwargs.get("device")) or (name == "to" and _to_target(args, kwargs)) or (
            name == "cuda")
        return mark(out) if created else out


class GuardCallback(Callback):
    """Runs the module's hot-path code under a :class:`HostSyncGuard` (see the module docstring)."""

    HOT = ("on_after_batch_transfer", "on_train_batch_start", "training_step", "backward", "on_after_backward",
           "on_train_batch_end")

    def __init__(self) -> None:
        self.guard = HostSyncGuard()
        self.guarded: list[str] = []

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        transfer = pl_module.transfer_batch_to_device
        pl_module.transfer_batch_to_device = lambda batch, device, idx: mark(transfer(batch, device, idx))
        for name in self.HOT:
            setattr(pl_module, name, self._armed(name, getattr(pl_module, name)))
        for name in ("log", "log_dict"):  # Lightning's logging handles tensors without our help
            setattr(pl_module, name, self._paused(getattr(pl_module, name)))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for module in pl_module.modules():  # the buffers live on the device with the module
            for name, buffer in list(module._buffers.items()):
                if buffer is not None:
                    module._buffers[name] = mark(buffer)

    def _armed(self, name: str, method: Callable) -> Callable:
        @functools.wraps(method)
        def run(*args, **kwargs):
            self.guarded.append(name)
            with self.guard:
                return method(*args, **kwargs)
        return run

    def _paused(self, method: Callable) -> Callable:
        @functools.wraps(method)
        def run(*args, **kwargs):
            self.guard.paused = True
            try:
                return method(*args, **kwargs)
            finally:
                self.guard.paused = False
        return run


def test_the_guard_catches_host_reads_and_blocking_copies() -> None:
    device = mark(torch.ones(4))
    host = torch.ones(4)
    allowed = [
        lambda: device * host, lambda: device.sum(), lambda: device[1:], lambda: bool(host.sum()),
        lambda: host.to(device.device, non_blocking=True), lambda: host.to(host.device),
        lambda: torch.zeros(2, device=device.device), lambda: device.masked_fill(device > 0, 0.0),
        lambda: torch.where(device > 0, device, 0.0),
    ]
    caught = [
        lambda: device.sum().item(), lambda: device.tolist(), lambda: device.numpy(), lambda: device.cpu(),
        lambda: device.to("cpu"), lambda: host.copy_(device), lambda: bool(device.sum() > 0), lambda: int(device[0]),
        lambda: device.nonzero(), lambda: device[device > 0], lambda: device[[0, 1]], lambda: host.to(device),
        lambda: host.to(device.device), lambda: torch.tensor([1.0], device=device.device),
        # lightly's NT-Xent drops its diagonal by boolean-mask indexing (why sspcmr has its own NT-Xent)
        lambda: LightlyNTXentLoss()(device.view(2, 2), device.view(2, 2)),
    ]
    with HostSyncGuard() as guard:
        for fn in allowed:
            fn()
        created = torch.arange(3, device=device.device)
        for fn in caught:
            with pytest.raises(HostSyncError):
                fn()
    assert isinstance(created, OnDevice) and guard.calls > len(allowed)


def _data(prepared_tiny, options: dict) -> CineDataModule:
    root, split = prepared_tiny
    options = {"mode": "pretrain", **options}
    return CineDataModule(str(root), str(split), batch_size=4, val_batch_size=4, num_workers=0, **GRID, **options)


@pytest.mark.parametrize("name", list(METHODS))
def test_one_training_step_has_no_host_synchronisation(prepared_tiny, tmp_path, name: str) -> None:
    cls, options, data_options = METHODS[name]
    torch.manual_seed(0)
    model = cls(channels=TINY, **GRID, **options)
    callback = GuardCallback()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, max_steps=1, limit_train_batches=1,
                        limit_val_batches=0, num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1,
                        default_root_dir=str(tmp_path), callbacks=[callback])
    trainer.fit(model, datamodule=_data(prepared_tiny, data_options))
    # The step really ran under the guard: augmentation, step and backward, with many torch calls checked.
    assert {"on_after_batch_transfer", "training_step", "backward"} <= set(callback.guarded)
    assert callback.guard.calls > 100 and trainer.global_step == 1
