"""``sspcmr export-backbone``: a checkpoint's transferable U-Net weights as a plain state dict.

The file holds reference key names (``encoder.enc_blocks.*``, ``decoder.upconvs.*``,
``decoder.dec_blocks.*`` and, only with ``parts="all"``, the heads as ``decoder.output_convs.*``), so it
loads into the reference code with ``load_state_dict(strict=False)`` and back into sspcmr with
``Segmentation(init_from=FILE)``. The manifest goes to a JSON file next to it (``FILE.json``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import torch

from sspcmr.data.atomic import atomic_write_bytes
from sspcmr.methods.transfer import MANIFEST_KEY, PARTS, load_file
from sspcmr.models.reference_keys import reference_state_dict
from sspcmr.models.unet import HEAD_PREFIX

ExportParts = Literal["auto", "encoder", "encoder+decoder", "all"]


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


def export_backbone(checkpoint_path: str | Path, out: str | Path, parts: ExportParts = "auto") -> Path:
    """Write :func:`backbone_state_dict` to ``out`` (atomically) and the manifest to ``out`` + ``.json``."""
    state, manifest = backbone_state_dict(checkpoint_path, parts)
    out = Path(out)
    atomic_write_bytes(out, lambda tmp: torch.save(state, tmp))
    text = json.dumps({**manifest, "exported_keys": len(state), "source": str(checkpoint_path)}, indent=1)
    atomic_write_bytes(out.with_name(out.name + ".json"), lambda tmp: tmp.write_text(text))
    return out
