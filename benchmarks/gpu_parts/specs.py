"""The measured methods as their shipped configs build them (configs/pretrain/*.yaml, configs/segmentation/
finetune.yaml): the model's class and ``init_args``, the batch size, precision and data options; at toy size a
small U-Net (channels 8-64) at 64 px with small heads."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

import yaml

from sspcmr.shipped_configs import packaged_config

# Method name -> shipped config, in the order the benchmark measures them.
CONFIGS = {
    "segmentation": "segmentation/finetune",
    "simclr": "pretrain/simclr",
    "pcl": "pretrain/pcl",
    "dino": "pretrain/dino",
    "mim": "pretrain/mim",
    "slice_location": "pretrain/slice_location",
    "orientation": "pretrain/orientation",
    "inpainting": "pretrain/inpainting",
    "multitask": "pretrain/multitask",
}
TOY_CHANNELS = [8, 16, 32, 64]
TOY_PX = 64
TOY_BATCH = 8
# Heads and corruptions scaled to the toy grid (the reference ones need 256 px or are needlessly large).
TOY_OPTIONS: dict[str, dict[str, Any]] = {
    "dino": {"hidden_dim": 32, "bottleneck_dim": 16, "output_dim": 64},
    "mim": {"patch_size": 16},
    "inpainting": {"patch_size": 8, "bank_size": 4},
}
PRECISIONS = {"32": "32", "32-true": "32", "16-mixed": "16-mixed", "bf16-mixed": "bf16-mixed"}


@dataclass(frozen=True)
class MethodSpec:
    """One method as its config runs it.

    Attributes:
        name: the method's short name (``simclr``, ..., ``segmentation``).
        config: the shipped config it comes from.
        class_path: the LightningModule's import path.
        init_args: the model's constructor arguments (the config's, with the grid and toy overrides).
        batch_size: source slices per training step.
        precision: the config's precision (``32``, ``16-mixed`` or ``bf16-mixed``).
        data: the ``CineDataModule`` options besides the data paths (mode, phases, ``long_axis_only``, grid,
            batch size, workers).
    """

    name: str
    config: str
    class_path: str
    init_args: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 32
    precision: str = "32"
    data: dict[str, Any] = field(default_factory=dict)

    def build(self, **extra: Any):
        """A fresh module (on the CPU) from ``init_args`` plus ``extra``."""
        module_name, _, class_name = self.class_path.rpartition(".")
        cls = getattr(importlib.import_module(module_name), class_name)
        return cls(**{**self.init_args, **extra})


def load_spec(name: str, toy: bool) -> MethodSpec:
    """The spec of method ``name`` read from its shipped config (toy: small network, grid and batch)."""
    config = CONFIGS[name]
    text = yaml.safe_load(packaged_config(config).read_text())
    model, data = text["model"], dict(text["data"])
    init_args = dict(model.get("init_args") or {})
    if name != "segmentation":
        init_args["probe"] = False  # the validation probe never runs in a training step
    px, spacing = data.get("output_size", 256), data.get("output_spacing", 1.25)
    batch = data["batch_size"]
    if toy:
        px, spacing, batch = TOY_PX, 1.25 * 256 / TOY_PX, TOY_BATCH
        init_args.update(channels=TOY_CHANNELS, **TOY_OPTIONS.get(name, {}))
    init_args.update(output_size=px, output_spacing=spacing)
    data_options = {key: data[key] for key in ("mode", "long_axis_only", "train_phases") if key in data}
    data_options.update(output_size=px, output_spacing=spacing, batch_size=batch,
                        num_workers=data.get("num_workers", 2))
    precision = PRECISIONS[str(text["trainer"].get("precision", "32"))]
    return MethodSpec(name, config, model["class_path"], init_args, batch, precision, data_options)
