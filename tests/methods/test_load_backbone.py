"""``sspcmr.load_backbone``: a pretrained encoder (and decoder) into a U-Net or into any module holding one
under a prefix, with the checks and the report of fine-tuning (``Segmentation(init_from=...)``), and errors
worded for Python (the arguments to change, not command-line options)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from sspcmr import Segmentation, UNet, load_backbone
from sspcmr.data.errors import DataError
from sspcmr.methods.transfer import MANIFEST_KEY, build_manifest
from tests.methods.test_transfer import CONFIG, TINY, _source_net

ENCODER = "encoder."


class UserModel(L.LightningModule):
    """A user's own model: the U-Net as ``self.net`` beside layers of its own."""

    def __init__(self, **unet) -> None:
        super().__init__()
        self.net = UNet(CONFIG, **unet)
        self.classifier = torch.nn.Linear(TINY[-1], 3)


def _checkpoint(path: Path, net: UNet, transferable: tuple[str, ...] = ("encoder", "decoder")) -> str:
    """An sspcmr pretraining checkpoint: the U-Net under ``backbone.`` beside a projector, with its manifest."""
    state = {f"backbone.{k}": v for k, v in net.state_dict().items()}
    state["projector.0.weight"] = torch.ones(4, 4)
    manifest = build_manifest("mim", "backbone.", transferable, net.config, {"output_size": 64, "output_spacing": 2.0})
    torch.save({"state_dict": state, MANIFEST_KEY: manifest}, path)
    return str(path)


def _exported(path: Path, net: UNet) -> str:
    """An exported backbone: encoder and decoder with reference names, no manifest inside."""
    torch.save({k: v for k, v in net.state_dict().items() if k.startswith(("encoder.", "decoder."))}, path)
    return str(path)


def _equal(state: dict, expected: dict, prefix: str, strip: str = "") -> None:
    keys = [k for k in state if k.startswith(prefix)]
    assert keys, prefix
    for key in keys:
        assert torch.equal(state[key], expected[key[len(strip):]]), key


def test_into_a_unet_as_fine_tuning_loads(tmp_path):
    source = _source_net()
    path = _exported(tmp_path / "backbone.pt", source)
    torch.manual_seed(0)
    net = UNet(CONFIG)
    initial = {k: v.clone() for k, v in net.state_dict().items()}
    report = load_backbone(net, path, parts="encoder+decoder")
    _equal(net.state_dict(), source.state_dict(), "encoder.")
    _equal(net.state_dict(), source.state_dict(), "decoder.")
    _equal(net.state_dict(), initial, "heads.")  # heads are never transferred
    tuned = Segmentation(channels=TINY, log_images=False, init_from=path, transfer="encoder+decoder")
    reference = tuned.apply_init_from()
    assert report.to_dict() == reference.to_dict()  # same report as --model.init_from
    assert str(report) == str(reference)


def test_into_a_user_module_by_prefix(tmp_path):
    source = _source_net()
    path = _checkpoint(tmp_path / "mim.ckpt", source)
    model = UserModel()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = load_backbone(model, path, parts="encoder", prefix="net.")
    state = model.state_dict()
    _equal(state, source.state_dict(), "net.encoder.", strip="net.")
    for part in ("net.decoder.", "net.heads.", "classifier."):
        _equal(state, before, part)
    assert report.loaded == sorted(k for k in state if k.startswith("net.encoder."))
    assert report.kept_initial == sorted(k for k in state if not k.startswith("net.encoder."))
    assert report.manifest["method"] == "mim" and report.sha256 and report.mode == "encoder"
    # The report of fine-tuning from the same checkpoint names the same tensors (Segmentation keeps its U-Net
    # under net. too).
    tuned = Segmentation(channels=TINY, log_images=False, init_from=path)
    again = load_backbone(tuned, path, prefix="net.")
    assert again.loaded == ["net." + key for key in tuned.apply_init_from().loaded]


def test_prefix_must_name_where_the_unet_is(tmp_path):
    path = _checkpoint(tmp_path / "mim.ckpt", _source_net())
    with pytest.raises(ValueError, match=r"no U-Net encoder under prefix ''; its encoder keys start with \['net.'\]"):
        load_backbone(UserModel(), path)
    with pytest.raises(ValueError, match="prefix must be empty or end with '.'"):
        load_backbone(UserModel(), path, prefix="net")
    with pytest.raises(ValueError, match="has no keys containing 'encoder.'"):
        load_backbone(torch.nn.Linear(2, 2), path)


def test_errors_name_python_arguments(tmp_path):
    encoder_only = _checkpoint(tmp_path / "simclr.ckpt", _source_net(), transferable=("encoder",))
    with pytest.raises(ValueError, match=r"provides only encoder; use parts='encoder' instead of 'encoder\+decoder'"):
        load_backbone(UNet(CONFIG), encoder_only, parts="encoder+decoder")
    with pytest.raises(ValueError, match="parts must be one of"):
        load_backbone(UNet(CONFIG), encoder_only, parts="heads")  # type: ignore[arg-type]
    wide = UNet(channels=(8, 16, 64))
    with pytest.raises(ValueError, match=r"load_backbone: .* another U-Net .* UNetConfig\(channels=\[8, 16, 32\]\)"):
        load_backbone(wide, encoder_only)


def test_a_mismatch_loads_nothing(tmp_path):
    state = {k: v for k, v in _source_net().state_dict().items() if k.startswith(ENCODER)}
    del state["encoder.enc_blocks.1.bn2.running_var"]
    torch.save(state, tmp_path / "partial.pt")
    model = UserModel()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"parts='encoder': 1 missing \(e\.g\. \['net\.encoder\.enc_blocks\.1\.bn2"):
        load_backbone(model, tmp_path / "partial.pt", prefix="net.")
    _equal(model.state_dict(), before, "")


class Payload:
    """Anything but tensors and plain data: a pickle that would run code on loading."""


def test_files_are_read_as_data_only(tmp_path):
    torch.save({"state_dict": {}, "payload": Payload()}, tmp_path / "code.ckpt")
    with pytest.raises(DataError, match="load_backbone: .* is refused"):
        load_backbone(UNet(CONFIG), tmp_path / "code.ckpt")
    with pytest.raises(DataError, match="does not exist"):
        load_backbone(UNet(CONFIG), tmp_path / "absent.pt")
