"""Segmentation overlays for TensorBoard: image, ground truth and prediction side by side."""

from __future__ import annotations

import lightning as L
import torch

from sspcmr.data import keys as K

# LV blood pool red, myocardium green, RV blue (the usual M&Ms colours)
COLOURS = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.2, 0.2], [0.2, 1.0, 0.2], [0.2, 0.4, 1.0]])


def overlay(image: torch.Tensor, labels: torch.Tensor, alpha: float = 0.45) -> torch.Tensor:
    """RGB (B, 3, H, W) in [0, 1]: a grey image (B, 1, H, W) with label colours (B, H, W) blended in."""
    lo = image.amin(dim=(1, 2, 3), keepdim=True)
    hi = image.amax(dim=(1, 2, 3), keepdim=True)
    grey = ((image - lo) / (hi - lo).clamp(min=1e-6)).expand(-1, 3, -1, -1)
    colour = COLOURS.to(image.device)[labels].permute(0, 3, 1, 2)
    mask = (labels > 0).unsqueeze(1).to(image.dtype)
    return grey * (1 - alpha * mask) + colour * alpha * mask


def overlay_grid(image: torch.Tensor, target: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """(3, H', W') grid: one row per slice with image, ground truth overlay and prediction overlay."""
    from torchvision.utils import make_grid

    rows = torch.stack([overlay(image, torch.zeros_like(target)), overlay(image, target), overlay(image, pred)], 1)
    return make_grid(rows.flatten(0, 1).float().cpu(), nrow=3, padding=2)


def log_overlays(module: L.LightningModule, batch: dict) -> None:
    """Log overlays of ``batch`` (IMAGE, one-hot LABEL) predicted by ``module`` to TensorBoard, if used."""
    logger = module.logger
    experiment = getattr(logger, "experiment", None)
    if experiment is None or not hasattr(experiment, "add_image") or not module.trainer.is_global_zero:
        return
    with torch.no_grad():
        pred = module(batch[K.IMAGE])[0].argmax(1)
    grid = overlay_grid(batch[K.IMAGE], batch[K.LABEL].argmax(1), pred)
    experiment.add_image("val/overlays", grid, global_step=module.current_epoch)
