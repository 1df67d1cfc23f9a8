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

from typing import Literal

import torch
from lightning.pytorch.utilities import rank_zero_info

from sspcmr.checks import check_choice, check_int, check_number
from sspcmr.data import keys as K
from sspcmr.data.long_axis import VIEWS, output_lines, render_heatmaps
from sspcmr.methods.pretrain import Pretraining, global_pool
from sspcmr.methods.visuals import log_image
from sspcmr.models import UNet

View = Literal["2ch", "4ch"]


def heatmap_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Squared error averaged over the valid (slice, channel) pairs and their pixels.

    Args:
        pred: (B, K, S, S) predicted heatmaps.
        target: (B, K, S, S) target heatmaps.
        valid: (B, K) bool; invalid channels contribute nothing (a row without any contributes nothing).

    Returns:
        Scalar fp32 loss; ``pred.sum() * 0`` (zero, still attached to the graph, so every rank of a DDP
        step runs the same backward) when no channel is valid.
    """
    weights = valid.to(torch.float32)
    count = weights.sum()
    per_channel = (pred.float() - target.float()).square().mean(dim=(2, 3))  # (B, K)
    # The zero fallback is selected without a host synchronisation on ``count``.
    return torch.where(count > 0, (per_channel * weights).sum() / count.clamp(min=1.0), pred.float().sum() * 0)


def peak_distances(pred: torch.Tensor, lines: torch.Tensor) -> torch.Tensor:
    """Distance in output pixels from each predicted heatmap's maximum pixel to the true line.

    Args:
        pred: (B, K, S, S) predicted heatmaps.
        lines: (B, K, 3) the true lines over the output grid's (row, column), normalised
            (:func:`sspcmr.data.long_axis.output_lines`).

    Returns:
        (B, K) distances.
    """
    size = pred.shape[-1]
    flat = pred.detach().flatten(2).argmax(dim=-1)  # (B, K)
    rows, cols = (flat // size).to(lines.dtype), (flat % size).to(lines.dtype)
    return (lines[..., 0] * rows + lines[..., 1] * cols + lines[..., 2]).abs()


def heatmap_grid(image: torch.Tensor, target: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """(3, H', W') grid, one row per slice: the image, then per channel the target and the prediction
    over a dimmed image (channel 0 red, channel 1 green), then both predicted channels together."""
    from torchvision.utils import make_grid

    image, target, pred = (t.detach().float().cpu() for t in (image, target, pred))
    lo = image.amin(dim=(1, 2, 3), keepdim=True)
    hi = image.amax(dim=(1, 2, 3), keepdim=True)
    grey = ((image - lo) / (hi - lo).clamp(min=1e-6)).clamp(0, 1).expand(-1, 3, -1, -1)
    colours = torch.tensor([[1.0, 0.2, 0.2], [0.2, 1.0, 0.2]])

    def paint(maps: torch.Tensor, first: int = 0) -> torch.Tensor:  # heatmaps of channels first.. over the image
        out = 0.5 * grey
        for k in range(maps.shape[1]):
            out = out + maps[:, k : k + 1].clamp(0, 1) * colours[(first + k) % 2].view(1, 3, 1, 1)
        return out.clamp(0, 1)

    columns = [grey]
    for k in range(target.shape[1]):
        columns += [paint(target[:, k : k + 1], k), paint(pred[:, k : k + 1], k)]
    columns.append(paint(pred))
    rows = torch.stack(columns, 1)
    return make_grid(rows.flatten(0, 1), nrow=len(columns), padding=2)


class Orientation(Pretraining):
    """Relative orientation regression (Zhang et al.) with the full U-Net.

    Args:
        channels: U-Net channels per stage (reference 32, 64, 128, 256, 512, 512, 512); the fine-tuning
            U-Net must use the same.
        norm: normalisation layer of the U-Net (``batch``, reference).
        sigma: standard deviation of the Gaussian line heatmaps in output pixels (paper 6 px at 224 px;
            the paper found the transfer insensitive to it).
        views_used: long-axis views regressed, one output channel each, in this order (default both:
            2ch, 4ch).
        optimizer: ``sgd`` (SGD, cosine per epoch to 0 over ``trainer.max_epochs``: the shared U-Net recipe
            of MIM) or ``adam`` (Adam, the learning rate multiplied by ``gamma`` every ``step_size`` epochs:
            the paper's recipe with ``lr`` 1e-3, ``step_size`` 100, ``gamma`` 0.5 over 500 epochs).
        lr: learning rate (MIM's 0.01 for SGD; the paper's Adam used 1e-3).
        momentum: SGD momentum (MIM's 0.99; unused by Adam).
        nesterov: Nesterov momentum (MIM's True; unused by Adam).
        weight_decay: weight decay on all parameters (MIM's 3e-5; with Adam, L2 added to the gradients).
        step_size: Adam only: epochs between learning-rate drops (paper 100).
        gamma: Adam only: factor of each learning-rate drop (paper 0.5).
        log_images: log image, target and predicted heatmaps of the first validation batch to TensorBoard
            each validation epoch.
        probe: fit the online slice-position probe on the validation slices.
        probe_max_samples: validation rows per rank the probe keeps per epoch.
        monitor_every_n_steps: collapse monitors every this many steps (0: ``trainer.log_every_n_steps``).
    """

    method = "orientation"
    views = "single"
    also_views = ("mim",)  # the same one-view recipe
    transferable = ("encoder", "decoder")

    def __init__(
        self,
        channels: list[int] | None = None,
        norm: str = "batch",
        sigma: float = 6.0,
        views_used: list[View] | None = None,
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
        used = list(views_used) if views_used is not None else list(VIEWS)
        if not used or len(set(used)) != len(used) or any(v not in VIEWS for v in used):
            raise ValueError(f"views_used must be distinct views of {list(VIEWS)}; got {views_used!r}")
        check_number("sigma", sigma, 0, low_open=True)
        check_choice("optimizer", optimizer, ("sgd", "adam"))
        check_int("step_size", step_size, 1)
        check_number("gamma", gamma, 0, 1, low_open=True)
        self.save_hyperparameters(ignore=["log_images"])
        self.log_images = log_images
        self.sigma = sigma
        self.views_used = used
        self.channel_index = [VIEWS.index(v) for v in used]  # LA_LINES channels, in output order
        self.backbone = UNet(self.unet_config(out_channels=len(used), num_heads=1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Predicted heatmaps (B, K, H, W)."""
        return self.backbone.forward_logits(images)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        hparams = getattr(getattr(self.trainer, "datamodule", None), "hparams", None)
        if hparams is not None and not hparams.get("long_axis_only", True):
            rank_zero_info("Orientation: slices of subjects without long-axis views have no target and add "
                           "nothing to the loss; --data.long_axis_only true skips them")

    def targets(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(target heatmaps (B, K, S, S), valid (B, K), lines over the output grid (B, K, 3)) of a batch."""
        image = batch[K.IMAGE]
        size = int(image.shape[-1])
        padded = tuple(int(v) for v in batch[K.PADDED][0].tolist())
        lines = batch[K.LA_LINES][:, self.channel_index].to(image.device)
        valid = batch[K.LA_VALID][:, self.channel_index].to(image.device)
        theta = batch[K.THETA]
        target = render_heatmaps(lines, valid, theta, padded, size, self.sigma)
        return target, valid, output_lines(lines, theta, padded, size)

    def _step(self, batch: dict) -> dict[str, torch.Tensor]:
        image = batch[K.IMAGE]
        target, valid, lines = self.targets(batch)
        features = self.backbone.encoder(image)
        pred = self.backbone.heads[0](self.backbone.decoder(features)[0])
        return {"loss": heatmap_loss(pred, target, valid), "pred": pred, "target": target, "valid": valid,
                "lines": lines, "pooled": global_pool(features[-1])}

    def step_outputs(self, out: dict[str, torch.Tensor], stage: str, batch: dict) -> None:
        """Called with every training / validation step's outputs; subclasses (``Multitask``) log more."""

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self._step(batch)
        self.step_outputs(out, "train", batch)
        b = batch[K.IMAGE].shape[0]
        self.log("train/loss", out["loss"], on_step=True, on_epoch=True, prog_bar=True, batch_size=b)
        # Share of (slice, channel) pairs with a target: 0 means this step's loss was a zero placeholder.
        self.log("train/valid_fraction", out["valid"].float().mean(), on_step=True, on_epoch=True, batch_size=b)
        if self.monitor_due():
            self.log_collapse(out["pooled"].detach())
        return out["loss"]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        image = batch[K.IMAGE]
        out = self._step(batch)
        self.step_outputs(out, "val", batch)
        valid = out["valid"]
        self.log("val/loss", out["loss"], on_epoch=True, prog_bar=True, batch_size=image.shape[0], sync_dist=True)
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
            count = min(8, image.shape[0])
            grid = heatmap_grid(image[:count], out["target"][:count], out["pred"][:count])
            log_image(self, "val/heatmaps", grid)

    def configure_optimizers(self):
        """The shared SGD + cosine (``optimizer="sgd"``), or Adam with a step schedule per epoch (the paper)."""
        if self.hparams.optimizer == "sgd":
            return super().configure_optimizers()
        optimizer = torch.optim.Adam(self.trainable_parameters(), lr=self.lr, weight_decay=self.weight_decay)
        schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=self.hparams.step_size,
                                                   gamma=self.hparams.gamma)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}
