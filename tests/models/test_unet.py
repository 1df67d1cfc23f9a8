"""Contract tests of the U-Net against the reference architecture
(docs/reference.md#unet, #mim-network, #transfer, #check-models, #check-transfer).

The reference checks are written from the protocol text: a naive listing of the reference key names and shapes,
and a naive functional forward pass over a reference-named state dict. Only one full-size forward is run.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sspcmr.models import (
    UNet,
    UNetConfig,
    UNetDecoder,
    UNetEncoder,
    from_reference_state_dict,
    reference_state_dict,
)

REFERENCE_CHANNELS = (32, 64, 128, 256, 512, 512, 512)
TINY = UNetConfig(channels=(8, 16, 32))


def _block_shapes(prefix: str, c_in: int, c_out: int) -> dict[str, tuple[int, ...]]:
    """Reference ``Block`` entries: conv1 (3×3, bias), bn1, conv2 (3×3, bias), bn2 with BatchNorm buffers."""
    shapes: dict[str, tuple[int, ...]] = {}
    for conv, bn, fan_in in (("conv1", "bn1", c_in), ("conv2", "bn2", c_out)):
        shapes[f"{prefix}{conv}.weight"] = (c_out, fan_in, 3, 3)
        shapes[f"{prefix}{conv}.bias"] = (c_out,)
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}{bn}.{name}"] = (c_out,)
        shapes[f"{prefix}{bn}.num_batches_tracked"] = ()
    return shapes


def _reference_listing(classes: int = 4) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of the reference ``UNet2d`` with 6 heads, in its registration order (docs/reference.md#unet)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for i, (c_in, c_out) in enumerate(zip((1, *REFERENCE_CHANNELS[:-1]), REFERENCE_CHANNELS, strict=True)):
        shapes |= _block_shapes(f"encoder.enc_blocks.{i}.", c_in, c_out)
    # Decoder stages (c_in -> c_out): 512->512, 512->512, 512->256, 256->128, 128->64, 64->32.
    stages = [(512, 512), (512, 512), (512, 256), (256, 128), (128, 64), (64, 32)]
    for j, (c_in, c_out) in enumerate(stages):
        shapes[f"decoder.upconvs.{j}.weight"] = (c_in, c_out, 2, 2)
        shapes[f"decoder.upconvs.{j}.bias"] = (c_out,)
    for j, (_, c_out) in enumerate(stages):
        shapes |= _block_shapes(f"decoder.dec_blocks.{j}.", 2 * c_out, c_out)
    # Head input channels from deepest to shallowest: 512, 512, 256, 128, 64, 32.
    for k, c_in in enumerate((512, 512, 256, 128, 64, 32)):
        shapes[f"decoder.output_convs.{k}.weight"] = (classes, c_in, 1, 1)
        shapes[f"decoder.output_convs.{k}.bias"] = (classes,)
    return shapes


def _naive_block(sd: dict[str, Tensor], prefix: str, x: Tensor, stride: int) -> Tensor:
    for conv, bn, conv_stride in (("conv1", "bn1", stride), ("conv2", "bn2", 1)):
        x = F.conv2d(x, sd[f"{prefix}{conv}.weight"], sd[f"{prefix}{conv}.bias"], stride=conv_stride, padding=1)
        x = F.batch_norm(
            x, sd[f"{prefix}{bn}.running_mean"], sd[f"{prefix}{bn}.running_var"],
            sd[f"{prefix}{bn}.weight"], sd[f"{prefix}{bn}.bias"], training=False, eps=1e-5,
        )  # fmt: skip
        x = F.leaky_relu(x, 0.01)
    return x


def _naive_reference_forward(sd: dict[str, Tensor], x: Tensor, stages: int, heads: int) -> list[Tensor]:
    """Eval-mode reference U-Net over a reference-named state dict, outputs highest res first."""
    features = []
    for i in range(stages):
        x = _naive_block(sd, f"encoder.enc_blocks.{i}.", x, 1 if i == 0 else 2)
        features.append(x)
    scales = [x]  # deepest first: bottleneck, then each decoder stage output
    for j in range(stages - 1):
        up = F.conv_transpose2d(x, sd[f"decoder.upconvs.{j}.weight"], sd[f"decoder.upconvs.{j}.bias"], stride=2)
        x = _naive_block(sd, f"decoder.dec_blocks.{j}.", torch.cat([up, features[-2 - j]], dim=1), 1)
        scales.append(x)
    # The `heads` highest resolutions carry heads; output_convs are numbered deepest first.
    supervised = scales[stages - heads :]
    outputs = [
        F.conv2d(s, sd[f"decoder.output_convs.{k}.weight"], sd[f"decoder.output_convs.{k}.bias"])
        for k, s in enumerate(supervised)
    ]
    return outputs[::-1]


def _randomise_norm_stats(model: nn.Module) -> None:
    """Give every BatchNorm non-trivial statistics and affine parameters, so a swapped bn1/bn2 shows."""
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            c = module.num_features
            module.running_mean.copy_(torch.randn(c, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(c, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(c, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(c, generator=generator) * 0.1)


@pytest.fixture(scope="module")
def reference_unet() -> UNet:
    torch.manual_seed(0)
    return UNet()


# --- reference architecture ---------------------------------------------------------------------------------------


def test_full_size_output_shapes(reference_unet: UNet) -> None:
    """docs/reference.md#check-models: six outputs, highest resolution first, for a (2, 1, 256, 256) input."""
    with torch.no_grad():
        outputs = reference_unet(torch.randn(2, 1, 256, 256))
    assert [tuple(o.shape) for o in outputs] == [(2, 4, 256 // 2**i, 256 // 2**i) for i in range(6)]


def test_reference_key_names_counts_and_shapes(reference_unet: UNet) -> None:
    state = reference_unet.state_dict()
    assert len(state) == 206
    assert sum(key.startswith("encoder.") for key in state) == 98
    assert {key.split(".")[0] for key in state} == {"encoder", "decoder", "heads"}
    assert [name for name, _ in reference_unet.named_children()] == ["encoder", "decoder", "heads"]
    converted = reference_state_dict(reference_unet)
    expected = _reference_listing()
    assert list(converted) == list(expected)
    assert {k: tuple(v.shape) for k, v in converted.items()} == expected
    # Spot checks quoted from the protocol.
    assert expected["encoder.enc_blocks.1.conv1.weight"] == (64, 32, 3, 3)
    assert expected["decoder.upconvs.0.weight"] == (512, 512, 2, 2)
    assert expected["decoder.dec_blocks.5.conv1.weight"] == (32, 64, 3, 3)
    assert tuple(reference_unet.heads[0].weight.shape) == (4, 32, 1, 1)


def test_encoder_parameter_count_matches_reference_encoder_mlp() -> None:
    """docs/reference.md#encoder-mlp: encoder + MLP (3 Linear 512→512) has 14,946,912 parameters."""
    mlp = 3 * (512 * 512 + 512)
    assert sum(p.numel() for p in UNetEncoder().parameters()) + mlp == 14_946_912


def test_reference_state_dict_round_trip(reference_unet: UNet) -> None:
    state = reference_unet.state_dict()
    converted = reference_state_dict(reference_unet)
    back = from_reference_state_dict(converted)
    assert list(back) == list(state)
    for key, value in state.items():
        assert torch.equal(back[key], value), key
        assert back[key].data_ptr() == value.data_ptr(), f"{key} was copied"
    fresh = UNet()
    fresh.load_state_dict(back, strict=True)
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_naive_reference_forward_matches_model() -> None:
    """Concat order, stride placement, bn1/bn2 and head order agree with the protocol's description."""
    torch.manual_seed(1)
    for num_heads, expected in ((-1, 2), (0, 3), (1, 1)):
        model = UNet(TINY, num_heads=num_heads).eval()
        _randomise_norm_stats(model)
        x = torch.randn(2, 1, 32, 32)
        with torch.no_grad():
            outputs = model(x)
            reference = _naive_reference_forward(reference_state_dict(model), x, stages=3, heads=expected)
        assert len(outputs) == len(reference) == expected
        for ours, theirs in zip(outputs, reference, strict=True):
            torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_mim_variant_single_full_resolution_output() -> None:
    """docs/reference.md#mim-network, #check-models: one 32→1 head, a single full-resolution output, all non-head keys
    transferable."""
    mim = UNet(out_channels=1, num_heads=1).eval()
    assert len(mim.heads) == 1 and tuple(mim.heads[0].weight.shape) == (1, 32, 1, 1)
    with torch.no_grad():
        outputs = mim(torch.randn(2, 1, 64, 64))
    assert [tuple(o.shape) for o in outputs] == [(2, 1, 64, 64)]
    mim_state = mim.state_dict()
    baseline = UNet().state_dict()
    assert {k for k in mim_state if not k.startswith("heads.")} == {k for k in baseline if not k.startswith("heads.")}
    assert len([k for k in mim_state if not k.startswith("heads.")]) == 194
    assert list(reference_state_dict(mim))[-2:] == ["decoder.output_convs.0.weight", "decoder.output_convs.0.bias"]


def test_loading_full_mim_checkpoint_into_segmentation_unet_fails_on_shape() -> None:
    """docs/reference.md#check-transfer: the 1-channel head clashes with the 4-class one even with strict=False."""
    mim = UNet(TINY, out_channels=1, num_heads=1)
    with pytest.raises(RuntimeError, match="size mismatch"):
        UNet(TINY, num_heads=1).load_state_dict(mim.state_dict(), strict=False)


# --- configuration ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("num_heads", "expected"),
    [(0, 7), (1, 1), (3, 3), (7, 7), (10, 7), (-1, 6), (-3, 4), (-6, 1), (-7, 1), (-100, 1)],
)
def test_num_heads_semantics(num_heads: int, expected: int) -> None:
    """Reference ``nr_output_scales``: 0 all scales, n > 0 min(n, S), n < 0 max(1, S + n)."""
    assert UNetConfig(num_heads=num_heads).num_outputs == expected


@pytest.mark.parametrize(("num_heads", "expected"), [(0, 3), (-1, 2), (2, 2), (1, 1), (-5, 1)])
def test_tiny_unet_outputs_per_num_heads(num_heads: int, expected: int) -> None:
    model = UNet(TINY, num_heads=num_heads)
    outputs = model(torch.randn(2, 1, 32, 48))
    assert [tuple(o.shape) for o in outputs] == [(2, 4, 32 // 2**i, 48 // 2**i) for i in range(expected)]
    assert [head.in_channels for head in model.heads] == list(TINY.channels[:expected])


def test_config_defaults_and_properties() -> None:
    config = UNetConfig()
    assert config.channels == REFERENCE_CHANNELS and config.num_stages == 7 and config.divisor == 64
    assert (config.in_channels, config.out_channels, config.norm) == (1, 4, "batch")
    assert config.negative_slope == 0.01 and config.num_heads == -1 and config.num_outputs == 6
    from_list = UNetConfig(channels=[8, 16])  # YAML gives lists
    assert from_list.channels == (8, 16) and from_list.divisor == 2
    assert from_list == UNetConfig(channels=(8, 16)) and hash(from_list) == hash(UNetConfig(channels=(8, 16)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.num_heads = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("in_channels", 0),
        ("in_channels", 1.0),
        ("out_channels", 0),
        ("out_channels", True),
        ("channels", ()),
        ("channels", (8, 0)),
        ("channels", (8, 16.0)),
        ("channels", "8,16"),
        ("channels", 8),
        ("norm", "group"),
        ("negative_slope", -0.1),
        ("negative_slope", float("nan")),
        ("negative_slope", float("inf")),
        ("num_heads", 1.5),
        ("num_heads", None),
    ],
)
def test_config_validation_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        UNetConfig(**{field: value})


def test_overrides() -> None:
    model = UNet(TINY, out_channels=2, num_heads=0)
    assert model.config == dataclasses.replace(TINY, out_channels=2, num_heads=0)
    assert UNet(TINY).config is TINY
    with pytest.raises(TypeError, match="num_classes"):
        UNet(TINY, num_classes=3)
    with pytest.raises(ValueError, match="norm"):
        UNet(TINY, norm="layer")


# --- inputs -------------------------------------------------------------------------------------------------------


def test_input_size_must_be_divisible(reference_unet: UNet) -> None:
    message = "input 250x256: height and width must be multiples of 64 for 7 stages"
    with pytest.raises(ValueError, match=message):
        reference_unet(torch.zeros(1, 1, 250, 256))
    with pytest.raises(ValueError, match="multiples of 4 for 3 stages"):
        UNetEncoder(TINY)(torch.zeros(2, 1, 32, 30))


@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (1, 32, 32), (2, 1, 1, 32, 32)])
def test_wrong_input_channels_or_rank(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"expected input of shape \(B, 1, H, W\)"):
        UNet(TINY)(torch.zeros(shape))


def test_decoder_rejects_wrong_feature_count() -> None:
    features = UNetEncoder(TINY)(torch.randn(2, 1, 16, 16))
    with pytest.raises(ValueError, match="expected 3 encoder features, got 2"):
        UNetDecoder(TINY)(features[1:])


# --- encoder alone, decoder, helpers --------------------------------------------------------------------------------


def test_encoder_alone_matches_unet_encoder_keys_and_features() -> None:
    config = UNetConfig(in_channels=2, channels=(8, 16, 32, 64))
    encoder = UNetEncoder(config)
    unet = UNet(config)
    encoder_state = {k.removeprefix("encoder."): v for k, v in unet.state_dict().items() if k.startswith("encoder.")}
    assert list(encoder.state_dict()) == list(encoder_state)
    encoder.load_state_dict(encoder_state, strict=True)
    assert encoder.out_channels == (8, 16, 32, 64) and encoder.divisor == 8
    x = torch.randn(2, 2, 32, 16)
    features = encoder.eval()(x)
    assert [tuple(f.shape) for f in features] == [(2, c, 32 // 2**i, 16 // 2**i) for i, c in enumerate(config.channels)]
    with torch.no_grad():
        for ours, theirs in zip(features, unet.eval().encoder(x), strict=True):
            torch.testing.assert_close(ours, theirs)


def test_decoder_returns_every_scale_with_bottleneck_last() -> None:
    features = UNetEncoder(TINY)(torch.randn(2, 1, 16, 16))
    outputs = UNetDecoder(TINY)(features)
    assert [tuple(o.shape) for o in outputs] == [(2, 8, 16, 16), (2, 16, 8, 8), (2, 32, 4, 4)]
    assert outputs[-1] is features[-1]


def test_forward_logits_is_head_zero() -> None:
    model = UNet(TINY).eval()
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_logits(x), model(x)[0])


def test_encoder_only_reference_dict_passes_through() -> None:
    state = {k: v for k, v in UNet(TINY).state_dict().items() if k.startswith("encoder.")}
    assert from_reference_state_dict(state) == state == reference_state_dict(state)


def test_head_index_errors() -> None:
    head = {"decoder.output_convs.1.weight": torch.zeros(4, 16, 1, 1)}
    with pytest.raises(ValueError, match="pass num_outputs"):
        from_reference_state_dict(head)
    assert list(from_reference_state_dict(head, num_outputs=2)) == ["heads.0.weight"]
    with pytest.raises(ValueError, match="num_outputs=1"):
        from_reference_state_dict(head, num_outputs=1)


@pytest.mark.parametrize(
    ("norm", "norm_keys"), [("instance", {"weight", "bias"}), ("none", set())]
)  # fmt: skip
def test_other_norms(norm: str, norm_keys: set[str]) -> None:
    model = UNet(TINY, norm=norm)
    bn_keys = {k.rsplit(".", 1)[1] for k in model.state_dict() if ".bn" in k}
    assert bn_keys == norm_keys
    outputs = model(torch.randn(2, 1, 16, 16))
    assert [tuple(o.shape) for o in outputs] == [(2, 4, 16, 16), (2, 4, 8, 8)]


# --- training behaviour -------------------------------------------------------------------------------------------


def test_freeze_encoder_keeps_batchnorm_statistics_updating() -> None:
    torch.manual_seed(0)
    model = UNet(TINY).train()
    model.freeze_encoder()
    assert not any(p.requires_grad for p in model.encoder.parameters())
    assert all(p.requires_grad for name, p in model.named_parameters() if not name.startswith("encoder."))
    assert model.training and model.encoder.training
    bn = model.encoder.enc_blocks[0].bn1
    mean_before = bn.running_mean.clone()
    sum(o.mean() for o in model(torch.randn(2, 1, 16, 16) + 3.0)).backward()
    assert not torch.equal(bn.running_mean, mean_before) and bn.num_batches_tracked.item() == 1
    assert all(p.grad is None for p in model.encoder.parameters())
    assert all(p.grad is not None for p in model.decoder.parameters())
    model.unfreeze_encoder()
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_gradient_reaches_every_parameter(norm: str) -> None:
    torch.manual_seed(0)
    model = UNet(TINY, norm=norm, num_heads=0)
    sum(o.square().mean() for o in model(torch.randn(2, 1, 16, 16))).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        # A conv bias right before BatchNorm is cancelled by its mean subtraction: its gradient is ~0 by design.
        if norm == "batch" and ".conv" in name and name.endswith(".bias"):
            continue
        assert parameter.grad.abs().sum() > 0, name


def test_pytorch_default_initialisation(reference_unet: UNet) -> None:
    """docs/reference.md#unet: no custom init. Convs: kaiming_uniform(a=√5), i.e. U(±1/√fan_in) for weight and bias."""
    for name, module in reference_unet.named_modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            weight = module.weight
            # torch computes fan_in from weight dim 1: C_in for Conv2d, C_out for ConvTranspose2d.
            bound = 1.0 / math.sqrt(weight.shape[1] * weight[0, 0].numel())
            assert weight.abs().max() <= bound and module.bias.abs().max() <= bound, name
            if weight.numel() >= 10_000:  # uniform, not normal: std = bound / √3
                assert abs(weight.std().item() * math.sqrt(3) / bound - 1) < 0.05, name
        elif isinstance(module, nn.BatchNorm2d):
            assert torch.equal(module.weight, torch.ones_like(module.weight)), name
            assert torch.equal(module.bias, torch.zeros_like(module.bias)), name
            assert (module.momentum, module.eps) == (0.1, 1e-5), name
