"""Frozen-feature probes: how linearly separable LV, MYO and RV are in a network's features.

A measure of representation quality that does not depend on fine-tuning dynamics (learning rate,
momentum, deep-supervision heads, how long a run sits on the all-background solution): the network is
frozen in evaluation mode (its BatchNorm running statistics as saved), and only a 1x1 convolution from
its per-pixel features to the 4 classes is trained, by Adam on random pixels of all the labelled training
slices, then scored with the reference's per-slice hard Dice on the *validation* slices (never the test
subjects).

Features (``features``):

* ``encoder``: every encoder stage, bilinearly upsampled to the input size and concatenated (a
  "hypercolumn"); available for every method, since every method trains the encoder;
* ``decoder``: the last decoder stage (full resolution), for sources that train the decoder (MIM,
  Inpainting, Orientation, Multitask, segmentation).

Each channel is standardised with its mean and standard deviation over the training slices, so one
learning rate suits every source. Controls: ``source=None`` probes a randomly initialised network of the
same architecture (the floor a pretrained network must beat), and a supervised checkpoint gives a
ceiling.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from sspcmr.data import keys as K
from sspcmr.evaluation.metrics import slice_dice
from sspcmr.models.unet import UNet, UNetConfig

Features = Literal["encoder", "decoder"]
CLASSES = ("LV", "MYO", "RV")


@dataclass
class ProbeResult:
    """Validation Dice of a probe: per class (LV, MYO, RV) and their mean, with what it was fitted on."""

    source: str
    features: str
    dice: dict[str, float] = field(default_factory=dict)
    train_slices: int = 0
    val_slices: int = 0

    @property
    def mean(self) -> float:
        return sum(self.dice.values()) / len(self.dice)


def extract(net: UNet, image: Tensor, features: Features) -> Tensor:
    """Per-pixel features (B, C, H, W) of a frozen U-Net for (B, 1, H, W) images."""
    with torch.no_grad():
        stages = net.encoder(image)
        if features == "decoder":
            return net.decoder(stages)[0]
        size = image.shape[-2:]
        return torch.cat([stage if stage.shape[-2:] == size else
                          F.interpolate(stage, size=size, mode="bilinear", align_corners=False) for stage in stages], 1)


def _feature_statistics(featurise, images: Tensor, batch_size: int,
                        cache_bytes: int) -> tuple[Tensor, Tensor, list[Tensor] | None]:
    """Channel mean and std of the features of ``images`` over slices and pixels, computed in chunks of
    ``batch_size`` slices (features can be wide), with the chunks' features when they take at most
    ``cache_bytes`` (else None: recomputed per step)."""
    total, squares, count, chunks = None, None, 0, []
    for chunk in images.split(batch_size):
        feats = featurise(chunk)
        wide = feats.double()
        total = wide.sum((0, 2, 3)) if total is None else total + wide.sum((0, 2, 3))
        squares = wide.square().sum((0, 2, 3)) if squares is None else squares + wide.square().sum((0, 2, 3))
        count += feats.shape[0] * feats.shape[2] * feats.shape[3]
        if chunks is not None:
            chunks.append(feats)
            if sum(c.numel() for c in chunks) * 4 > cache_bytes:
                chunks = None  # too large to keep: recompute per step
    mean = (total / count).float()
    std = (squares / count - (total / count).square()).clamp(min=0).sqrt().float().clamp(min=1e-6)
    return mean, std, chunks


def fit_probe(featurise, train_images: Tensor, train_labels: Tensor, val_images: Tensor, val_labels: Tensor,
              steps: int = 300, lr: float = 0.05, batch_size: int = 32, seed: int = 0,
              cache_bytes: int = 2**31) -> dict[str, float]:
    """Train a 1x1 convolution on frozen features and return its validation Dice per class.

    Args:
        featurise: maps (B, 1, H, W) images to (B, C, H, W) features (no gradient needed).
        train_images, val_images: (N, 1, H, W) images on the network grid.
        train_labels, val_labels: (N, H, W) integer labels 0-3.
        steps: Adam steps, each on ``batch_size * 1024`` random training pixels (features in memory) or on
            ``batch_size`` random training slices (features recomputed).
        lr: Adam learning rate.
        batch_size: slices per step (per 1024 pixels with features in memory) and per featurisation chunk.
        seed: minibatch order and head initialisation.
        cache_bytes: keep the training features in memory when they take at most this much (the network
            is frozen, so they never change); otherwise recompute them every step.
    """
    if len(train_images) == 0 or len(val_images) == 0:
        raise ValueError("the probe needs training and validation slices")
    generator = torch.Generator().manual_seed(seed)
    mean, std, chunks = _feature_statistics(featurise, train_images, batch_size, cache_bytes)
    cached = None if chunks is None else (torch.cat(chunks) - mean[None, :, None, None]) / std[None, :, None, None]

    def standardised(images: Tensor) -> Tensor:
        return (featurise(images) - mean[None, :, None, None]) / std[None, :, None, None]

    torch.manual_seed(seed)
    head = torch.nn.Conv2d(len(mean), 4, kernel_size=1)
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    if cached is not None:  # pixels as rows: each step samples pixels of every training slice
        pixels = cached.permute(0, 2, 3, 1).reshape(-1, cached.shape[1])
        targets = train_labels.reshape(-1).long()
    for _ in range(steps):
        if cached is not None:
            index = torch.randint(len(pixels), (batch_size * 1024,), generator=generator)
            logits = F.linear(pixels[index], head.weight[:, :, 0, 0], head.bias)
            loss = F.cross_entropy(logits, targets[index])
        else:
            index = torch.randperm(len(train_images), generator=generator)[:batch_size]
            loss = F.cross_entropy(head(standardised(train_images[index])), train_labels[index].long())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        scores = torch.cat([slice_dice(head(standardised(images)).argmax(1), labels)
                            for images, labels in zip(val_images.split(batch_size), val_labels.split(batch_size),
                                                      strict=True)])
    return {name: float(value) for name, value in zip(CLASSES, scores.mean(0).tolist(), strict=True)}


def load_network(source: str | Path | None, features: Features, channels: Iterable[int] | None = None,
                 seed: int = 0) -> UNet:
    """A frozen U-Net in evaluation mode: ``source``'s encoder (and decoder for ``features="decoder"``),
    or a random one (``source=None``: the control). The architecture comes from the source's manifest,
    else from ``channels``."""
    from sspcmr.methods.transfer import load_transfer, read_source

    config = UNetConfig(channels=tuple(channels)) if channels else UNetConfig()
    if source is not None:
        _, _, manifest = read_source(source)
        unet = (manifest or {}).get("unet")
        if isinstance(unet, dict):
            config = UNetConfig(channels=tuple(unet["channels"]), norm=unet.get("norm", "batch"),
                                negative_slope=unet.get("negative_slope", 0.01))
        elif not channels:
            raise ValueError(f"{source} has no manifest: give the U-Net's channels")
    torch.manual_seed(seed)
    net = UNet(config)
    if source is not None:
        load_transfer(net, source, "encoder+decoder" if features == "decoder" else "encoder")
    return net.eval().requires_grad_(False)


def collect(loader, resample) -> tuple[Tensor, Tensor]:
    """Images (N, 1, H, W) and labels (N, H, W) of a slice loader, resampled with the evaluation transform."""
    images, labels = [], []
    for batch in loader:
        out = resample(batch)
        images.append(out[K.IMAGE])
        labels.append(out[K.LABEL].argmax(1).to(torch.uint8))
    return torch.cat(images), torch.cat(labels)


def frozen_probe(sources: list[str | None], data, features: Features = "encoder", channels: list[int] | None = None,
                 steps: int = 300, lr: float = 0.05, seed: int = 0) -> list[ProbeResult]:
    """Probe each source (None: a random network) on ``data``'s labelled training and validation slices.

    Args:
        sources: checkpoints or exported backbones; None for the random-initialisation control.
        data: a :class:`~sspcmr.data.datamodule.CineDataModule` in ``segment`` mode (its ``subset_subjects``
            is the label budget; its ``output_size`` / ``output_spacing`` the grid).
        features: ``encoder`` (hypercolumn of all encoder stages) or ``decoder`` (last decoder stage).
        channels: U-Net channels for sources without a manifest and for the random control.
        steps, lr, seed: the probe's training (:func:`fit_probe`).
    """
    data.setup("fit")
    train = collect(data.ordered_dataloader("train"), data.resample)
    val = collect(data.ordered_dataloader("val"), data.resample)
    results = []
    for source in sources:
        net = load_network(source, features, channels, seed)
        dice = fit_probe(lambda images, net=net: extract(net, images, features), train[0], train[1], val[0], val[1],
                         steps=steps, lr=lr, seed=seed)
        results.append(ProbeResult("random" if source is None else str(source), features, dice, len(train[0]),
                                   len(val[0])))
    return results
