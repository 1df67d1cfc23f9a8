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
from typing import Literal

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

from sspcmr.checks import check_choice, check_int, check_number
from sspcmr.data import keys as K
from sspcmr.methods.pretrain import EncoderBackbone, Pretraining
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


class SliceLocation(Pretraining):
    """Relative slice-location regression on the U-Net encoder.

    The default optimiser is MIM's (the reference's other regression-style method): SGD with Nesterov
    momentum 0.99, learning rate 0.01 cosine-annealed per epoch, weight decay 3e-5. With the same backbone,
    data, schedule and fine-tuning as the reference methods, a study then compares pretext tasks and nothing
    else. The paper's own recipe (Adam, learning rate 1e-3 halved every 100 epochs over 500 epochs, batch 20)
    is ``optimizer="adam", lr=1e-3, step_size=100, gamma=0.5`` with ``--trainer.max_epochs 500``.

    Args:
        channels: U-Net channels per stage (reference 32, 64, 128, 256, 512, 512, 512); the fine-tuning
            U-Net must use the same.
        norm: normalisation layer of the U-Net (``batch``, reference).
        centrosymmetric: regress sin(pi l) instead of l (both ends of the stack 0, the middle 1); off for
            cardiac short axis, whose base and apex look different.
        optimizer: ``sgd`` (SGD, cosine per epoch to 0 over ``trainer.max_epochs``, as the reference methods)
            or ``adam`` (Adam, the learning rate multiplied by ``gamma`` every ``step_size`` epochs; the paper).
        lr: learning rate (0.01 for SGD; the paper's Adam used 1e-3).
        momentum: SGD momentum (0.99; unused by Adam).
        nesterov: Nesterov momentum (True; unused by Adam).
        weight_decay: weight decay on all parameters (3e-5; with Adam, L2 added to the gradients).
        step_size: Adam only: epochs between learning-rate drops (paper 100).
        gamma: Adam only: factor of each learning-rate drop (paper 0.5).
        log_images: log a predicted-against-true scatter of the validation slices to TensorBoard each
            validation epoch.
        probe: fit the online slice-position probe on the validation slices.
        probe_max_samples: validation rows per rank the probe keeps per epoch.
        monitor_every_n_steps: collapse monitors every this many steps (0: ``trainer.log_every_n_steps``).
    """

    method = "slice_location"
    views = "single"
    also_views = ("mim",)  # the same one-view recipe
    transferable = ("encoder",)

    def __init__(
        self,
        channels: list[int] | None = None,
        norm: str = "batch",
        centrosymmetric: bool = False,
        optimizer: Literal["sgd", "adam"] = "sgd",
        lr: float = 0.01,
        momentum: float = 0.99,
        nesterov: bool = True,
        weight_decay: float = 3e-5,
        step_size: int = 100,
        gamma: float = 0.5,
        log_images: bool = True,
        probe: bool = True,
        probe_max_samples: int = 4096,
        monitor_every_n_steps: int = 0,
    ) -> None:
        super().__init__(channels, norm, lr, momentum, nesterov, weight_decay, probe, probe_max_samples,
                         monitor_every_n_steps)
        check_choice("optimizer", optimizer, ("sgd", "adam"))
        check_int("step_size", step_size, 1)
        check_number("gamma", gamma, 0, 1, low_open=True)
        self.save_hyperparameters()
        self.centrosymmetric = centrosymmetric
        self.log_images = log_images
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

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        image = batch[K.IMAGE]
        features = self.encode(image)
        loss = nn.functional.mse_loss(self.predict_from_features(features), self.target(batch))
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=image.shape[0])
        if self.monitor_due():
            self.log_collapse(features)
        return loss

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self.val_metrics.reset()
        self._scatter = []

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        image = batch[K.IMAGE]
        # The probe's pooled features are the head's input too: one encoder pass serves both.
        prediction = self.predict_from_features(self.probe_features(image, batch))
        target = self.target(batch)
        loss = nn.functional.mse_loss(prediction, target)
        self.log("val/loss", loss, on_epoch=True, prog_bar=True, batch_size=image.shape[0], sync_dist=True)
        self.val_metrics.update(prediction, target)
        if self.log_images and sum(len(p) for p, _ in self._scatter) < SCATTER_POINTS:
            self._scatter.append((prediction.detach().cpu(), target.detach().cpu()))

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        # Every rank computes (torchmetrics gathers its states), so the values are global and identical, and
        # every rank skips the same metrics: R^2 refuses fewer than two slices in the whole epoch.
        scores = {}
        for name, metric in self.val_metrics.items():
            try:
                scores[f"val/{name}"] = metric.compute()
            except ValueError:
                continue
        self.val_metrics.reset()
        if scores:
            self.log_dict(scores, sync_dist=False)
        if self._scatter:
            prediction, target = (torch.cat(t)[:SCATTER_POINTS] for t in zip(*self._scatter, strict=True))
            log_image(self, "val/location_scatter", scatter_image(prediction, target))
            self._scatter = []

    def configure_optimizers(self):
        """The reference SGD + cosine (``optimizer="sgd"``), or Adam with a step schedule per epoch (the paper)."""
        if self.hparams.optimizer == "sgd":
            return super().configure_optimizers()
        optimizer = torch.optim.Adam(self.trainable_parameters(), lr=self.lr, weight_decay=self.weight_decay)
        schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=self.hparams.step_size,
                                                   gamma=self.hparams.gamma)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}
