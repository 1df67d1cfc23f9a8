"""Pretraining throughput of the four self-supervised methods: source slices per second per optimiser step.

For each of ``SimCLR``, ``PCL``, ``DINO`` and ``MIM`` (``sspcmr.methods``) this times one full optimiser step
on augmented views that are already on the device, data loading excluded:

    hooks -> autocast(training_step) -> zero_grad -> backward -> on_after_backward -> optimiser step -> hooks

``training_step`` is the method's own, so its extra work is included: DINO's teacher forward (no gradient)
inside the step and its teacher EMA in ``on_train_batch_end`` after the optimiser step; MIM's patch masking
(scores drawn on the CPU, the mask moved to the device). The loop calls the hooks in the order Lightning's
automatic optimisation does (``on_train_start`` once; per step ``on_train_batch_start``, ``training_step``,
``zero_grad``, ``backward``, ``on_after_backward``, ``optimizer.step``, ``on_train_batch_end``) instead of
running a ``lightning.Trainer``, so the figures carry no Trainer, logger or progress-bar overhead. The
module is attached to a minimal stand-in trainer (``_BenchTrainer``: ``global_step``, ``current_epoch``,
``max_epochs``, ``optimizers``, ...) so that DINO's hooks run unmodified, and three methods of the module
instance are replaced:

* ``log`` and ``log_dict`` do nothing (no Trainer to log to);
* ``monitor_due`` returns False: the collapse monitors (embedding std, effective rank, DINO's teacher
  entropies) are off. With a Trainer they run every ``log_every_n_steps`` steps (50 in the configs).

The optimiser is the method's own (``configure_optimizers``; the per-epoch cosine scheduler is not stepped).
The stand-in trainer sits at the start of epoch 1 (``global_step`` = 1000 = one epoch of 1000 iterations,
100 epochs), i.e. in the steady state: DINO's last layer is no longer frozen (it is in epoch 0) and DINO's
per-step learning-rate, weight-decay and teacher-momentum schedules are read at that step.

Inputs are random tensors of the shapes the method's own recipe (its ``train_augmentation``) produces:
``VIEWS`` = 2 views of S px for SimCLR / PCL, 2 global S px + 6 local S/2 px views for DINO; ``IMAGE`` (one
S px view) for MIM; plus ``POSITION`` (PCL's positives). With ``--with-augmentation`` each step first runs the
method's real augmentation
(the method's ``augment(batch, training=True)``, outside autocast, as in ``on_after_batch_transfer``) on a
synthetic native batch on the device (7/8 S px slices, min-shifted intensities), timed separately.

Sizes:

* ``reference``: the default U-Net (7 stages, 32-512 channels) at 256 px, the reference heads (SimCLR/PCL MLP
  512-512-512; DINO 512-2048-2048-256 -> 8192 outputs; MIM 1-channel full-resolution head, 32 px patches);
* ``tiny``: channels 8, 16, 32, 64 at 64 px, the test suite's small heads (DINO 32-16 -> 64 outputs; MIM 16 px
  patches).

Default batches (source slices): on cuda the reference configs' 224 / 64 / 64 / 128 (SimCLR / PCL / DINO / MIM);
on the CPU 4 (reference) or 32 (tiny). Default precision: on cuda each config's own (16-mixed for SimCLR,
DINO and MIM, 32 for PCL); on the CPU 32. ``16-mixed`` uses a ``GradScaler`` as Lightning does.

    python benchmarks/pretrain_step.py --device cuda --size reference --steps 30 --out pretrain_step_cuda.json
    python benchmarks/pretrain_step.py --device cuda --size reference --precision bf16-mixed --with-augmentation
    python benchmarks/pretrain_step.py --device cpu --size tiny --threads 2                       # what runs here
    python benchmarks/pretrain_step.py --device cpu --size reference --batch 4 --steps 3 --warmup 1 --threads 2
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import statistics
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch

from sspcmr.data import keys as K
from sspcmr.methods import DINO, MIM, PCL, SimCLR
from sspcmr.methods.pretrain import Pretraining
from sspcmr.transforms.views import Augmenter

METHODS: dict[str, type[Pretraining]] = {"simclr": SimCLR, "pcl": PCL, "dino": DINO, "mim": MIM}
TINY_CHANNELS = [8, 16, 32, 64]
SIZES = {"reference": 256, "tiny": 64}
# Method options per size beyond the channels (reference: the methods' defaults, i.e. the reference configs).
OPTIONS: dict[str, dict[str, dict[str, Any]]] = {
    "reference": {"simclr": {}, "pcl": {}, "dino": {}, "mim": {}},
    "tiny": {"simclr": {}, "pcl": {}, "dino": {"hidden_dim": 32, "bottleneck_dim": 16, "output_dim": 64},
             "mim": {"patch_size": 16}},
}
CUDA_BATCH = {"simclr": 224, "pcl": 64, "dino": 64, "mim": 128}  # configs/pretrain/*.yaml
CUDA_PRECISION = {"simclr": "16-mixed", "pcl": "32", "dino": "16-mixed", "mim": "16-mixed"}
EPOCHS, ITERATIONS_PER_EPOCH = 100, 1000


@dataclass
class _BenchTrainer:
    """What the methods' hooks read from ``self.trainer``; a stand-in for ``lightning.Trainer``."""

    optimizers: list = field(default_factory=list)
    global_step: int = ITERATIONS_PER_EPOCH
    current_epoch: int = 1
    max_epochs: int = EPOCHS
    num_training_batches: int = ITERATIONS_PER_EPOCH
    accumulate_grad_batches: int = 1
    log_every_n_steps: int = 50
    global_rank: int = 0
    world_size: int = 1
    training: bool = True
    sanity_checking: bool = False
    datamodule: Any = None


