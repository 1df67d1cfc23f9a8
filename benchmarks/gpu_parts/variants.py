"""The measured variants of a training step: precision (as Lightning's ``32``, ``16-mixed``, ``bf16-mixed``),
channels-last memory format, ``torch.compile``; whether a device supports them and how a module gets them.

Channels-last and compilation are ``CineModule``'s own ``channels_last`` / ``compile`` options, applied in its
``configure_model`` as under a Trainer: the weights and the augmented network inputs in channels-last format,
the U-Net encoders and decoders compiled in place with ``nn.Module.compile()``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gpu_parts.specs import MethodSpec
from sspcmr.methods.base import CineModule


@dataclass(frozen=True)
class Variant:
    """One setting of a training step.

    Attributes:
        precision: ``32``, ``16-mixed`` (autocast fp16 + GradScaler) or ``bf16-mixed`` (autocast bf16).
        channels_last: network (and so activations) in channels-last memory format.
        compile: U-Net encoder and decoder compiled with ``torch.compile`` (default mode).
    """

    precision: str
    channels_last: bool = False
    compile: bool = False

    @property
    def name(self) -> str:
        """``fp32``, ``fp16-mixed``, ``bf16-mixed``, plus ``+ channels-last`` / ``+ compile``."""
        base = {"32": "fp32", "16-mixed": "fp16-mixed"}.get(self.precision, self.precision)
        return base + (" + channels-last" if self.channels_last else "") + (" + compile" if self.compile else "")


def unsupported(variant: Variant, device: torch.device, compile_on_cpu: bool) -> str | None:
    """Why ``variant`` is not run on ``device`` (None: it is)."""
    if device.type == "cpu":
        if variant.precision == "bf16-mixed" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return "this CPU has no native bf16 (oneDNN reports none)"
        if variant.precision == "16-mixed" and not torch.ops.mkldnn._is_mkldnn_fp16_supported():
            return "this CPU has no native fp16 (oneDNN reports none)"
        if variant.compile and not compile_on_cpu:
            return "torch.compile is skipped on the CPU unless --compile-on-cpu"
    elif variant.precision == "bf16-mixed" and not torch.cuda.is_bf16_supported():
        return "this GPU has no bf16"
    return None


def build(spec: MethodSpec, variant: Variant, device: torch.device) -> CineModule:
    """The method with the variant's options on ``device``, prepared as a Trainer would: ``configure_model``
    (channels-last weights, compiled encoder and decoder) before the move to the device."""
    module = spec.build(compile=variant.compile, channels_last=variant.channels_last)
    module.configure_model()
    return module.to(device)
