"""``sspcmr export-backbone --format nnunet``: the file loads into nnU-Net v2's ``PlainConvUNet`` the way
``nnUNetv2_train -pretrained_weights`` loads it, every transferred tensor equal and the same features out.

The tests that build a ``PlainConvUNet`` need the optional ``dynamic_network_architectures`` (``pip install
sspcmr[nnunet]``) and are skipped without it; nnunetv2 itself is not needed: its loader is reimplemented below.
"""

from __future__ import annotations

import json
import pydoc

import pytest
import torch

from sspcmr.commands.main import main
from sspcmr.methods import MIM, SimCLR
from sspcmr.methods.export import export_backbone, nnunet_checkpoint
from sspcmr.methods.transfer import build_manifest
from sspcmr.models import UNet, UNetConfig
from sspcmr.models.nnunet_keys import nnunet_initial_decoder, nnunet_names

TINY = [8, 16, 32, 64]
GRID = {"output_size": 64, "output_spacing": 2.5}


def load_pretrained_weights(network: torch.nn.Module, fname) -> None:
    """nnU-Net v2's ``load_pretrained_weights`` (nnunetv2/run/load_pretrained_weights.py of MIC-DKFZ/nnUNet),
    restated for a plain (not DDP, not compiled) network, check for check.

    It reads ``torch.load(fname)["network_weights"]``; every key of the network's state dict that does not contain
    ``.seg_layers.`` must be in the file with the same shape (an assertion, else); file keys the network lacks and
    ``seg_layers`` keys are dropped; the rest replaces the network's tensors through ``load_state_dict``. The file is
    read with ``weights_only=True`` (torch >= 2.6's default, stricter than the ``weights_only=False`` of newer
    nnU-Net versions), so it loads under both.
    """
    pretrained = torch.load(fname, map_location="cpu", weights_only=True)["network_weights"]
    skip = (".seg_layers.",)
    model_dict = network.state_dict()
    for key, value in model_dict.items():
        if all(s not in key for s in skip):
            assert key in pretrained, f"Key {key} is missing in the pretrained model weights"
            assert value.shape == pretrained[key].shape, f"The shape of the parameters of key {key} is not the same"
    model_dict.update({k: v for k, v in pretrained.items() if k in model_dict and all(s not in k for s in skip)})
    network.load_state_dict(model_dict)


def plain_conv_unet(architecture: dict, num_classes: int = 4) -> torch.nn.Module:
    """The network nnU-Net v2 builds from a plan's ``architecture`` block (get_network_from_plans: the class and
    the ``_kw_requires_import`` entries located by name, deep supervision on, then nnU-Net's own initialisation)."""
    pytest.importorskip("dynamic_network_architectures")
    kwargs = dict(architecture["arch_kwargs"])
    for name in architecture["_kw_requires_import"]:
        if kwargs[name] is not None:
            kwargs[name] = pydoc.locate(kwargs[name])
    network = pydoc.locate(architecture["network_class_name"])(input_channels=1, num_classes=num_classes,
                                                               deep_supervision=True, **kwargs)
    network.apply(network.initialize)
    return network


def randomised(module: torch.nn.Module, seed: int = 1) -> None:
    """Give every tensor a distinct value (running variances positive), so that equality means a right mapping."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if name.endswith("num_batches_tracked"):
                tensor.fill_(7)
            elif name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.2)


def pretrained_checkpoint(tmp_path, method: str = "mim", norm: str = "batch"):
    """A real method's checkpoint content (state dict and manifest, as Lightning saves it) with random weights."""
    model = MIM(channels=TINY, norm=norm, patch_size=16, **GRID) if method == "mim" else \
        SimCLR(channels=TINY, norm=norm, **GRID)
    randomised(model.backbone)
    checkpoint = {"state_dict": model.state_dict()}
    model.on_save_checkpoint(checkpoint)
    path = tmp_path / f"{method}.ckpt"
    torch.save(checkpoint, path)
    return model.backbone, path