def _no_log(*args: Any, **kwargs: Any) -> None:
    return None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_module(name: str, size: str, device: torch.device) -> tuple[Pretraining, torch.optim.Optimizer]:
    """The method on ``device`` attached to a ``_BenchTrainer``, logging and monitors off, and its optimiser."""
    channels = TINY_CHANNELS if size == "tiny" else None
    px = SIZES[size]  # the grid the method's own recipe resamples to
    module = METHODS[name](channels=channels, probe=False, output_size=px, output_spacing=1.25 * 256 / px,
                           **OPTIONS[size][name]).to(device)
    return module, attach_bench_trainer(module)


def attach_bench_trainer(module: L.LightningModule) -> torch.optim.Optimizer:
    """Put ``module`` in training mode on a ``_BenchTrainer`` (logging and collapse monitors off), run its
    ``on_train_start`` and return its optimiser (``configure_optimizers``; any scheduler is not stepped)."""
    module.train()
    trainer = _BenchTrainer()
    module._trainer = trainer  # noqa: SLF001 - the stand-in trainer (see the module docstring)
    module.log = _no_log  # type: ignore[method-assign]
    module.log_dict = _no_log  # type: ignore[method-assign]
    module.monitor_due = lambda: False  # type: ignore[method-assign]  # collapse monitors off
    configured = module.configure_optimizers()
    optimizer = configured["optimizer"] if isinstance(configured, dict) else configured
    trainer.optimizers = [optimizer]
    module.on_train_start()  # DINO: its per-step schedules over EPOCHS x ITERATIONS_PER_EPOCH
    module.on_train_epoch_start()  # Segmentation: (un)freezes the encoder for the epoch
    return optimizer


def view_sizes(recipe: Augmenter) -> list[int]:
    """Side in px of each view the recipe produces, in order."""
    return [spec.geometry.output_size for spec in recipe.views for _ in range(spec.count)]


def synthetic_views(recipe: Augmenter, batch: int, device: torch.device) -> dict:
    """Random augmented-batch tensors of the recipe's shapes (what ``augment`` returns), on ``device``."""
    out = {K.POSITION: torch.rand(batch, device=device), K.SUBJECT_INDEX: torch.arange(batch, device=device)}
    views = [torch.randn(batch, 1, s, s, device=device) for s in view_sizes(recipe)]
    if recipe.single_view:
        out[K.IMAGE] = views[0]
    else:
        out[K.VIEWS] = views
    return out


