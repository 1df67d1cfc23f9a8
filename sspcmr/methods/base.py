"""``CineModule``: what every sspcmr LightningModule shares: it owns its augmentation and its targets.

The data module (:class:`~sspcmr.data.datamodule.CineDataModule`) serves native slices and knows nothing of
methods. A method turns each native batch into what it trains on, on the batch's device, in
``on_after_batch_transfer``: :meth:`CineModule.train_augmentation` (an
:class:`~sspcmr.transforms.views.Augmenter` recipe) and :meth:`CineModule.add_targets` (per-slice
targets that depend on the augmentation, e.g. heatmaps on the output grid). Whole volumes for evaluation
get the evaluation resampling (image-centred, no augmentation). docs/adding-a-method.md shows a method with
its own recipe.

The output grid (``output_size``, ``output_spacing``) and ``augmentation_seed`` are the data module's
``output_size``, ``output_spacing`` and ``seed``: the command line links them (``sspcmr fit`` sets them
once, on the data module); from Python, pass the same values to both.

Two speed options apply to every method (docs/cli.md#speed-options): ``compile`` compiles the U-Net's encoder
and decoder in place with ``torch.compile`` (``nn.Module.compile``: the state dict keys stay the plain ones, so
checkpoints and transfer manifests are the same with and without it) and ``channels_last`` keeps the weights
and the augmented network inputs in ``torch.channels_last`` memory format. Both are applied in
``configure_model``, i.e. whenever a Trainer runs the module; from Python without a Trainer, call
:meth:`CineModule.apply_speed_options`.
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import lightning as L
import torch

from sspcmr.checks import check_choice, check_int, check_number
from sspcmr.data import keys as K
from sspcmr.models import UNetDecoder, UNetEncoder
from sspcmr.transforms import presets
from sspcmr.transforms.presets import Centring, ScaleConvention
from sspcmr.transforms.views import Augmenter

__all__ = ["CineModule", "RANK_STRIDE"]

RANK_STRIDE = 100_003
"""Rank r draws its augmentation from ``augmentation_seed + RANK_STRIDE r`` (validation: one more)."""
GENERATOR_KEY = "sspcmr_augmentation_generator"

# Lightning warns whenever a LightningModule with a data module overrides on_after_batch_transfer; here that is the
# design (the method owns its augmentation), so the warning says nothing.
warnings.filterwarnings("ignore", message="You have overridden `on_after_batch_transfer` in `LightningModule` but")


class CineModule(L.LightningModule):
    """Base of sspcmr's LightningModules: augmentation of native slices owned by the method.

    Args:
        output_size: side in pixels of the slices the network sees (reference 256); linked to the data
            module's ``output_size`` on the command line.
        output_spacing: their pixel spacing in mm (reference 1.25); linked to the data module's.
        scale_convention: intensity scaling ``monai`` (x(1+f), multiplier 1.6-2.5: the reference) or
            ``multiplier`` (x f, 0.6-1.5).
        centring: training crops centred on the ground-truth circle (``gt``, reference) or on the image
            centre (``image``, for data without labels).
        augmentation_seed: seed of the augmentation stream (each rank draws its own); linked to the data
            module's ``seed`` on the command line, so one seed repeats a run exactly.
        compile: compile the U-Net's encoder and decoder with ``torch.compile`` when a Trainer runs the model
            (faster steps on a GPU after a start-up cost of tens of seconds to minutes; checkpoints are the same
            as without it).
        channels_last: keep the weights and the augmented network inputs in ``torch.channels_last`` memory
            format (GPU convolutions prefer it under mixed precision; the results are the same up to rounding).
    """

    RUN_TIME_OPTIONS: ClassVar[tuple[str, ...]] = ("compile", "channels_last")
    """Left out of the saved hyperparameters: they change the speed of a run, not its model, and ``sspcmr
    validate|test|predict --ckpt_path`` re-read saved hyperparameters over the command line; each run sets them."""

    STREAM_KEYS: ClassVar[dict[str, str]] = {"augmentation": GENERATOR_KEY}
    """Random streams saved in checkpoints: stream name -> checkpoint key."""

    def __init__(
        self,
        output_size: int = 256,
        output_spacing: float = 1.25,
        scale_convention: ScaleConvention = "monai",
        centring: Centring = "gt",
        augmentation_seed: int = 0,
        compile: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        check_int("output_size", output_size, 1)
        check_number("output_spacing", output_spacing, 0, low_open=True)
        check_choice("scale_convention", scale_convention, ("monai", "multiplier"))
        check_choice("centring", centring, ("gt", "image"))
        check_int("augmentation_seed", augmentation_seed, 0, 2**32 - 1)
        for name, value in (("compile", compile), ("channels_last", channels_last)):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false; got {value!r}")
        self.output_size, self.output_spacing = output_size, output_spacing
        self.scale_convention, self.centring = scale_convention, centring
        self.augmentation_seed = augmentation_seed
        # Not ``self.compile``: that would hide nn.Module.compile.
        self.compile_network, self.channels_last = compile, channels_last
        self._generators: dict[tuple[str, str], torch.Generator] = {}
        self._recipes: dict[str, Augmenter | None] = {}

    # -- the recipe: what a method overrides --------------------------------------------------------

    def recipe_options(self) -> dict:
        """The keyword arguments every :mod:`sspcmr.transforms.presets` recipe takes."""
        return {"output_size": self.output_size, "output_spacing": self.output_spacing,
                "scale_convention": self.scale_convention, "centring": self.centring}

    def train_augmentation(self) -> Augmenter:
        """The training views (default: the reference's one augmented view, GT-centred)."""
        return presets.segmentation_train(**self.recipe_options())

    def validation_augmentation(self) -> Augmenter | None:
        """The validation views; None (default) draws the training recipe from a stream that restarts at
        every validation run, so every epoch's validation loss sees the same views (the reference computes
        self-supervised validation losses on augmented views)."""
        return None

    def add_targets(self, batch: dict) -> dict:
        """Per-slice targets that depend on the augmented views (default: none)."""
        return batch

    def preprocessing(self) -> dict:
        """The grid and intensity conventions recorded in checkpoint manifests."""
        return {"output_size": int(self.output_size), "output_spacing": float(self.output_spacing),
                "centring": self.centring, "scale_convention": self.scale_convention}

    def log_step_and_epoch(self, name: str, value: torch.Tensor, batch_size: int, prog_bar: bool = False) -> None:
        """Log ``<name>_step`` (this rank's value: no collective at every step) and ``<name>_epoch`` (the epoch's
        mean over every rank, synchronised once at the epoch's end): the names Lightning gives on_step + on_epoch."""
        self.log(f"{name}_step", value, on_step=True, on_epoch=False, prog_bar=prog_bar, batch_size=batch_size)
        self.log(f"{name}_epoch", value, on_step=False, on_epoch=True, sync_dist=True, batch_size=batch_size)

    def setup(self, stage: str) -> None:
        # From Python the grid is given twice (here and to the data module): refuse a mismatch rather than
        # train on one grid and evaluate on another. (The command line links them.)
        data = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        grid = (getattr(data, "output_size", None), getattr(data, "output_spacing", None))
        if grid[0] is not None and grid != (self.output_size, self.output_spacing):
            raise ValueError(f"{type(self).__name__} resamples to {self.output_size} px at {self.output_spacing} mm "
                             f"but the data module to {grid[0]} px at {grid[1]} mm: pass the same output_size and "
                             "output_spacing to both")

    # -- speed options ------------------------------------------------------------------------------

    def configure_model(self) -> None:
        # Lightning calls this in every fit / validate / test / predict, after ``setup`` and before the model
        # moves to its device (which keeps the memory format) and before a checkpoint is restored into it.
        self.apply_speed_options()

    def apply_speed_options(self) -> None:
        """Apply ``channels_last`` (weights) and ``compile`` (the U-Net's encoder and decoder); idempotent."""
        if self.channels_last:
            self.to(memory_format=torch.channels_last)
        if self.compile_network:
            # Every method reaches its U-Net through the encoder and decoder modules (encode, decode, forward),
            # so compiling their __call__ in place covers all of them, the teacher of DINO included, and keeps
            # the state dict keys (no ``_orig_mod.`` of a torch.compile wrapper).
            for module in self.modules():
                if isinstance(module, (UNetEncoder, UNetDecoder)) and module._compiled_call_impl is None:
                    module.compile()

    def network_inputs(self, batch: dict) -> dict:
        """``batch`` with the images the network reads (``IMAGE``, ``VIEWS``) in ``channels_last`` format when
        that option is on; targets keep their layout."""
        if not self.channels_last:
            return batch
        out = dict(batch)
        if isinstance(out.get(K.IMAGE), torch.Tensor) and out[K.IMAGE].ndim == 4:
            out[K.IMAGE] = out[K.IMAGE].contiguous(memory_format=torch.channels_last)
        if K.VIEWS in out:
            out[K.VIEWS] = [view.contiguous(memory_format=torch.channels_last) for view in out[K.VIEWS]]
        return out

    # -- applying it --------------------------------------------------------------------------------

    def _recipe(self, stage: str) -> Augmenter:
        if stage not in self._recipes:
            self._recipes[stage] = self.train_augmentation() if stage == "train" else self.validation_augmentation()
        return self._recipes[stage] or self._recipe("train")

    def random_stream(self, name: str, stage: str, seed: int, stride: int) -> torch.Generator:
        """The CPU generator of stream ``name`` for ``train`` or ``val`` on this rank, created on first use from
        ``seed + stride * rank`` (validation: one more). Every validation run restarts the ``val`` streams; the
        ``train`` streams named in :attr:`STREAM_KEYS` are saved in checkpoints."""
        key = (name, stage)
        if key not in self._generators:
            rank = self.trainer.global_rank if self._trainer is not None else 0
            self._generators[key] = torch.Generator().manual_seed(seed + stride * rank + (stage != "train"))
        return self._generators[key]

    def augmentation_generator(self, stage: str) -> torch.Generator:
        """The CPU generator of ``train`` or ``val`` views on this rank (created on first use)."""
        return self.random_stream("augmentation", stage, self.augmentation_seed, RANK_STRIDE)

    def augment(self, batch: dict, training: bool) -> dict:
        """The views (and targets) of a native slice batch; a whole volume gets the evaluation resampling."""
        if K.PHASE in batch:  # a whole volume for evaluation in native space
            if "volume" not in self._recipes:
                self._recipes["volume"] = presets.evaluation(output_size=self.output_size,
                                                             output_spacing=self.output_spacing)
            return self.network_inputs(presets.resample_for_evaluation(self._recipes["volume"], batch))
        stage = "train" if training else "val"
        return self.network_inputs(self.add_targets(self._recipe(stage)(batch, self.augmentation_generator(stage))))

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        return self.augment(batch, training=bool(self._trainer is not None and self.trainer.training))

    def on_validation_epoch_start(self) -> None:
        for key in [key for key in self._generators if key[1] == "val"]:
            del self._generators[key]  # every validation run sees the same views (and corruptions)

    # The training streams are part of the run's state: a resumed run continues them instead of repeating draws.
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        for name, key in self.STREAM_KEYS.items():
            if (name, "train") in self._generators:
                checkpoint[key] = self._generators[name, "train"].get_state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        for name, key in self.STREAM_KEYS.items():
            if checkpoint.get(key) is not None:
                self._generators[name, "train"] = torch.Generator()
                self._generators[name, "train"].set_state(checkpoint[key])