def assert_transferred(network: torch.nn.Module, source: dict) -> int:
    """Every nnU-Net name of every sspcmr tensor holds that tensor; returns how many names were compared."""
    target, compared = network.state_dict(), 0
    for key, value in source.items():
        for name in nnunet_names(key):
            assert torch.equal(target[name], value), name
            compared += 1
    return compared


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
def test_mim_export_loads_into_plain_conv_unet_and_computes_the_same_features(tmp_path, norm):
    backbone, path = pretrained_checkpoint(tmp_path, "mim", norm)
    out = export_backbone(path, tmp_path / "mim_nnunet.pth", file_format="nnunet")
    description = json.loads((tmp_path / "mim_nnunet.pth.json").read_text())["nnunet"]
    assert description["transferred"] == ["encoder", "decoder"] and description["initialised"] == []
    network = plain_conv_unet(description["architecture"])
    load_pretrained_weights(network, out)
    source = {k: v for k, v in backbone.state_dict().items() if k.startswith(("encoder.", "decoder."))}
    assert assert_transferred(network, source) == len(torch.load(out, weights_only=True)["network_weights"])

    backbone.eval(), network.eval()
    stages = []
    hooks = [stage.register_forward_hook(lambda _m, _i, output: stages.append(output))
             for stage in network.decoder.stages]
    x = torch.randn(2, 1, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ours = backbone.encode(x)
        skips = network.encoder(x)
        network.decoder(skips)
        decoded = backbone.decode(ours)
    for hook in hooks:
        hook.remove()
    assert len(skips) == len(ours) == 4 and all(torch.equal(a, b) for a, b in zip(skips, ours, strict=True))
    # nnU-Net's decoder stages run deepest first; sspcmr's decoder outputs are highest resolution first and end
    # with the bottleneck.
    assert all(torch.equal(a, b) for a, b in zip(stages, decoded[::-1][1:], strict=True))


def test_encoder_only_export_fills_the_decoder_as_nnunet_initialises_it(tmp_path):
    backbone, path = pretrained_checkpoint(tmp_path, "simclr")
    rng = torch.get_rng_state()
    content, manifest, description = nnunet_checkpoint(path)
    assert torch.equal(torch.get_rng_state(), rng)  # the decoder's draws leave the global random state alone
    assert manifest["method"] == "simclr" and description["transferred"] == ["encoder"]
    assert description["initialised"] == ["decoder"]
    weights = content["network_weights"]
    assert all(torch.equal(a, b) for a, b in zip(weights.values(), nnunet_checkpoint(path)[0]["network_weights"]
                                                 .values(), strict=True))  # seeded: the same file every time
    transpconv = weights["decoder.transpconvs.0.weight"]  # (64, 32, 2, 2): nnU-Net's He fan-in is 32 * 2 * 2
    assert transpconv.abs().sum() > 0 and torch.equal(weights["decoder.transpconvs.0.bias"], torch.zeros(32))
    assert abs(transpconv.std().item() / (2 / (1 + 1e-4) / 128) ** 0.5 - 1) < 0.1
    assert torch.equal(weights["decoder.stages.0.convs.0.norm.running_var"], torch.ones(32))

    out = export_backbone(path, tmp_path / "simclr_nnunet.pth", file_format="nnunet")
    network = plain_conv_unet(description["architecture"])
    load_pretrained_weights(network, out)
    encoder = {k: v for k, v in backbone.state_dict().items() if k.startswith("encoder.")}
    assert_transferred(network, encoder)
    assert torch.equal(network.decoder.stages[0].convs[0].conv.bias, torch.zeros(32))


def test_nnunet_loader_refuses_a_file_without_decoder(tmp_path):
    """Why an encoder-only export still holds a decoder: nnU-Net's loader requires every non-seg_layers key."""
    _, path = pretrained_checkpoint(tmp_path, "simclr")
    content, _, description = nnunet_checkpoint(path)
    partial = {k: v for k, v in content["network_weights"].items() if k.startswith("encoder.")}
    torch.save({"network_weights": partial}, tmp_path / "encoder_only.pth")
    with pytest.raises(AssertionError, match="decoder.*missing"):
        load_pretrained_weights(plain_conv_unet(description["architecture"]), tmp_path / "encoder_only.pth")


def test_the_plans_norm_must_be_the_exported_one(tmp_path):
    """As docs/nnunet.md says: a BatchNorm export loads without an error into nnU-Net's default InstanceNorm plan
    (the running statistics are dropped), an InstanceNorm export into a BatchNorm plan stops the loader."""
    _, path = pretrained_checkpoint(tmp_path, "mim", "batch")
    batch = export_backbone(path, tmp_path / "batch.pth", file_format="nnunet")
    architecture = json.loads((tmp_path / "batch.pth.json").read_text())["nnunet"]["architecture"]
    instance_plan = {**architecture, "arch_kwargs": {**architecture["arch_kwargs"],
                                                     "norm_op": "torch.nn.modules.instancenorm.InstanceNorm2d"}}
    load_pretrained_weights(plain_conv_unet(instance_plan), batch)
    _, path = pretrained_checkpoint(tmp_path, "simclr", "instance")
    instance = export_backbone(path, tmp_path / "instance.pth", file_format="nnunet")
    with pytest.raises(AssertionError, match="running_mean is missing"):
        load_pretrained_weights(plain_conv_unet(architecture), instance)


def test_reference_unet_export_fits_nnunets_seven_stage_2d_plan(tmp_path):
    """The reference U-Net (7 stages, 32 … 512 channels, BatchNorm) as a fine-tuned segmentation checkpoint."""
    net = UNet()
    randomised(net, seed=5)
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    manifest = build_manifest("segmentation", "net.", ("encoder", "decoder"), net.config, None)
    torch.save({"state_dict": state, "sspcmr_manifest": manifest}, tmp_path / "seg.ckpt")
    out = export_backbone(tmp_path / "seg.ckpt", tmp_path / "seg.pth", file_format="nnunet")
    architecture = json.loads((tmp_path / "seg.pth.json").read_text())["nnunet"]["architecture"]
    assert architecture["arch_kwargs"]["features_per_stage"] == [32, 64, 128, 256, 512, 512, 512]
    assert architecture["arch_kwargs"]["norm_op"] == "torch.nn.modules.batchnorm.BatchNorm2d"
    network = plain_conv_unet(architecture)
    load_pretrained_weights(network, out)
    assert_transferred(network, {k: v for k, v in net.state_dict().items() if not k.startswith("heads.")})
    net.eval(), network.eval()
    x = torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(network.encoder(x), net.encode(x), strict=True))


