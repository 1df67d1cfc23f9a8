"""The U-Net shared by every method: baseline, fine-tuning, MIM, and (encoder alone) SimCLR, PCL and DINO.

With the default :class:`UNetConfig` the network is exactly the reference ``UNet2d`` (docs/reference.md#unet):
7 stages of 32, 64, 128, 256, 512, 512, 512 channels, stride-2 first convs instead of pooling, transposed-conv
upsampling, concatenation ``[upsampled, skip]``, 1×1 output heads with raw logits and PyTorch's default
initialisation. Its parameters and buffers match the reference checkpoints one for one, except that the heads
live in ``heads.*`` instead of ``decoder.output_convs.*`` and are indexed highest resolution first;
:mod:`sspcmr.models.reference_keys` translates between the two namings.

The top-level children are exactly ``encoder``, ``decoder`` and ``heads`` so that transfer selects weights by
the prefixes ``encoder.``, ``decoder.`` and ``heads.`` (docs/reference.md#transfer).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from sspcmr.models.blocks import NORM_TYPES, ConvBlock, NormType

__all__ = [
    "UNet",
    "UNetConfig",
    "UNetDecoder",
    "UNetEncoder",
    "check_input_size",
]

REFERENCE_HEAD_PREFIX = "decoder.output_convs."
HEAD_PREFIX = "heads."


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of the U-Net; the defaults are the reference ``UNet2d`` (docs/reference.md#unet).

    Attributes:
        in_channels: Image channels of the input (reference: 1, a single cine frame).
        out_channels: Channels of every head: classes for segmentation (reference: 4, background, LV, MYO, RV),
            1 for the MIM reconstruction (docs/reference.md#mim-network).
        channels: Output channels of each encoder stage, highest resolution first; the number of stages is
            ``len(channels)``. Stage 0 keeps the input size and each later stage halves it. The decoder mirrors
            it. Reference: (32, 64, 128, 256, 512, 512, 512), a 4×4×512 bottleneck for 256² inputs.
        norm: Normalisation after every conv: ``"batch"`` (reference, PyTorch defaults), ``"instance"`` or
            ``"none"``.
        negative_slope: LeakyReLU slope for negative inputs (reference: 0.01).
        num_heads: Deep-supervision heads with the reference's ``nr_output_scales`` semantics, for S stages:
            0 gives S heads (all scales, the bottleneck included), n > 0 gives min(n, S) and n < 0 gives
            max(1, S + n), always the highest resolutions first. Reference baseline: -1, i.e. 6 heads on the
            6 decoder outputs (256² down to 8²) and none on the bottleneck; MIM uses 1.
    """

    in_channels: int = 1
    out_channels: int = 4
    channels: tuple[int, ...] = (32, 64, 128, 256, 512, 512, 512)
    norm: NormType = "batch"
    negative_slope: float = 0.01
    num_heads: int = -1

    def __post_init__(self) -> None:
        for name in ("in_channels", "out_channels"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        given = self.channels
        if isinstance(given, (str, bytes)) or not isinstance(given, Sequence):
            raise ValueError(f"channels must be a sequence of positive integers; got {given!r}")
        # Lists come from YAML/CLI; store a tuple so the frozen config stays hashable and immutable.
        object.__setattr__(self, "channels", tuple(given))
        if not self.channels or not all(_is_int(c) and c >= 1 for c in self.channels):
            raise ValueError(f"channels must be a non-empty sequence of positive integers; got {given!r}")
        if self.norm not in NORM_TYPES:
            raise ValueError(f"norm must be one of {', '.join(NORM_TYPES)}; got {self.norm!r}")
        slope = self.negative_slope
        # Negative slopes would make the in-place LeakyReLU non-invertible for autograd.
        if isinstance(slope, bool) or not isinstance(slope, (int, float)) or not 0 <= slope < math.inf:
            raise ValueError(f"negative_slope must be a finite number >= 0; got {slope!r}")
        if not _is_int(self.num_heads):
            raise ValueError(f"num_heads must be an integer; got {self.num_heads!r}")

    @property
    def num_stages(self) -> int:
        """Number of encoder stages S (``len(channels)``); the decoder has S - 1."""
        return len(self.channels)

    @property
    def divisor(self) -> int:
        """2**(S - 1): input height and width must be multiples of it (64 for the reference)."""
        return 2 ** (self.num_stages - 1)

    @property
    def num_outputs(self) -> int:
        """Number of heads (and of forward outputs) that ``num_heads`` resolves to."""
        stages, n = self.num_stages, self.num_heads
        if n == 0:
            return stages
        return min(n, stages) if n > 0 else max(1, stages + n)


def _or_reference(config: UNetConfig | None) -> UNetConfig:
    """``config``, or the reference architecture when None."""
    return config if config is not None else UNetConfig()


def check_input_size(size: int, config: UNetConfig, name: str = "output_size") -> None:
    """Raise a ValueError unless square ``size`` x ``size`` images fit the U-Net of ``config``.

    The U-Net with S stages downsamples S - 1 times, so the image side must be a multiple of 2**(S - 1)
    (:attr:`UNetConfig.divisor`). Data module and model are built separately, so the LightningModules call
    this in ``setup()`` with the data module's ``output_size``, before the first batch.

    Args:
        size: Image side in pixels.
        config: The U-Net's architecture.
        name: What ``size`` is called in the message (the CLI argument).

    Raises:
        ValueError: Naming ``size``, the divisor and the nearest size that works.
    """
    divisor = config.divisor
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"{name} must be a positive integer; got {size!r}")
    if size % divisor:
        suggestion = max(divisor, round(size / divisor) * divisor)
        raise ValueError(f"{name} {size} is not divisible by {divisor}, which the U-Net with {config.num_stages} "
                         f"stages needs (use a multiple of {divisor}, e.g. {suggestion})")


