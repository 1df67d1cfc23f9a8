"""Frozen-feature probes: a probe on features that encode the labels finds them, one on noise does not, the
network stays frozen, and the sources load strictly (encoder for every method, decoder where trained)."""

from __future__ import annotations

import pytest
import torch

from sspcmr.data.datamodule import CineDataModule
from sspcmr.evaluation.metrics import slice_dice
from sspcmr.evaluation.probe import extract, fit_probe, frozen_probe, load_network
from sspcmr.models import UNet, UNetConfig

TINY = [4, 8, 16]


def _labels(n: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    """Random blobs of classes 0-3 (a disc of each foreground class per slice)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    labels = torch.zeros(n, size, size, dtype=torch.uint8)
    for i in range(n):
        for c in (1, 2, 3):
            cy, cx = torch.randint(3, size - 3, (2,), generator=g).tolist()
            labels[i][(yy - cy) ** 2 + (xx - cx) ** 2 <= 6] = c
    return labels


def test_slice_dice_golden_values():
    pred = torch.tensor([[[1, 1, 0], [2, 0, 0]]])
    target = torch.tensor([[[1, 0, 0], [2, 2, 0]]])
    # LV: 2*1/(2+1); MYO: 2*1/(1+2); RV: both empty -> 1
    assert torch.allclose(slice_dice(pred, target), torch.tensor([[2 / 3, 2 / 3, 1.0]]))


def test_probe_finds_labels_that_the_features_encode_and_not_noise():
    train, val = _labels(24, seed=0), _labels(12, seed=1)
    images = {"train": train[:, None].float(), "val": val[:, None].float()}

    def one_hot(image: torch.Tensor) -> torch.Tensor:  # features that carry the labels (plus noise)
        onehot = torch.nn.functional.one_hot(image[:, 0].long(), 4).permute(0, 3, 1, 2).float()
        return onehot + 0.1 * torch.randn(onehot.shape, generator=torch.Generator().manual_seed(3))

    def noise(image: torch.Tensor) -> torch.Tensor:
        return torch.randn(image.shape[0], 8, *image.shape[-2:], generator=torch.Generator().manual_seed(4))

    found = fit_probe(one_hot, images["train"], train, images["val"], val, steps=200)
    assert min(found.values()) > 0.95, found
    recomputed = fit_probe(one_hot, images["train"], train, images["val"], val, steps=200, cache_bytes=0)
    assert min(recomputed.values()) > 0.95, recomputed  # features too large to keep: slices per step
    blind = fit_probe(noise, images["train"], train, images["val"], val, steps=200)
    assert max(blind.values()) < 0.5, blind


def test_probe_is_deterministic_and_needs_slices():
    train, val = _labels(8, seed=0), _labels(4, seed=1)

    def feats(image):
        return torch.cat([image, image.square()], 1)

    a = fit_probe(feats, train[:, None].float(), train, val[:, None].float(), val, steps=20, seed=5)
    b = fit_probe(feats, train[:, None].float(), train, val[:, None].float(), val, steps=20, seed=5)
    assert a == b
    with pytest.raises(ValueError, match="training and validation slices"):
        fit_probe(feats, train[:0, None].float(), train[:0], val[:, None].float(), val)


def test_load_network_is_frozen_and_loads_only_what_the_features_need(tmp_path):
    source = UNet(UNetConfig(channels=tuple(TINY)))
    path = tmp_path / "backbone.pt"
    encoder_only = {k: v for k, v in source.state_dict().items() if k.startswith("encoder.")}
    torch.save(encoder_only, path)
    net = load_network(str(path), "encoder", channels=TINY)
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    for key, value in encoder_only.items():
        assert torch.equal(net.state_dict()[key], value), key
    with pytest.raises(ValueError, match="missing"):  # an encoder-only file cannot serve decoder features
        load_network(str(path), "decoder", channels=TINY)
    with pytest.raises(ValueError, match="channels"):
        load_network(str(path), "encoder")
    image = torch.randn(2, 1, 16, 16)
    assert extract(net, image, "encoder").shape == (2, sum(TINY), 16, 16)
    assert extract(net, image, "decoder").shape == (2, TINY[0], 16, 16)


def test_frozen_probe_on_prepared_data(prepared_tiny):
    prepared, split = prepared_tiny
    data = CineDataModule(str(prepared), str(split), mode="segment", subset_subjects=1, output_size=32,
                          output_spacing=5.0, batch_size=8, num_workers=0)
    results = frozen_probe([None], data, channels=TINY, steps=20)
    assert len(results) == 1 and results[0].source == "random"
    assert set(results[0].dice) == {"LV", "MYO", "RV"} and all(0 <= v <= 1 for v in results[0].dice.values())
    assert results[0].train_slices > 0 and results[0].val_slices > 0


def test_probe_command(prepared_tiny, capsys):
    from sspcmr.commands.main import main

    prepared, split = prepared_tiny
    code = main(["probe", "random", "--prepared", str(prepared), "--split", str(split), "--subset", "1",
                 "--channels", "4", "8", "16", "--output-size", "32", "--output-spacing", "5", "--steps", "10",
                 "--seeds", "0", "1"])
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, captured.err
    assert out.count("random  seed") == 2 and "1x1-conv probe on frozen encoder features" in out
