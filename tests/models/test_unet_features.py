"""The U-Net's features contract: ``encode`` -> ``decode`` -> ``head_outputs`` is ``forward``, and
``full_resolution`` of the encoder features is ``forward_logits``; the encoder-only backbone encodes alike."""

from __future__ import annotations

import torch

from sspcmr.methods.pretrain import EncoderBackbone, pooled_bottleneck
from sspcmr.models import UNet, UNetConfig

TINY = UNetConfig(channels=(8, 16, 32), num_heads=0)


def test_encode_decode_heads_compose_to_forward() -> None:
    torch.manual_seed(0)
    model = UNet(TINY).eval()
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        features = model.encode(x)
        decoded = model.decode(features)
        outputs = model.head_outputs(decoded)
        expected = model(x)
    assert [tuple(f.shape) for f in features] == [(2, 8, 16, 16), (2, 16, 8, 8), (2, 32, 4, 4)]
    assert len(decoded) == len(features) and decoded[-1] is features[-1]
    assert len(outputs) == model.num_outputs == 3
    for ours, theirs in zip(outputs, expected, strict=True):
        assert torch.equal(ours, theirs)


def test_full_resolution_is_head_zero_of_the_encoder_features() -> None:
    torch.manual_seed(0)
    model = UNet(TINY).eval()
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        features = model.encode(x)
        assert torch.equal(model.full_resolution(features), model.forward_logits(x))
        assert torch.equal(model.full_resolution(features), model(x)[0])


def test_encoder_backbone_encodes_as_the_unet_encoder() -> None:
    torch.manual_seed(0)
    unet = UNet(TINY).eval()
    backbone = EncoderBackbone(TINY).eval()
    backbone.encoder.load_state_dict(unet.encoder.state_dict())
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        ours, theirs = backbone.encode(x), unet.encode(x)
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    assert torch.equal(pooled_bottleneck(ours), theirs[-1].mean(dim=(2, 3)))
