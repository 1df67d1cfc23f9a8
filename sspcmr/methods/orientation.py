"""``Orientation``: the U-Net regresses where the long-axis planes cut each short-axis slice.

Zhang et al. (section 4.1): the two-chamber and four-chamber long-axis planes are prescribed from cardiac
landmarks, so their intersection lines with a short-axis slice carry anatomy. The target of channel k is
the Gaussian of the distance to line k, G = exp(-d^2 / (2 sigma^2)), sigma = 6 output pixels; the whole
U-Net with a single full-resolution K-channel linear head regresses it under an L2 loss averaged over
slices, channels and pixels (paper eq. 2). The lines come from the image geometry
(:mod:`sspcmr.data.long_axis`) and the targets are drawn on the augmented output grid from the
augmentation's ``THETA``, so they move with the image exactly.

Slices of subjects without a long-axis view (every M&Ms subject) have no target for it: their channels
are masked out of the loss (``--data.long_axis_only true`` skips such subjects altogether). The
optimiser is the shared U-Net recipe of MIM (SGD Nesterov momentum 0.99, lr 0.01 cosine per epoch,
weight decay 3e-5), so pretext tasks differ only in the task; the paper's own recipe (Adam, lr 1e-3
halved every 100 epochs, 500 epochs, batch 20) is ``optimizer="adam"`` (``docs/methods/orientation.md``).
The encoder and decoder transfer, never the K-channel head.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from sspcmr.checks import check_number
from sspcmr.data import keys as K
from sspcmr.data.long_axis import VIEWS
from sspcmr.losses.heatmap import heatmap_loss
from sspcmr.methods.geometric import Geometric
from sspcmr.methods.heatmaps import output_lines, render_heatmaps
from sspcmr.methods.pretrain import pooled_bottleneck
from sspcmr.methods.visuals import heatmap_grid, log_image
from sspcmr.models import UNet

View = Literal["2ch", "4ch"]
# The batch keys of the targets add_targets draws on the augmented views.
TARGET, VALID, LINES = "heatmap_target", "heatmap_valid", "heatmap_lines"


def peak_distances(pred: torch.Tensor, lines: torch.Tensor) -> torch.Tensor:
    """Distance in output pixels from each predicted heatmap's maximum pixel to the true line.

    Args:
        pred: (B, K, S, S) predicted heatmaps.
        lines: (B, K, 3) the true lines over the output grid's (row, column), normalised
            (:func:`sspcmr.methods.heatmaps.output_lines`).

    Returns:
        (B, K) distances.
    """
    size = pred.shape[-1]
    flat = pred.detach().flatten(2).argmax(dim=-1)  # (B, K)
    rows, cols = (flat // size).to(lines.dtype), (flat % size).to(lines.dtype)
    return (lines[..., 0] * rows + lines[..., 1] * cols + lines[..., 2]).abs()


class Orientation(Geometric):
    """Relative orientation regression (Zhang et al.) with the full U-Net.

    Args:
        sigma: standard deviation of the Gaussian line heatmaps in output pixels (paper 6 px at 224 px;
            the paper found the transfer insensitive to it).
        views_used: long-axis views regressed, one output channel each, in this order (default both:
            2ch, 4ch).
        **kwargs: the optimiser choice and ``log_images`` (image, target and predicted heatmaps of the first
            validation batch; :class:`~sspcmr.methods.geometric.Geometric`), the U-Net, probe and monitor
            options (:class:`~sspcmr.methods.pretrain.Pretraining`), the output grid, intensity convention,
            centring and augmentation seed (:class:`~sspcmr.methods.base.CineModule`).
    """

    method = "orientation"
    transferable = ("encoder", "decoder")

    def __init__(self, sigma: float = 6.0, views_used: list[View] | None = None, **kwargs: Any) -> None:
        used = list(views_used) if views_used is not None else list(VIEWS)
        if not used or len(set(used)) != len(used) or any(v not in VIEWS for v in used):
            raise ValueError(f"views_used must be distinct views of {list(VIEWS)}; got {views_used!r}")
        check_number("sigma", sigma, 0, low_open=True)
        super().__init__(**kwargs)
        self.sigma = sigma
        self.views_used = used
        self.channel_index = [VIEWS.index(v) for v in used]  # LA_LINES channels, in output order
        self.backbone = UNet(self.unet_config(out_channels=len(used), num_heads=1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Predicted heatmaps (B, K, H, W)."""
        return self.backbone.forward_logits(images)

    def add_targets(self, batch: dict) -> dict:
        """Adds the target heatmaps (B, K, S, S), their validity (B, K) and the lines over the output grid
        (B, K, 3) of the augmented views (slices of subjects without long-axis views have no valid target
        and add nothing to the loss; ``--data.long_axis_only true`` skips them)."""
        image = batch[K.IMAGE]
        size = int(image.shape[-1])
        # Nothing here is read on the host: the canvas size stays a device tensor, and the channels are picked
        # by integer indexing (a list index would be copied to the device, a blocking copy).
        padded = batch[K.PADDED]
        lines = torch.stack([batch[K.LA_LINES][:, k] for k in self.channel_index], dim=1).to(image.device)
        valid = torch.stack([batch[K.LA_VALID][:, k] for k in self.channel_index], dim=1).to(image.device)
        theta = batch[K.THETA]
        batch[TARGET], batch[VALID] = render_heatmaps(lines, valid, theta, padded, size, self.sigma), valid
        batch[LINES] = output_lines(lines, theta, padded, size)
        return batch

    def _step(self, batch: dict) -> dict[str, torch.Tensor]:
        features = self.backbone.encode(batch[K.IMAGE])
        pred = self.backbone.full_resolution(features)
        target, valid = batch[TARGET], batch[VALID]
        return {"loss": heatmap_loss(pred, target, valid), "pred": pred, "target": target, "valid": valid,
                "lines": batch[LINES], "pooled": pooled_bottleneck(features)}

    def step_outputs(self, out: dict[str, torch.Tensor], stage: str, batch: dict) -> None:
        """Called with every training / validation step's outputs; subclasses (``Multitask``) log more."""

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self._step(batch)
        self.step_outputs(out, "train", batch)
        b = batch[K.IMAGE].shape[0]
        self.log_training(out["loss"], b, out["pooled"].detach())
        # Share of (slice, channel) pairs with a target: 0 means this step's loss was a zero placeholder.
        self.log_step_and_epoch("train/valid_fraction", out["valid"].float().mean(), b)
        return out["loss"]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        image = batch[K.IMAGE]
        out = self._step(batch)
        self.step_outputs(out, "val", batch)
        self.log_validation(out["loss"], image.shape[0])
        valid = out["valid"]
        count = int(valid.sum())
        # Weighted by valid pairs, so the epoch value is the mean over every valid (slice, channel) pair
        # (val/loss is a mean of batch means, weighted by slices). Logged on every batch, with weight 0 when
        # nothing is valid: under DDP every rank must take part in the same synchronised reductions.
        per_channel = (out["pred"].float() - out["target"]).square().mean(dim=(2, 3))
        distance = peak_distances(out["pred"], out["lines"])
        zero = per_channel.new_zeros(())
        self.log("val/heatmap_mse", per_channel[valid].mean() if count else zero, on_epoch=True,
                 batch_size=count, sync_dist=True)
        self.log("val/peak_distance_px", distance[valid].mean() if count else zero, on_epoch=True,
                 batch_size=count, sync_dist=True)
        self.probe_features(image, batch)
        if batch_idx == 0 and self.log_images:
            first = [t[:8] for t in (image, out["target"], out["pred"])]
            log_image(self, "val/heatmaps", heatmap_grid(*first))