class UNetEncoder(nn.Module):
    """The contracting path: S :class:`~sspcmr.models.blocks.ConvBlock` stages, the first at full resolution.

    Built alone (``UNetEncoder(config)``) it is the backbone of SimCLR, PCL and DINO
    (docs/reference.md#encoder-mlp, #dino-network); its keys ``enc_blocks.{i}.{conv1,bn1,conv2,bn2}.*`` equal those of a
    :class:`UNet`'s ``encoder.``. Only ``in_channels``, ``channels``, ``norm`` and ``negative_slope`` of the config are
    used.

    Args:
        config: Architecture; None means the reference :class:`UNetConfig`.
    """

    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        self.config = c = _or_reference(config)
        in_channels = (c.in_channels, *c.channels[:-1])
        # Stage 0 keeps the resolution (input → 32 channels); every later stage downsamples with stride 2 in
        # its first conv (docs/reference.md#unet, no max-pooling).
        self.enc_blocks = nn.ModuleList(
            ConvBlock(c_in, c_out, 1 if i == 0 else 2, c.norm, c.negative_slope)
            for i, (c_in, c_out) in enumerate(zip(in_channels, c.channels, strict=True))
        )

    @property
    def out_channels(self) -> tuple[int, ...]:
        """Channels of the returned features, highest resolution first (the last is the bottleneck)."""
        return self.config.channels

    @property
    def divisor(self) -> int:
        """Input height and width must be multiples of this, 2**(S - 1)."""
        return self.config.divisor

    def check_input(self, x: Tensor) -> None:
        """Raise a ValueError unless ``x`` is (B, in_channels, H, W) with H and W multiples of :attr:`divisor`."""
        c = self.config
        if x.ndim != 4 or x.shape[1] != c.in_channels:
            raise ValueError(
                f"expected input of shape (B, {c.in_channels}, H, W) for in_channels={c.in_channels}, "
                f"got {tuple(x.shape)}"
            )
        height, width = x.shape[-2:]
        if height % self.divisor or width % self.divisor:
            raise ValueError(
                f"input {height}x{width}: height and width must be multiples of {self.divisor} "
                f"for {c.num_stages} stages"
            )

    def forward(self, x: Tensor) -> list[Tensor]:
        """Encode an image batch.

        Args:
            x: (B, in_channels, H, W) images, H and W multiples of :attr:`divisor`.

        Returns:
            S features, highest resolution first: feature i is (B, channels[i], H / 2**i, W / 2**i); the last
            is the bottleneck ((B, 512, 4, 4) for a 256² reference input), the one global pooling uses.

        Raises:
            ValueError: On a wrong number of dimensions or channels, or a size the divisor does not divide.
        """
        self.check_input(x)
        features = []
        for block in self.enc_blocks:
            x = block(x)
            features.append(x)
        return features


class UNetDecoder(nn.Module):
    """The expanding path: S - 1 stages of transposed-conv upsampling, skip concatenation and a block.

    Stage j goes from ``channels[-1 - j]`` to ``c = channels[-2 - j]`` channels: ``ConvTranspose2d(k=2, s=2)``,
    concatenation ``[upsampled, skip]`` (upsampled first, as in the reference), then a stride-1 block
    2c → c (docs/reference.md#unet). Keys: ``upconvs.{j}.*`` and ``dec_blocks.{j}.*``.

    Args:
        config: Architecture; None means the reference :class:`UNetConfig`.
    """

    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        self.config = c = _or_reference(config)
        deep_to_shallow = c.channels[::-1]
        pairs = list(zip(deep_to_shallow[:-1], deep_to_shallow[1:], strict=True))
        self.upconvs = nn.ModuleList(nn.ConvTranspose2d(c_in, c_out, kernel_size=2, stride=2) for c_in, c_out in pairs)
        self.dec_blocks = nn.ModuleList(ConvBlock(2 * c_out, c_out, 1, c.norm, c.negative_slope) for _, c_out in pairs)

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        """Decode encoder features.

        Args:
            features: The S encoder features of :meth:`UNetEncoder.forward`, highest resolution first.

        Returns:
            S features, highest resolution first: entry i is the decoder output at scale i,
            (B, channels[i], H / 2**i, W / 2**i), and the last entry is the bottleneck itself, so that
            entry i is what head i reads.

        Raises:
            ValueError: If the number of features is not S.
        """
        if len(features) != self.config.num_stages:
            raise ValueError(f"expected {self.config.num_stages} encoder features, got {len(features)}")
        x = features[-1]
        outputs = [x]
        for j, (upconv, block) in enumerate(zip(self.upconvs, self.dec_blocks, strict=True)):
            x = block(torch.cat([upconv(x), features[-2 - j]], dim=1))
            outputs.append(x)
        return outputs[::-1]


