"""nnU-Net v2's names for the U-Net: the key mapping, the plan's architecture block and its decoder initialisation.

nnU-Net v2 builds its 2D plain U-Net from ``dynamic_network_architectures.architectures.unet.PlainConvUNet``.
With the architecture block of :func:`nnunet_architecture` that network is this package's :class:`UNet` layer for
layer (3×3 convs with bias, norm, LeakyReLU, two per stage; stride-2 first convs; 2×2 transposed convs with bias;
concatenation ``[upsampled, skip]``), only the names differ:

- ``encoder.enc_blocks.{s}.conv1`` / ``bn1`` -> ``encoder.stages.{s}.0.convs.0.conv`` / ``.norm``
- ``encoder.enc_blocks.{s}.conv2`` / ``bn2`` -> ``encoder.stages.{s}.0.convs.1.conv`` / ``.norm``
- ``decoder.upconvs.{j}`` -> ``decoder.transpconvs.{j}``
- ``decoder.dec_blocks.{j}.conv1`` … ``bn2`` -> ``decoder.stages.{j}.convs.{0,1}.conv`` / ``.norm``
- ``heads.*`` -> ``decoder.seg_layers.*``, never written (nnU-Net does not load them)

A PlainConvUNet's state dict names every conv and norm twice (``convs.{k}.conv`` is also
``convs.{k}.all_modules.0``, ``convs.{k}.norm`` also ``all_modules.1``) and every encoder tensor once more under
``decoder.encoder.`` (its decoder keeps a reference to the encoder), and nnU-Net's loader requires each of those
names, so :func:`nnunet_state_dict` writes the same tensor under all of them (docs/nnunet.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from sspcmr.models.unet import UNet, UNetConfig, UNetDecoder

__all__ = ["NNUNET_NETWORK_CLASS", "nnunet_architecture", "nnunet_initial_decoder", "nnunet_names",
           "nnunet_state_dict"]

NNUNET_NETWORK_CLASS = "dynamic_network_architectures.architectures.unet.PlainConvUNet"
# nnU-Net initialises a PlainConvUNet with InitWeights_He(1e-2): Kaiming-normal conv weights for that slope.
NNUNET_INIT_SLOPE = 1e-2
_NORM_OPS = {"batch": nn.BatchNorm2d, "instance": nn.InstanceNorm2d}
# sspcmr layer -> (index of the conv in the stage, PlainConvUNet attribute, position in its all_modules Sequential;
# the norm is second because the plan has no dropout).
_LAYERS = {"conv1": (0, "conv", 0), "bn1": (0, "norm", 1), "conv2": (1, "conv", 0), "bn2": (1, "norm", 1)}
_BLOCK = re.compile(r"^(encoder\.enc_blocks|decoder\.dec_blocks)\.(\d+)\.(conv1|bn1|conv2|bn2)\.(\w+)$")
_UPCONV = re.compile(r"^decoder\.upconvs\.(\d+)\.(weight|bias)$")


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__name__}"


def nnunet_architecture(config: UNetConfig) -> dict:
    """The ``architecture`` block of an nnU-Net v2 plans configuration that builds this U-Net as a PlainConvUNet.

    Paste it into the 2D configuration of ``nnUNetPlans.json`` (docs/nnunet.md); nnU-Net adds the input channels,
    the classes and deep supervision itself. ``norm_op`` follows ``config.norm`` (BatchNorm2d for the reference,
    whereas nnU-Net's planner writes InstanceNorm2d) and the LeakyReLU slope is written out.

    Args:
        config: The pretrained U-Net's architecture (the checkpoint manifest's ``unet``).

    Returns:
        ``{"network_class_name", "arch_kwargs", "_kw_requires_import"}``, JSON-ready.
    """
    stages = config.num_stages
    norm = _NORM_OPS.get(config.norm)
    return {
        "network_class_name": NNUNET_NETWORK_CLASS,
        "arch_kwargs": {
            "n_stages": stages,
            "features_per_stage": list(config.channels),
            "conv_op": _class_path(nn.Conv2d),
            "kernel_sizes": [[3, 3]] * stages,
            "strides": [[1, 1]] + [[2, 2]] * (stages - 1),
            "n_conv_per_stage": [2] * stages,
            "n_conv_per_stage_decoder": [2] * (stages - 1),
            "conv_bias": True,
            "norm_op": None if norm is None else _class_path(norm),
            "norm_op_kwargs": None if norm is None else {"eps": 1e-5, "affine": True},
            "dropout_op": None,
            "dropout_op_kwargs": None,
            "nonlin": _class_path(nn.LeakyReLU),
            "nonlin_kwargs": {"inplace": True, "negative_slope": config.negative_slope},
        },
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }


def nnunet_names(key: str) -> tuple[str, ...]:
    """Every PlainConvUNet state-dict name of the tensor this package calls ``key`` (encoder or decoder only).

    Raises:
        ValueError: For a head (``heads.*``: nnU-Net's ``seg_layers`` are never transferred) or any other key.
    """
    match = _BLOCK.match(key)
    if match:
        part, index, layer, param = match.groups()
        conv, attribute, position = _LAYERS[layer]
        stage = f"encoder.stages.{index}.0" if part.startswith("encoder") else f"decoder.stages.{index}"
        names = (f"{stage}.convs.{conv}.{attribute}.{param}", f"{stage}.convs.{conv}.all_modules.{position}.{param}")
        return names + tuple(f"decoder.{name}" for name in names) if part.startswith("encoder") else names
    match = _UPCONV.match(key)
    if match:
        return (f"decoder.transpconvs.{match.group(1)}.{match.group(2)}",)
    raise ValueError(f"{key!r} has no nnU-Net name (only encoder.* and decoder.* of a UNet are exported)")


def nnunet_state_dict(state: Mapping[str, Tensor], config: UNetConfig) -> dict[str, Tensor]:
    """A complete encoder + decoder state dict under PlainConvUNet's names (no ``seg_layers``).

    Args:
        state: This package's ``encoder.*`` and ``decoder.*`` tensors of a :class:`UNet` built from ``config``,
            all of them (the tensors are not copied).
        config: The architecture, to check that nothing is missing.

    Raises:
        ValueError: On a missing encoder or decoder tensor, or a key without an nnU-Net name.
    """
    with torch.device("meta"):  # names only: no memory, no random numbers drawn
        expected = {key for key in UNet(config).state_dict() if key.startswith(("encoder.", "decoder."))}
    missing = sorted(expected - set(state))
    if missing:
        raise ValueError(f"{len(missing)} U-Net tensors missing for the nnU-Net export, e.g. {missing[:3]}")
    return {name: value for key, value in state.items() for name in nnunet_names(key)}


def nnunet_initial_decoder(config: UNetConfig, seed: int = 0) -> dict[str, Tensor]:
    """A decoder initialised as nnU-Net initialises a new PlainConvUNet, in this package's names.

    Conv and transposed-conv weights are Kaiming-normal for LeakyReLU slope 0.01 with zero biases (nnU-Net's
    ``InitWeights_He(1e-2)``); norms are PyTorch's defaults (weight 1, bias 0, running mean 0, variance 1). The
    draws come from a generator seeded with ``seed``, so the export is reproducible and the global random state
    is left alone. Only for an encoder-only export: nnU-Net's loader needs decoder tensors too (docs/nnunet.md).
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.device("meta"):
        decoder = UNetDecoder(config)
    decoder = decoder.to_empty(device="cpu")
    for module in decoder.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(module.weight, a=NNUNET_INIT_SLOPE, generator=generator)
            nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm2d, nn.InstanceNorm2d)):
            module.reset_parameters()
    return {f"decoder.{key}": value.detach() for key, value in decoder.state_dict().items()}
