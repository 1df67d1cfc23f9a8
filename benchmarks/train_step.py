"""Training-step throughput of the segmentation U-Net: slices per second and peak memory.

Measures one optimiser step (forward, deep-supervision DiceCE loss, backward, SGD) of
``sspcmr.methods.Segmentation``'s network at 256 x 256, as nnU-Net benchmarks itself:

* ``synthetic``: random images and labels already on the device (the network alone);
* ``loader``: batches from ``CineDataModule`` (native slices -> device -> batched augmentation),
  so data loading and augmentation are included.

for fp32 and bf16-mixed (autocast) and with channels-last memory format on or off.

    python benchmarks/train_step.py --device cuda --batch-size 128 --steps 30 --out train_step.json
    python benchmarks/train_step.py --device cpu --batch-size 4 --steps 3          # what runs here
    python benchmarks/train_step.py --device cuda --prepared PREP --split SPLIT     # adds the loader mode

The full-size U-Net costs about 89 GFLOP per 256 x 256 slice for forward and backward.
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import nullcontext

import torch

from sspcmr.data import keys as K
from sspcmr.losses import DeepSupervisionLoss, DiceCELoss
from sspcmr.models import UNet, UNetConfig


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _synthetic_batches(batch_size: int, size: int, device: torch.device):
    image = torch.randn(batch_size, 1, size, size, device=device)
    labels = torch.randint(0, 4, (batch_size, size, size), device=device)
    onehot = torch.nn.functional.one_hot(labels, 4).permute(0, 3, 1, 2).float()
    while True:
        yield image, onehot


def _loader_batches(prepared: str, split: str, batch_size: int, size: int, device: torch.device, workers: int):
    from lightning.pytorch.utilities import move_data_to_device

    from sspcmr.data.datamodule import CineDataModule
    from sspcmr.methods import Segmentation

    module = CineDataModule(prepared, split, mode="segment", batch_size=batch_size, num_workers=workers,
                            output_size=size)
    module.setup("fit")
    recipe = Segmentation(channels=[8, 16, 32], output_size=size)  # its augmentation only (what fit runs)
    while True:
        for batch in module.train_dataloader():
            batch = move_data_to_device(batch, device)  # Lightning's batch transfer
            batch = recipe.augment(batch, training=True)
            yield batch[K.IMAGE], batch[K.LABEL]


def measure(batches, device: torch.device, precision: str, channels_last: bool, steps: int, warmup: int) -> dict:
    """Median step time, slices per second and peak memory for one setting."""
    net = UNet(UNetConfig()).to(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=memory_format)
    loss_fn = DeepSupervisionLoss(DiceCELoss(), num_scales=net.num_outputs)
    optimiser = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.99, nesterov=True, weight_decay=3e-5)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16-mixed" else nullcontext()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    batch_size = 0
    for step in range(warmup + steps):
        image, target = next(batches)
        batch_size = image.shape[0]
        _sync(device)
        start = time.perf_counter()
        image = image.to(memory_format=memory_format)
        with autocast:
            outputs = net(image)
        # The loss in fp32 (softmax and CE run in fp32 under autocast anyway).
        loss = loss_fn([o.float() for o in outputs], target).total
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        _sync(device)
        if step >= warmup:
            times.append(time.perf_counter() - start)
    median = sorted(times)[len(times) // 2]
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return {"precision": precision, "channels_last": channels_last, "batch_size": batch_size,
            "step_ms": 1000 * median, "slices_per_s": batch_size / median, "peak_gib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--prepared", default=None, help="prepared folder: also measure with the data loader")
    parser.add_argument("--split", default=None)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--precisions", nargs="+", default=["32-true", "bf16-mixed"])
    parser.add_argument("--out", default=None, help="JSON results file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    results = []
    modes = ["synthetic"] + (["loader"] if args.prepared else [])
    for mode in modes:
        for precision in args.precisions:
            for channels_last in (False, True):
                torch.manual_seed(0)
                batches = (_synthetic_batches(args.batch_size, args.size, device) if mode == "synthetic" else
                           _loader_batches(args.prepared, args.split, args.batch_size, args.size, device,
                                           args.workers))
                row = {"mode": mode, "device": str(device), **measure(batches, device, precision, channels_last,
                                                                         args.steps, args.warmup)}
                results.append(row)
                print(f"{mode:9s} {precision:10s} channels_last={channels_last!s:5s} batch {row['batch_size']:4d}: "
                      f"{row['step_ms']:9.1f} ms/step  {row['slices_per_s']:8.1f} slices/s  "
                      f"peak {row['peak_gib']:.2f} GiB", flush=True)
    meta = {"torch": torch.__version__, "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
            else "cpu", "threads": torch.get_num_threads()}
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({"meta": meta, "results": results}, handle, indent=1)


if __name__ == "__main__":
    main()
