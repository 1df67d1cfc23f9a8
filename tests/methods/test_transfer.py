"""Transfer of pretrained weights into ``Segmentation`` (docs/reference.md#transfer, #check-transfer).

What is tested: sources are plain state dicts with reference naming (``encoder.*`` / ``decoder.*``, heads
absent, in this package's ``heads.*`` or in the reference's ``decoder.output_convs.*``) and sspcmr Lightning
checkpoints whose ``sspcmr_manifest`` names the U-Net prefix. ``encoder`` copies exactly the encoder tensors
(parameters and BN buffers), ``encoder+decoder`` the decoder too, and the heads are never loaded, whatever
their shape: the check (docs/reference.md#check-transfer) "loading MIM's full checkpoint must fail on shape" is about
the heads, which is checked directly with ``load_state_dict``; through ``init_from`` a MIM source (1-channel head)
transfers its encoder and decoder and leaves the 4-class heads at their initialisation. Any mismatch under the
transferred parts (other channels, missing or unexpected keys) and any unreadable source is a ValueError.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sspcmr.methods.segmentation import Segmentation
from sspcmr.methods.transfer import MANIFEST_KEY, load_transfer
from sspcmr.models import UNet, UNetConfig
from sspcmr.models.reference_keys import reference_state_dict

TINY = [8, 16, 32]
CONFIG = UNetConfig(channels=tuple(TINY))
BACKBONE = ("encoder.", "decoder.")


def _source_net(seed: int = 123, **overrides) -> UNet:
    """A U-Net with trained-looking weights: its own seed and non-default BN statistics."""
    torch.manual_seed(seed)
    net = UNet(CONFIG, **overrides)
    with torch.no_grad():
        for parameter in net.parameters():  # BN affine parameters start at exactly 0 and 1
            parameter.add_(0.1 * torch.randn_like(parameter))
        for name, buffer in net.named_buffers():
            if name.endswith("running_mean"):
                buffer.normal_()
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 2.0)
            elif name.endswith("num_batches_tracked"):
                buffer.fill_(77)
    return net


def _backbone(net: UNet) -> dict[str, torch.Tensor]:
    return {k: v for k, v in net.state_dict().items() if k.startswith(BACKBONE)}


def _save(obj, path: Path) -> str:
    torch.save(obj, path)
    return str(path)


def _pair(path: str, transfer: str = "encoder", seed: int = 0) -> tuple[Segmentation, Segmentation]:
    """(model initialised from ``path``, the same model without transfer): same seed, so same init."""
    torch.manual_seed(seed)
    plain = Segmentation(channels=TINY, log_images=False)
    torch.manual_seed(seed)
    loaded = Segmentation(channels=TINY, log_images=False, init_from=path, transfer=transfer)
    loaded.apply_init_from()
    return loaded, plain


def _assert_part(state: dict, expected: dict, prefix: str) -> None:
    keys = [k for k in state if k.startswith(prefix)]
    assert keys, prefix
    for key in keys:
        torch.testing.assert_close(state[key], expected[key], rtol=0, atol=0, msg=key)


def _assert_differs(state: dict, other: dict, prefix: str) -> None:
    """Every floating tensor under ``prefix`` differs (so an equality check above means something)."""
    for key in state:
        if key.startswith(prefix) and state[key].is_floating_point():
            assert not torch.equal(state[key], other[key]), key


@pytest.mark.parametrize("heads", ["absent", "package", "reference"])
def test_encoder_transfer_copies_exactly_the_encoder(tmp_path, heads):
    source_net = _source_net()
    if heads == "absent":
        source = _backbone(source_net)
    elif heads == "package":
        source = source_net.state_dict()  # heads.*
    else:
        source = reference_state_dict(source_net)  # decoder.output_convs.* (reference naming)
        assert any(k.startswith("decoder.output_convs.") for k in source)
    path = _save(source, tmp_path / "backbone.pt")
    model, plain = _pair(path)
    state, init, src = model.net.state_dict(), plain.net.state_dict(), source_net.state_dict()
    _assert_differs(src, init, "encoder.")
    _assert_part(state, src, "encoder.")  # weights, biases, BN statistics and counters
    _assert_part(state, init, "decoder.")
    _assert_part(state, init, "heads.")

    report = model.transfer_report
    encoder_keys = sorted(k for k in state if k.startswith("encoder."))
    assert report.mode == "encoder" and report.source == path
    assert report.loaded == encoder_keys
    assert report.kept_initial == sorted(k for k in state if not k.startswith("encoder."))
    assert len(report.loaded) + len(report.kept_initial) == len(state)
    assert f"loaded {len(encoder_keys)} tensors" in str(report)
    assert "decoder.*, heads.*" in str(report)


@pytest.mark.parametrize("heads", ["absent", "package", "reference"])
def test_encoder_decoder_transfer_copies_decoder_never_heads(tmp_path, heads):
    source_net = _source_net()
    source = {"absent": _backbone(source_net), "package": source_net.state_dict(),
              "reference": reference_state_dict(source_net)}[heads]
    path = _save(source, tmp_path / "backbone.pt")
    model, plain = _pair(path, transfer="encoder+decoder")
    state, init, src = model.net.state_dict(), plain.net.state_dict(), source_net.state_dict()
    _assert_differs(src, init, "heads.")
    _assert_part(state, src, "encoder.")
    _assert_part(state, src, "decoder.")
    _assert_part(state, init, "heads.")
    report = model.transfer_report
    assert report.loaded == sorted(k for k in state if k.startswith(BACKBONE))
    assert report.kept_initial == sorted(k for k in state if k.startswith("heads."))
    assert "left at initialisation (heads.*)" in str(report)


def test_without_init_from_nothing_is_transferred():
    assert Segmentation(channels=TINY, log_images=False).transfer_report is None


def test_mim_source_with_one_channel_head_transfers_backbone_only(tmp_path):
    mim = _source_net(out_channels=1, num_heads=1)
    assert tuple(mim.heads[0].weight.shape) == (1, TINY[0], 1, 1)
    # docs/reference.md#check-transfer: the full MIM state dict does not fit the 4-class segmentation heads ...
    with pytest.raises(RuntimeError, match="size mismatch"):
        Segmentation(channels=TINY, log_images=False).net.load_state_dict(mim.state_dict(), strict=False)
    # ... so transfer never loads heads: encoder + decoder load, in either naming of the MIM head.
    for name, source in (("package", mim.state_dict()), ("reference", reference_state_dict(mim))):
        path = _save(source, tmp_path / f"mim_{name}.pt")
        model, plain = _pair(path, transfer="encoder+decoder")
        state = model.net.state_dict()
        _assert_part(state, mim.state_dict(), "encoder.")
        _assert_part(state, mim.state_dict(), "decoder.")
        _assert_part(state, plain.net.state_dict(), "heads.")
        assert tuple(model.net.heads[0].weight.shape) == (4, TINY[0], 1, 1)


def test_lightning_checkpoint_with_manifest_prefix(tmp_path):
    source_net = _source_net()
    state = {f"net.{k}": v for k, v in source_net.state_dict().items()}
    state["projector.0.weight"] = torch.zeros(3, 3)  # other modules of the pretraining method: ignored
    state["encoder.enc_blocks.0.conv1.weight"] = torch.zeros(1)  # outside the prefix: ignored
    ckpt = {"state_dict": state, "epoch": 7, MANIFEST_KEY: {"prefix": "net."}}
    path = _save(ckpt, tmp_path / "last.ckpt")
    model, plain = _pair(path, transfer="encoder+decoder")
    _assert_part(model.net.state_dict(), source_net.state_dict(), "encoder.")
    _assert_part(model.net.state_dict(), source_net.state_dict(), "decoder.")
    _assert_part(model.net.state_dict(), plain.net.state_dict(), "heads.")
    assert model.transfer_report.loaded == sorted(k for k in source_net.state_dict() if k.startswith(BACKBONE))


def test_lightning_checkpoint_without_manifest_is_refused(tmp_path):
    state = {f"net.{k}": v for k, v in _source_net().state_dict().items()}
    path = _save({"state_dict": state, "epoch": 7}, tmp_path / "last.ckpt")
    with pytest.raises(ValueError, match="without an sspcmr manifest"):
        Segmentation(channels=TINY, init_from=path).apply_init_from()
    path = _save({"state_dict": state, MANIFEST_KEY: {"other": 1}}, tmp_path / "bad_manifest.ckpt")
    with pytest.raises(ValueError, match="manifest"):
        Segmentation(channels=TINY, init_from=path).apply_init_from()


def test_wrong_prefix_in_manifest_is_missing_keys(tmp_path):
    state = {f"model.{k}": v for k, v in _source_net().state_dict().items()}
    path = _save({"state_dict": state, MANIFEST_KEY: {"prefix": "net."}}, tmp_path / "last.ckpt")
    with pytest.raises(ValueError, match=r"missing"):
        Segmentation(channels=TINY, init_from=path).apply_init_from()


def test_other_channels_fail_naming_shapes(tmp_path):
    source = _backbone(_source_net(channels=(8, 16, 64)))
    path = _save(source, tmp_path / "wide.pt")
    with pytest.raises(ValueError, match=r"with other shapes") as error:
        Segmentation(channels=TINY, init_from=path).apply_init_from()
    message = str(error.value)
    # The deepest stage's tensors, e.g. its BN bias: (64,) in the source against (32,) in the model.
    assert "('encoder.enc_blocks.2.bn1.bias', (64,), (32,))" in message
    assert "transfer='encoder'" in message


def test_other_depth_fails(tmp_path):
    source = _backbone(_source_net(channels=(8, 16, 32, 32)))
    path = _save(source, tmp_path / "deep.pt")
    with pytest.raises(ValueError, match=r"unexpected \(e\.g\. \['encoder\.enc_blocks\.3\."):
        Segmentation(channels=TINY, init_from=path).apply_init_from()


def test_missing_keys_fail(tmp_path):
    source = _backbone(_source_net())
    del source["encoder.enc_blocks.1.bn2.running_var"]
    path = _save(source, tmp_path / "partial.pt")
    with pytest.raises(ValueError, match=r"1 missing \(e\.g\. \['encoder\.enc_blocks\.1\.bn2\.running_var'\]\)"):
        Segmentation(channels=TINY, init_from=path).apply_init_from()
    # An encoder-only export cannot provide a decoder.
    encoder_only = {k: v for k, v in _source_net().state_dict().items() if k.startswith("encoder.")}
    path = _save(encoder_only, tmp_path / "encoder.pt")
    assert Segmentation(channels=TINY, init_from=path).apply_init_from().loaded == sorted(encoder_only)
    with pytest.raises(ValueError, match=r"missing \(e\.g\. \['decoder\."):
        Segmentation(channels=TINY, init_from=path, transfer="encoder+decoder").apply_init_from()


def test_unexpected_key_under_transferred_part_fails(tmp_path):
    source = _backbone(_source_net())
    source["encoder.extra.weight"] = torch.zeros(2)
    path = _save(source, tmp_path / "extra.pt")
    with pytest.raises(ValueError, match=r"1 unexpected \(e\.g\. \['encoder\.extra\.weight'\]\)"):
        Segmentation(channels=TINY, init_from=path).apply_init_from()


def test_failed_transfer_leaves_the_network_untouched(tmp_path):
    source = _backbone(_source_net(channels=(8, 16, 64)))
    path = _save(source, tmp_path / "wide.pt")
    net = UNet(CONFIG)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(ValueError):
        load_transfer(net, path, "encoder")
    _assert_part(net.state_dict(), before, "")  # nothing half-loaded


def test_unreadable_sources_fail(tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"this is not a checkpoint\x00\x01\x02" * 10)
    with pytest.raises(ValueError, match="cannot read"):
        Segmentation(channels=TINY, init_from=str(corrupt)).apply_init_from()
    truncated = tmp_path / "truncated.pt"
    torch.save(_backbone(_source_net()), truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(ValueError, match="cannot read"):
        Segmentation(channels=TINY, init_from=str(truncated)).apply_init_from()
    with pytest.raises(ValueError, match="does not exist"):
        Segmentation(channels=TINY, init_from=str(tmp_path / "missing.pt")).apply_init_from()
    with pytest.raises(ValueError, match="neither"):
        Segmentation(channels=TINY, init_from=_save([1, 2, 3], tmp_path / "list.pt")).apply_init_from()
    with pytest.raises(ValueError, match="neither"):
        Segmentation(channels=TINY, init_from=_save({"encoder.x": 1.0}, tmp_path / "numbers.pt")).apply_init_from()


def test_unknown_mode_fails(tmp_path):
    path = _save(_backbone(_source_net()), tmp_path / "backbone.pt")
    with pytest.raises(ValueError, match="transfer must be one of"):
        load_transfer(UNet(CONFIG), path, "heads")  # type: ignore[arg-type]
