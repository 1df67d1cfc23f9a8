"""``SliceLocation``: regress where a short-axis slice lies between base and apex (Zhang et al., section 4.2).

The target is the relative slice location ``batch[K.LOCATION]`` that the data set computes from the
stack geometry (:mod:`sspcmr.data.slice_geometry`: distance of the slice plane from the first plane over
the stack's extent, base 0, apex 1), never from the slice index, so uneven spacing and gaps are honoured.
Geometric augmentation moves pixels within the plane and leaves the target unchanged. The network is the
U-Net encoder, global average pooling of the bottleneck and one linear unit; the loss is the mean squared
error over the batch. Only the encoder transfers (the paper transfers encoder and decoder for its
multitask model; this single-task model trains no decoder).

Validation reports the paper's pretext metrics over the whole validation epoch (torchmetrics, synchronised
across ranks): MSE, MAE, Pearson r, R^2 and explained variance, plus a predicted-against-true scatter image.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torchmetrics import (
    ExplainedVariance,
    MeanAbsoluteError,
    MeanSquaredError,
    MetricCollection,
    PearsonCorrCoef,
    R2Score,
)

from sspcmr.data import keys as K
from sspcmr.methods.geometric import Geometric
from sspcmr.methods.pretrain import EncoderBackbone
from sspcmr.methods.visuals import log_image

SCATTER_SIZE = 128  # side of the scatter image in pixels
SCATTER_POINTS = 2048  # validation pairs per epoch the scatter keeps (rank 0's first ones)


def location_target(location: torch.Tensor, centrosymmetric: bool = False) -> torch.Tensor:
    """The regression target of relative locations l in [0, 1]: l itself, or sin(pi l) when centrosymmetric
    (for stacks that look alike on both sides of the middle slice, so both ends map to 0)."""
    location = location.float()
    return torch.sin(math.pi * location) if centrosymmetric else location


def validation_metrics() -> MetricCollection:
    """The paper's pretext metrics of predicted against true locations, accumulated over an epoch."""
    return MetricCollection({"mse": MeanSquaredError(), "mae": MeanAbsoluteError(), "pearson_r": PearsonCorrCoef(),
                             "r2": R2Score(), "explained_variance": ExplainedVariance()})


def scatter_image(prediction: torch.Tensor, target: torch.Tensor, size: int = SCATTER_SIZE) -> torch.Tensor:
    """RGB (3, size, size) in [0, 1]: one white pixel per (target, prediction) pair on a black square spanning
    [0, 1] on both axes (target to the right, prediction upwards; predictions outside are clamped to the
    border), with the identity diagonal in grey. Drawn into a tensor because matplotlib is not a dependency."""
    image = torch.zeros(3, size, size)
    diagonal = torch.arange(size)
    image[:, size - 1 - diagonal, diagonal] = 0.4
    x = (target.detach().float().cpu().clamp(0, 1) * (size - 1)).round().long()
    y = (size - 1 - prediction.detach().float().cpu().clamp(0, 1) * (size - 1)).round().long()
    image[:, y, x] = 1.0
    return image


class SliceLocation(Geometric):
    """Relative slice-location regression on the U-Net encoder.

    The optimiser is :class:`~sspcmr.methods.geometric.Geometric`'s choice: MIM's SGD by default, or the
    paper's Adam (``optimizer="adam", lr=1e-3, step_size=100, gamma=0.5`` with ``--trainer.max_epochs 500``).

    Args:
        centrosymmetric: regress sin(pi l) instead of l (both ends of the stack 0, the middle 1); off for
            cardiac short axis, whose base and apex look different.
        **kwargs: the optimiser choice and ``log_images`` (a predicted-against-true scatter of the validation
            slices; :class:`~sspcmr.methods.geometric.Geometric`), the U-Net, probe and monitor options
            (:class:`~sspcmr.methods.pretrain.Pretraining`), the output grid, intensity convention, centring
            and augmentation seed (:class:`~sspcmr.methods.base.CineModule`).
    """

    method = "slice_location"
    transferable = ("encoder",)
    hparams_ignore = ()  # SliceLocation's saved hyperparameters include log_images

    def __init__(self, centrosymmetric: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.centrosymmetric = centrosymmetric
        self.backbone = EncoderBackbone(self.unet_config())
        self.head = nn.Linear(self.unet_channels[-1], 1)
        self.val_metrics = validation_metrics()
        self._scatter: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Predicted locations (B,) of (B, 1, H, W) images."""
        return self.predict_from_features(self.encode(images))

    def predict_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """Predicted locations (B,) from pooled bottleneck features (B, C), in fp32 even under autocast."""
        return self.head(features).squeeze(1).float()

    def target(self, batch: dict) -> torch.Tensor:
        """The regression target (B,) of a batch."""
        return location_target(batch[K.LOCATION], self.centrosymmetric)

    def epoch_metrics(self) -> dict[str, MetricCollection]:
        return {"val/": self.val_metrics}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        image = batch[K.IMAGE]
        features = self.encode(image)
        loss = nn.functional.mse_loss(self.predict_from_features(features), self.target(batch))
        self.log_training(loss, image.shape[0], features)
        return loss

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self._scatter = []

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        image = batch[K.IMAGE]
        # The probe's pooled features are the head's input too: one encoder pass serves both.
        prediction = self.predict_from_features(self.probe_features(image, batch))
        target = self.target(batch)
        self.log_validation(nn.functional.mse_loss(prediction, target), image.shape[0])
        self.val_metrics.update(prediction, target)
        if self.log_images and sum(len(p) for p, _ in self._scatter) < SCATTER_POINTS:
            self._scatter.append((prediction.detach().cpu(), target.detach().cpu()))

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        if self._scatter:
            prediction, target = (torch.cat(t)[:SCATTER_POINTS] for t in zip(*self._scatter, strict=True))
            log_image(self, "val/location_scatter", scatter_image(prediction, target))
            self._scatter = []
