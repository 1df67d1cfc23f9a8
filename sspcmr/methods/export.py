"""``sspcmr export-backbone``: a checkpoint's transferable U-Net weights as a plain state dict, or for nnU-Net v2.

Format ``sspcmr`` (default): the file holds reference key names (``encoder.enc_blocks.*``, ``decoder.upconvs.*``,
``decoder.dec_blocks.*`` and, only with ``parts="all"``, the heads as ``decoder.output_convs.*``), so it
loads into the reference code with ``load_state_dict(strict=False)`` and back into sspcmr with
``Segmentation(init_from=FILE)``.

Format ``nnunet``: ``{"network_weights": state_dict}`` with the names of nnU-Net v2's ``PlainConvUNet``, which
``nnUNetv2_train ... -pretrained_weights FILE`` loads into a matching 2D plan (docs/nnunet.md).

Either way the manifest goes to a JSON file next to it (``FILE.json``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Literal

import torch

from sspcmr.data.atomic import atomic_write_bytes
from sspcmr.methods.transfer import MANIFEST_KEY, PARTS, load_file
from sspcmr.models.nnunet_keys import nnunet_architecture, nnunet_initial_decoder, nnunet_state_dict
from sspcmr.models.reference_keys import reference_state_dict
from sspcmr.models.unet import HEAD_PREFIX, UNetConfig

ExportParts = Literal["auto", "encoder", "encoder+decoder", "all"]
ExportFormat = Literal["sspcmr", "nnunet"]
EXPORT_FORMATS: tuple[str, ...] = ("sspcmr", "nnunet")
NNUNET_DECODER_SEED = 0  # seed of the nnU-Net-style decoder written for encoder-only nnU-Net exports


def backbone_state_dict(checkpoint_path: str | Path, parts: ExportParts = "auto") -> tuple[dict, dict]:
    """The selected U-Net tensors of an sspcmr checkpoint with reference names, and its manifest.

    Args:
        checkpoint_path: a ``.ckpt`` written by any sspcmr method.
        parts: ``auto`` (what the manifest declares transferable), ``encoder``, ``encoder+decoder`` or
            ``all`` (also the heads; only for checkpoints holding a whole U-Net: MIM, segmentation).

    Raises:
        ValueError: no manifest, a part the checkpoint does not hold, or an empty selection.
    """
    content = load_file(checkpoint_path, "export-backbone")
    if not isinstance(content, dict) or "state_dict" not in content or not isinstance(content.get(MANIFEST_KEY),
                                                                                        dict):
        raise ValueError(f"export-backbone: {checkpoint_path} is not an sspcmr checkpoint (no {MANIFEST_KEY})")
    manifest = content[MANIFEST_KEY]
    prefix, transferable = str(manifest["prefix"]), list(manifest.get("transferable", ["encoder"]))
    whole = "decoder" in transferable
    if parts == "auto":
        parts = "+".join(transferable)  # type: ignore[assignment]
    if parts == "all" and not whole:
        raise ValueError(f"export-backbone: {checkpoint_path} ({manifest.get('method')}) holds no decoder or heads; "
                         "use --parts encoder")
    wanted = ("encoder.", "decoder.", HEAD_PREFIX) if parts == "all" else PARTS.get(parts)
    if wanted is None:
        raise ValueError(f"export-backbone: --parts must be auto, encoder, encoder+decoder or all; got {parts!r}")
    if "decoder." in wanted and not whole:
        raise ValueError(f"export-backbone: {checkpoint_path} ({manifest.get('method')}) provides only the encoder")
    state = {k[len(prefix):]: v for k, v in content["state_dict"].items()
             if k.startswith(prefix) and k[len(prefix):].startswith(wanted)}
    if not state:
        raise ValueError(f"export-backbone: no tensors under {prefix!r} in {checkpoint_path}")
    if parts == "all":
        state = reference_state_dict(state)
    return state, manifest


def nnunet_checkpoint(checkpoint_path: str | Path, parts: ExportParts = "auto") -> tuple[dict, dict, dict[str, Any]]:
    """What nnU-Net v2's ``-pretrained_weights`` loads: ``{"network_weights": ...}``, and what the export holds.

    nnU-Net's loader requires a tensor for every name of its network but the ``seg_layers``, so the file holds
    the encoder and the decoder always. Where the decoder is not transferred (``parts="encoder"``, or ``auto``
    for an encoder-only method), it is initialised as nnU-Net initialises a new network
    (:func:`~sspcmr.models.nnunet_keys.nnunet_initial_decoder`, seed :data:`NNUNET_DECODER_SEED`).

    Args:
        checkpoint_path: a ``.ckpt`` written by any sspcmr method.
        parts: ``auto``, ``encoder`` or ``encoder+decoder`` (the heads never go: nnU-Net skips ``seg_layers``).

    Returns:
        The checkpoint dict, the sspcmr manifest, and a JSON-ready description: the parts ``transferred``, the
        parts ``initialised`` for nnU-Net, and the plan's ``architecture`` block that builds the matching network.

    Raises:
        ValueError: ``parts="all"``, or what :func:`backbone_state_dict` refuses.
    """
    if parts == "all":
        raise ValueError("export-backbone: --format nnunet never exports the heads (nnU-Net does not load its "
                         "seg_layers); use --parts auto, encoder or encoder+decoder")
    state, manifest = backbone_state_dict(checkpoint_path, parts)
    if not isinstance(manifest.get("unet"), dict):
        raise ValueError(f"export-backbone: {checkpoint_path} records no U-Net configuration, which nnU-Net needs")
    fields = {field.name for field in dataclasses.fields(UNetConfig)}
    config = UNetConfig(**{name: value for name, value in manifest["unet"].items() if name in fields})
    transferred = ["encoder", "decoder"] if any(key.startswith("decoder.") for key in state) else ["encoder"]
    initialised, how = [], None
    if transferred == ["encoder"]:
        state = {**state, **nnunet_initial_decoder(config, NNUNET_DECODER_SEED)}
        initialised, how = ["decoder"], f"nnU-Net's InitWeights_He(1e-2), seed {NNUNET_DECODER_SEED}"
    description = {"transferred": transferred, "initialised": initialised, "initialisation": how,
                   "architecture": nnunet_architecture(config)}
    return {"network_weights": nnunet_state_dict(state, config)}, manifest, description


def export_backbone(checkpoint_path: str | Path, out: str | Path, parts: ExportParts = "auto",
                    file_format: ExportFormat = "sspcmr") -> Path:
    """Write the backbone to ``out`` (atomically) and the manifest to ``out`` + ``.json``.

    Args:
        checkpoint_path: a ``.ckpt`` written by any sspcmr method.
        out: the file to write.
        parts: see :func:`backbone_state_dict` (and :func:`nnunet_checkpoint` for ``nnunet``).
        file_format: ``sspcmr`` writes :func:`backbone_state_dict`'s state dict; ``nnunet`` writes
            :func:`nnunet_checkpoint`'s and adds its description to the JSON under ``nnunet``.

    Raises:
        ValueError: an unknown format, or what the chosen format refuses.
    """
    if file_format not in EXPORT_FORMATS:
        raise ValueError(f"export-backbone: --format must be one of {', '.join(EXPORT_FORMATS)}; got {file_format!r}")
    if file_format == "nnunet":
        content, manifest, description = nnunet_checkpoint(checkpoint_path, parts)
        extra, count = {"format": "nnunet", "nnunet": description}, len(content["network_weights"])
    else:  # the JSON of this format is as it always was: no format key
        content, manifest = backbone_state_dict(checkpoint_path, parts)
        extra, count = {}, len(content)
    out = Path(out)
    atomic_write_bytes(out, lambda tmp: torch.save(content, tmp))
    text = json.dumps({**manifest, "exported_keys": count, "source": str(checkpoint_path), **extra}, indent=1)
    atomic_write_bytes(out.with_name(out.name + ".json"), lambda tmp: tmp.write_text(text))
    return out