def test_initial_decoder_matches_the_unet_decoder_shapes():
    config = UNetConfig(channels=tuple(TINY), norm="instance")
    decoder = nnunet_initial_decoder(config, seed=2)
    shapes = {k: v.shape for k, v in UNet(config).state_dict().items() if k.startswith("decoder.")}
    assert {k: v.shape for k, v in decoder.items()} == shapes
    assert all(not v.any() for k, v in decoder.items() if k.endswith("bias"))


def test_cli_exports_for_nnunet_and_refuses_the_heads(tmp_path, capsys):
    _, path = pretrained_checkpoint(tmp_path, "mim")
    out = tmp_path / "mim.pth"
    assert main(["export-backbone", str(path), "-o", str(out), "--format", "nnunet"]) == 0
    assert "nnU-Net v2" in capsys.readouterr().out
    written = torch.load(out, weights_only=True)
    assert list(written) == ["network_weights"] and not any(".seg_layers." in k for k in written["network_weights"])
    sidecar = json.loads((tmp_path / "mim.pth.json").read_text())
    assert sidecar["format"] == "nnunet" and sidecar["method"] == "mim"
    assert sidecar["exported_keys"] == len(written["network_weights"])
    assert main(["export-backbone", str(path), "-o", str(tmp_path / "x.pth"), "--format", "nnunet",
                 "--parts", "all"]) == 2
    assert "never exports the heads" in capsys.readouterr().err and not (tmp_path / "x.pth").exists()