def synthetic_native(batch: int, px: int, device: torch.device) -> dict:
    """A native-slice batch as the loader delivers it: 7/8 px slices covering the output's field of view."""
    native = px * 7 // 8
    spacing = 1.25 * 256 / px * px / native
    image = torch.rand(batch, 1, native, native, device=device) * 1000.0  # min-shifted intensities
    return {
        K.IMAGE: image,
        K.SIZE: torch.full((batch, 2), native, dtype=torch.int64, device=device),
        K.SPACING: torch.full((batch, 2), spacing, dtype=torch.float32, device=device),
        K.CENTER: torch.full((batch, 2), (native - 1) / 2, dtype=torch.float32, device=device)
        + torch.randn(batch, 2, device=device) * native / 16,
        K.MEAN: image.mean(dim=(1, 2, 3)),
        K.STD: image.std(dim=(1, 2, 3)),
        K.MAX: image.amax(dim=(1, 2, 3)),
        K.POSITION: torch.rand(batch, device=device),
        K.SUBJECT_INDEX: torch.arange(batch, device=device),
    }


def autocast(device: torch.device, precision: str):
    """The autocast context of a Lightning precision (``32``, ``16-mixed``, ``bf16-mixed``)."""
    if precision == "16-mixed":
        return torch.autocast(device.type, dtype=torch.float16)
    if precision == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def optimiser_step(module: L.LightningModule, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                   batch: dict, step: int, precision: str) -> torch.Tensor:
    """One automatic-optimisation step in Lightning's hook order (see the module docstring); returns the loss.

    Args:
        module: A module attached by :func:`attach_bench_trainer`.
        optimizer: Its optimiser.
        scaler: The ``GradScaler`` (enabled for ``16-mixed`` only, as Lightning's).
        batch: The augmented batch on the module's device.
        step: The batch index.
        precision: ``32``, ``16-mixed`` or ``bf16-mixed``.
    """
    device = next(module.parameters()).device
    module.on_train_batch_start(batch, step)
    with autocast(device, precision):
        loss = module.training_step(batch, step)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    module.on_after_backward()
    scaler.step(optimizer)
    scaler.update()
    module.on_train_batch_end(loss, batch, step)
    module.trainer.global_step += 1
    return loss


