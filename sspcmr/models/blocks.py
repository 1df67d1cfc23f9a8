"""The convolutional block of the reference U-Net (docs/reference.md#unet), shared by encoder and decoder.

Block = conv 3×3 (padding 1, with bias) → norm → LeakyReLU → conv 3×3 (stride 1, with bias) → norm → LeakyReLU.
The downsampling encoder blocks put their stride 2 in the *first* conv; there is no max-pooling.
"""

from __future__ import annotations

from typing import Literal, get_args

from torch import Tensor, nn

__all__ = ["NORM_TYPES", "ConvBlock", "NormType", "make_norm"]

NormType = Literal["batch", "instance", "none"]
NORM_TYPES: tuple[str, ...] = get_args(NormType)


def make_norm(norm: NormType, channels: int) -> nn.Module:
    """Build the normalisation layer that follows each conv of a :class:`ConvBlock`.

    Args:
        norm: ``"batch"``: ``BatchNorm2d`` with PyTorch defaults (momentum 0.1, eps 1e-5), the reference choice.
            ``"instance"``: ``InstanceNorm2d`` with a learnable affine (so it has the same ``weight``/``bias``
            parameters as BatchNorm) and no running statistics. ``"none"``: identity (the convs keep their bias).
        channels: Number of feature channels C.

    Returns:
        A module mapping (B, C, H, W) to (B, C, H, W).

    Raises:
        ValueError: If ``norm`` is not one of :data:`NORM_TYPES`.
    """
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {NORM_TYPES}, got {norm!r}")


class ConvBlock(nn.Module):
    """Two 3×3 conv → norm → LeakyReLU layers, the unit of every encoder and decoder stage.

    The attribute names ``conv1``, ``bn1``, ``conv2``, ``bn2`` are those of the reference's ``Block`` so that
    state-dict keys match it one for one (docs/reference.md#unet, "State-dict names"); ``bn*`` keep that name
    whatever ``norm`` is. The activation has no parameters, hence no keys.

    Args:
        in_channels: Input channels C_in.
        out_channels: Output channels C_out.
        stride: Stride of the first conv: 1 keeps the size, 2 halves it (reference encoder blocks 1 to 6).
        norm: Normalisation after each conv, see :func:`make_norm` (reference: ``"batch"``).
        negative_slope: LeakyReLU slope for negative inputs (reference: 0.01).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        norm: NormType = "batch",
        negative_slope: float = 0.01,
    ) -> None:
        super().__init__()
        # The convs keep their bias even before BatchNorm, where it is redundant, because the reference has it
        # and the parameter shapes must match its checkpoints.
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1)
        self.bn1 = make_norm(norm, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.bn2 = make_norm(norm, out_channels)
        # In place is safe: neither the norm nor the conv backward needs the tensor the activation overwrites,
        # and it saves one full-resolution activation per layer.
        self.act = nn.LeakyReLU(negative_slope, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block.

        Args:
            x: (B, C_in, H, W) input.

        Returns:
            (B, C_out, H / stride, W / stride) features (sizes rounded up for odd inputs with stride 2).
        """
        x = self.act(self.bn1(self.conv1(x)))
        return self.act(self.bn2(self.conv2(x)))