class UNet(nn.Module):
    """U-Net with deep-supervision heads; the reference ``UNet2d`` by default (docs/reference.md#unet, #mim-network).

    Children: ``encoder`` (:class:`UNetEncoder`), ``decoder`` (:class:`UNetDecoder`) and ``heads``, a
    ``ModuleList`` of 1×1 convs (with bias, raw logits) where ``heads[i]`` reads decoder scale i, i.e. the
    highest resolution first. Initialisation is PyTorch's default everywhere, as in the reference.

    Examples:
        ``UNet()`` is the segmentation baseline (6 heads, 4 classes); ``UNet(out_channels=1, num_heads=1)`` is
        the MIM network; ``UNet(config, num_heads=1)`` overrides one field of ``config``.

    Args:
        config: Architecture; None means the reference :class:`UNetConfig`.
        **overrides: :class:`UNetConfig` fields replacing those of ``config``.

    Raises:
        TypeError: If an override is not a :class:`UNetConfig` field.
        ValueError: If the resulting config is invalid.
    """

    def __init__(self, config: UNetConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        config = _or_reference(config)
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(UNetConfig)})
        if unknown:
            raise TypeError(f"unknown UNetConfig field(s) {unknown}")
        self.config = dataclasses.replace(config, **overrides) if overrides else config
        self.encoder = UNetEncoder(self.config)
        self.decoder = UNetDecoder(self.config)
        channels, classes = self.config.channels, self.config.out_channels
        self.heads = nn.ModuleList(nn.Conv2d(channels[i], classes, kernel_size=1) for i in range(self.num_outputs))

    @property
    def num_outputs(self) -> int:
        """Number of heads, i.e. of tensors :meth:`forward` returns."""
        return self.config.num_outputs

    @property
    def divisor(self) -> int:
        """Input height and width must be multiples of this, 2**(S - 1) (64 for the reference)."""
        return self.config.divisor

    def forward(self, x: Tensor) -> list[Tensor]:
        """Segment (or reconstruct) an image batch at every supervised scale.

        Args:
            x: (B, in_channels, H, W) images, H and W multiples of :attr:`divisor`.

        Returns:
            ``num_outputs`` logit maps, highest resolution first: entry i is (B, out_channels, H / 2**i, W / 2**i).
            For the reference and a (2, 1, 256, 256) input: (2, 4, 256, 256), (2, 4, 128, 128), …, (2, 4, 8, 8).

        Raises:
            ValueError: On a wrong number of dimensions or channels, or a size the divisor does not divide.
        """
        return self.head_outputs(self.decode(self.encode(x)))

    # The features contract (segmentation_models_pytorch's: encoder features -> decoder outputs -> heads), for
    # methods that need the features as well as the output (pooled bottleneck monitors, extra heads).

    def encode(self, x: Tensor) -> list[Tensor]:
        """The S encoder features of (B, in_channels, H, W) images, highest resolution first (the last is the
        bottleneck); see :meth:`UNetEncoder.forward`."""
        return self.encoder(x)

    def decode(self, features: Sequence[Tensor]) -> list[Tensor]:
        """The S decoder outputs of :meth:`encode`'s features, highest resolution first; see
        :meth:`UNetDecoder.forward`."""
        return self.decoder(features)

    def head_outputs(self, decoded: Sequence[Tensor]) -> list[Tensor]:
        """One logit map per head: ``heads[i]`` applied to decoder output i (highest resolution first)."""
        return [head(feature) for head, feature in zip(self.heads, decoded, strict=False)]

    def full_resolution(self, features: Sequence[Tensor]) -> Tensor:
        """Head 0 on the full-resolution decoder output of encoder ``features``: (B, out_channels, H, W)."""
        return self.heads[0](self.decode(features)[0])

    def forward_logits(self, x: Tensor) -> Tensor:
        """Full-resolution raw logits only (head 0), (B, out_channels, H, W), of (B, in_channels, H, W) images:
        for inference, or the reconstruction of MIM and Inpainting."""
        return self.full_resolution(self.encode(x))

    def freeze_encoder(self) -> None:
        """Stop gradients to the encoder parameters (``requires_grad = False``).

        Only ``requires_grad`` changes: the encoder stays in the model's train/eval mode, so its BatchNorm
        running statistics keep updating in training, as the reference's frozen-encoder epochs do (reference
        docs/reference.md#transfer, ``nr_epochs_frozen_encoder``).
        """
        self.encoder.requires_grad_(False)

    def unfreeze_encoder(self) -> None:
        """Re-enable gradients to the encoder parameters."""
        self.encoder.requires_grad_(True)