def measure(name: str, size: str, batch: int, device: torch.device, precision: str, steps: int, warmup: int,
            with_augmentation: bool) -> dict:
    """Median step time, slices/s, views/s and peak memory of one method."""
    px = SIZES[size]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(0)
    module, optimizer = build_module(name, size, device)
    recipe = module.train_augmentation()  # the method's own views
    views = synthetic_views(recipe, batch, device)
    native = synthetic_native(batch, px, device) if with_augmentation else None
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "16-mixed")
    step_times, aug_times = [], []
    for step in range(warmup + steps):
        if native is not None:
            _sync(device)
            start = time.perf_counter()
            views = module.augment(dict(native), training=True)
            _sync(device)
            aug_time = time.perf_counter() - start
        _sync(device)
        start = time.perf_counter()
        loss = optimiser_step(module, optimizer, scaler, views, step, precision)
        _sync(device)
        if step >= warmup:
            step_times.append(time.perf_counter() - start)
            if native is not None:
                aug_times.append(aug_time)
        if not torch.isfinite(loss.detach()).item():
            raise RuntimeError(f"{name}: non-finite loss {loss.item()} at step {step}")
    sizes = view_sizes(recipe)
    median = statistics.median(step_times)
    row = {
        "method": name, "size": size, "px": px, "device": str(device), "precision": precision, "batch": batch,
        "views_per_slice": len(sizes), "view_px": sizes,
        "pixels_per_slice_in_256px_views": sum(s * s for s in sizes) / 256**2,
        "params_m": sum(p.numel() for p in module.parameters() if p.requires_grad) / 1e6,
        "steps": steps, "warmup": warmup, "step_ms": 1000 * median,
        "step_ms_min": 1000 * min(step_times), "step_ms_max": 1000 * max(step_times),
        "slices_per_s": batch / median, "views_per_s": batch * len(sizes) / median,
        "peak_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        "final_loss": float(loss.detach()),
    }
    if aug_times:
        aug = statistics.median(aug_times)
        row.update({"aug_ms": 1000 * aug, "slices_per_s_with_aug": batch / (median + aug)})
    del module, optimizer, views, native, recipe
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def markdown(rows: list[dict]) -> str:
    """The results as a markdown table."""
    with_aug = any("aug_ms" in r for r in rows)
    head = ["method", "size", "precision", "batch (slices)", "views / slice", "ms / step (median)", "slices / s",
            "views / s", "peak GiB"]
    if with_aug:
        head += ["augment ms / step", "slices / s with augment"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        peak = f"{r['peak_gib']:.2f}" if r["peak_gib"] is not None else "-"
        cells = [r["method"], r["size"], r["precision"], str(r["batch"]), str(r["views_per_slice"]),
                 f"{r['step_ms']:.1f}", f"{r['slices_per_s']:.1f}", f"{r['views_per_s']:.1f}", peak]
        if with_aug:
            cells += [f"{r['aug_ms']:.1f}" if "aug_ms" in r else "-",
                      f"{r['slices_per_s_with_aug']:.1f}" if "aug_ms" in r else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--size", choices=list(SIZES), default="reference")
    parser.add_argument("--batch", type=int, default=None,
                        help="source slices per step for every method (default: see above)")
    parser.add_argument("--precision", choices=["32", "16-mixed", "bf16-mixed"], default=None,
                        help="default: each config's own on cuda, 32 on the CPU")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 20 on cuda, 5 on the CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 3 cuda, 1 CPU)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--with-augmentation", action="store_true",
                        help="run the method's own augmentation on a native batch every step (timed separately)")
    parser.add_argument("--out", default=None, help="JSON results file")
    parser.add_argument("--markdown", default=None, help="also write the table to this markdown file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    torch.backends.cudnn.benchmark = True
    steps = args.steps if args.steps is not None else (20 if cuda else 5)
    warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
    load_before = os.getloadavg()
    rows = []
    for name in args.methods:
        batch = args.batch or (CUDA_BATCH[name] if cuda else (4 if args.size == "reference" else 32))
        precision = args.precision or (CUDA_PRECISION[name] if cuda else "32")
        row = measure(name, args.size, batch, device, precision, steps, warmup, args.with_augmentation)
        rows.append(row)
        peak = f"peak {row['peak_gib']:.2f} GiB" if row["peak_gib"] is not None else ""
        aug = (f"  augment {row['aug_ms']:8.1f} ms -> {row['slices_per_s_with_aug']:8.1f} slices/s"
               if "aug_ms" in row else "")
        print(f"{name:6s} {args.size:9s} {precision:10s} batch {batch:4d} x {row['views_per_slice']} views: "
              f"{row['step_ms']:9.1f} ms/step  {row['slices_per_s']:8.1f} slices/s  {row['views_per_s']:8.1f} views/s"
              f"  {peak}{aug}", flush=True)
    table = markdown(rows)
    print()
    print(table)
    meta = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"), "torch": torch.__version__,
        "python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
        "device_name": torch.cuda.get_device_name(device) if cuda else "cpu",
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        "with_augmentation": args.with_augmentation,
        "notes": "log/log_dict no-ops, monitor_due False (collapse monitors off); epoch 1 of a 100 x 1000-step "
                 "schedule; data loading excluded",
    }
    print(f"\nload average before {load_before}, after {meta['loadavg_after']}; torch {torch.__version__}, "
          f"{meta['threads']} threads")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({"meta": meta, "results": rows}, handle, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as handle:
            handle.write(table + "\n")


if __name__ == "__main__":
    main()
