"""Networks: the U-Net shared by every method, its encoder alone, and the block they are built from."""

from sspcmr.models.blocks import NORM_TYPES, ConvBlock, NormType, make_norm
from sspcmr.models.reference_keys import from_reference_state_dict, reference_state_dict
from sspcmr.models.unet import UNet, UNetConfig, UNetDecoder, UNetEncoder

__all__ = [
    "NORM_TYPES",
    "ConvBlock",
    "NormType",
    "UNet",
    "UNetConfig",
    "UNetDecoder",
    "UNetEncoder",
    "from_reference_state_dict",
    "make_norm",
    "reference_state_dict",
]
