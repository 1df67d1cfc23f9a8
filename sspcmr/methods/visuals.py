"""Images for TensorBoard: segmentation overlays (image, ground truth and prediction side by side), reconstructions
(MIM, Inpainting) and orientation heatmaps."""

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


def _image_writer(module: L.LightningModule):
    """The TensorBoard writer images go to, or None: no image-capable logger, not rank 0, or Lightning's sanity
    check (its validation batches are not an epoch of training: an image there would sit at step 0)."""
    experiment = getattr(module.logger, "experiment", None)
    if experiment is None or not hasattr(experiment, "add_image"):
        return None
    trainer = module.trainer
    return None if not trainer.is_global_zero or trainer.sanity_checking else experiment


def log_overlays(module: L.LightningModule, batch: dict) -> None:
    """Log overlays of ``batch`` (IMAGE, one-hot LABEL) predicted by ``module`` to TensorBoard, if used."""
    experiment = _image_writer(module)
    if experiment is None:
        return
    with torch.no_grad():
        pred = module(batch[K.IMAGE])[0].argmax(1)
    grid = overlay_grid(batch[K.IMAGE], batch[K.LABEL].argmax(1), pred)
    # On the global-step axis, like the scalars, so an image lines up with the losses logged at that step.
    experiment.add_image("val/overlays", grid, global_step=module.global_step)


def log_image(module: L.LightningModule, tag: str, grid: torch.Tensor) -> None:
    """Log a (3, H, W) image in [0, 1] to TensorBoard at the global step (rank 0, if the logger supports images)."""
    experiment = _image_writer(module)
    if experiment is not None:
        experiment.add_image(tag, grid.clamp(0, 1), global_step=module.global_step)


def _window(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image intensity window (lowest, highest value) of (B, 1, H, W) images."""
    return image.amin(dim=(1, 2, 3), keepdim=True), image.amax(dim=(1, 2, 3), keepdim=True)


def _grey(image: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    return ((image - lo) / (hi - lo).clamp(min=1e-6)).clamp(0, 1).expand(-1, 3, -1, -1)


def reconstruction_grid(target: torch.Tensor, masked: torch.Tensor, output: torch.Tensor,
                        mask: torch.Tensor) -> torch.Tensor:
    """(3, H', W') grid, one row per image: target, masked input, reconstruction, reconstruction pasted
    into the visible pixels, and the mask in red. All greys share the target's intensity window."""
    from torchvision.utils import make_grid

    target, masked, output, mask = (t.detach().float().cpu() for t in (target, masked, output, mask))
    lo, hi = _window(target)
    pasted = masked * (1 - mask) + output * mask
    red = torch.cat([mask, torch.zeros_like(mask), torch.zeros_like(mask)], 1)
    rows = torch.stack([_grey(target, lo, hi), _grey(masked, lo, hi), _grey(output, lo, hi),
                        _grey(pasted, lo, hi), red], 1)
    return make_grid(rows.flatten(0, 1), nrow=5, padding=2)


def heatmap_grid(image: torch.Tensor, target: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """(3, H', W') grid, one row per slice: the image, then per channel the target and the prediction
    over a dimmed image (channel 0 red, channel 1 green), then both predicted channels together."""
    from torchvision.utils import make_grid

    image, target, pred = (t.detach().float().cpu() for t in (image, target, pred))
    grey = _grey(image, *_window(image))
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
    return make_grid(torch.stack(columns, 1).flatten(0, 1), nrow=len(columns), padding=2)
