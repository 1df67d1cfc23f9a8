"""Loading pretrained weights into the segmentation U-Net: exact prefixes, strict, reported.

A source is either a Lightning checkpoint written by sspcmr (its ``sspcmr_manifest`` names the
prefix under which the U-Net's ``encoder.`` / ``decoder.`` weights live) or a plain state dict
exported with the reference key names (``encoder.enc_blocks...``; prefix ""). Weights are selected
by exact ``startswith`` on ``<prefix>encoder.`` (and ``<prefix>decoder.``); every target key of the
selected parts must be present with the same shape, and no other source key under those parts may
exist. Heads are never loaded. Nothing is guessed and nothing is half-loaded: any mismatch is an
error naming the keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from sspcmr.models.unet import REFERENCE_HEAD_PREFIX

TransferMode = Literal["encoder", "encoder+decoder"]
MANIFEST_KEY = "sspcmr_manifest"
PARTS: dict[str, tuple[str, ...]] = {"encoder": ("encoder.",), "encoder+decoder": ("encoder.", "decoder.")}


@dataclass
class TransferReport:
    """What a transfer loaded: the source, the mode, keys loaded and keys left at initialisation."""

    source: str
    mode: str
    loaded: list[str] = field(default_factory=list)
    kept_initial: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"transfer from {self.source} ({self.mode}): loaded {len(self.loaded)} tensors, "
                f"{len(self.kept_initial)} left at initialisation ({_summarise(self.kept_initial)})")


def _summarise(keys: list[str]) -> str:
    parts = sorted({k.split(".")[0] for k in keys})
    return ", ".join(f"{p}.*" for p in parts) or "none"


def load_file(path: str | Path, context: str) -> object:
    """``torch.load`` on the CPU with one-line errors (``context`` names the option) for missing,
    truncated or foreign files."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{context}: {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises many types for corrupt files
        raise ValueError(f"{context}: cannot read {path} as a PyTorch checkpoint ({error})") from None


def read_source(path: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict and U-Net prefix of a checkpoint or exported backbone file."""
    path = Path(path)
    content = load_file(path, "init_from")
    if isinstance(content, dict) and "state_dict" in content:
        manifest = content.get(MANIFEST_KEY)
        if not isinstance(manifest, dict) or "prefix" not in manifest:
            raise ValueError(f"init_from: {path} is a Lightning checkpoint without an sspcmr manifest; export the "
                             "backbone with reference key names (encoder.*, decoder.*) to load it")
        return content["state_dict"], str(manifest["prefix"])
    if isinstance(content, dict) and all(isinstance(v, torch.Tensor) for v in content.values()):
        return content, ""
    raise ValueError(f"init_from: {path} holds neither a checkpoint nor a state dict")


def load_transfer(net: nn.Module, path: str | Path, mode: TransferMode = "encoder") -> TransferReport:
    """Load the ``mode`` parts of ``path`` into ``net`` strictly; returns the report.

    Raises:
        ValueError: unknown mode, unreadable source, or any missing, unexpected or mis-shaped key.
    """
    if mode not in PARTS:
        raise ValueError(f"transfer must be one of {sorted(PARTS)}; got {mode!r}")
    source, prefix = read_source(path)
    target = net.state_dict()
    parts = PARTS[mode]
    wanted = {k: v for k, v in target.items() if k.startswith(parts)}
    # Reference-named sources keep their heads under decoder.output_convs.*: heads, never loaded.
    given = {k[len(prefix):]: v for k, v in source.items()
             if k.startswith(prefix) and k[len(prefix):].startswith(parts)
             and not k[len(prefix):].startswith(REFERENCE_HEAD_PREFIX)}
    missing = sorted(set(wanted) - set(given))
    unexpected = sorted(set(given) - set(wanted))
    shapes = sorted(k for k in set(wanted) & set(given) if tuple(wanted[k].shape) != tuple(given[k].shape))
    if missing or unexpected or shapes:
        examples = [(k, tuple(given[k].shape), tuple(wanted[k].shape)) for k in shapes[:2]]
        details = [f"{len(missing)} missing (e.g. {missing[:3]})" if missing else "",
                   f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})" if unexpected else "",
                   f"{len(shapes)} with other shapes (e.g. {examples})" if shapes else ""]
        raise ValueError(f"init_from: {path} does not fit this U-Net for transfer={mode!r}: "
                         + "; ".join(d for d in details if d)
                         + ". Check channels / stages against the pretraining run.")
    merged = dict(target)
    merged.update(given)
    net.load_state_dict(merged, strict=True)
    return TransferReport(str(path), mode, loaded=sorted(given), kept_initial=sorted(set(target) - set(given)))
