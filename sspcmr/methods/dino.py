"""``DINO``: self-distillation, a student matches a momentum teacher's sharpened outputs across crops.

Reference (docs/reference.md#dino-views, #dino-network, #dino-loss, #optimisation): the U-Net encoder with average
pooling of the bottleneck and lightly's ``DINOProjectionHead`` (512-2048-2048-256, batch norm, GELU, a weight-normalised
last layer of 8192 outputs with its norm fixed at 1); two global crops (256 px) and six local crops (128 px) of
one slice, global and local crops encoded in separate forward calls and the head applied to all eight;
lightly's ``DINOLoss`` (student temperature 0.1, teacher temperature warmed up 0.02 -> 0.04 over 30
epochs, centre momentum 0.9; the centre is all-reduced so every rank holds the same); SGD momentum 0.9
with the learning rate, weight decay and teacher momentum set at every step (linear warmup to
0.03 x 64 / 256 = 0.0075 over 10 epochs then cosine to 1e-6; weight decay 1e-4 constant on weights
only; teacher momentum cosine 0.996 -> 1.0, lightly's ``update_momentum`` after each optimiser step);
the last layer frozen during epoch 0; 64 slices per batch; fp16 mixed precision; 100 epochs.

Teacher initialisation: ``student`` copies the student (DINO as published, the default);
``separate`` gives the teacher its own random initialisation, as the reference code does (a bug, kept
as an option to reproduce its numbers). Only the student's encoder transfers.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Any, Literal

import torch
from lightly.loss import DINOLoss
from lightly.models.modules import DINOProjectionHead
from lightly.models.utils import deactivate_requires_grad, update_momentum

from sspcmr.checks import check_choice, check_int, check_number
from sspcmr.data import keys as K
from sspcmr.losses.precision import autocast_off
from sspcmr.methods.monitoring import mean_entropy
from sspcmr.methods.optimisation import SGDWarmupCosine
from sspcmr.methods.pretrain import EncoderBackbone, Pretraining
from sspcmr.methods.schedules import dino_cosine_schedule
from sspcmr.transforms.intensity import IntensityAugmentation
from sspcmr.transforms.presets import CentreConvention, Centring, ScaleConvention, augmented_geometry
from sspcmr.transforms.views import Augmenter, ViewSpec


class DINO(Pretraining):
    """DINO on the U-Net encoder.

    Args:
        hidden_dim: hidden width of the DINO head (reference 2048).
        bottleneck_dim: bottleneck width of the DINO head (reference 256).
        output_dim: number of DINO outputs (reference 8192; DINO's original 65536).
        student_temperature: student temperature (reference 0.1).
        teacher_temperature: teacher temperature after the warmup (reference 0.04).
        warmup_teacher_temperature: teacher temperature at epoch 0 (reference 0.02).
        warmup_teacher_temperature_epochs: epochs of the linear teacher-temperature warmup (reference 30).
        center_momentum: momentum of the teacher-output centre (reference 0.9).
        teacher_momentum: teacher EMA momentum at step 0 (reference 0.996), cosine to ``teacher_momentum_end``.
        teacher_momentum_end: teacher EMA momentum at the last step (reference 1.0).
        teacher_init: ``student`` (copy the student, DINO) or ``separate`` (own random init, the reference).
        freeze_last_layer_epochs: epochs during which the head's last layer gets no update (reference 1).
        lr: peak learning rate (reference 0.03 x 64 / 256 = 0.0075).
        min_lr: final learning rate of the cosine (reference 1e-6).
        warmup_epochs: epochs of linear learning-rate warmup from 0 (reference 10).
        momentum: SGD momentum (reference 0.9).
        weight_decay: weight decay at step 0 on weights (not biases or 1-D parameters; reference 1e-4).
        weight_decay_end: weight decay at the last step, cosine in between (reference 1e-4: constant).
        **kwargs: the U-Net, probe (fed the first global crop) and monitor options (collapse and teacher
            entropy; :class:`~sspcmr.methods.pretrain.Pretraining`), the output grid, intensity convention,
            centring and augmentation seed (:class:`~sspcmr.methods.base.CineModule`).
    """

    method = "dino"
    transferable = ("encoder",)

    def __init__(
        self,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        output_dim: int = 8192,
        student_temperature: float = 0.1,
        teacher_temperature: float = 0.04,
        warmup_teacher_temperature: float = 0.02,
        warmup_teacher_temperature_epochs: int = 30,
        center_momentum: float = 0.9,
        teacher_momentum: float = 0.996,
        teacher_momentum_end: float = 1.0,
        teacher_init: Literal["student", "separate"] = "student",
        freeze_last_layer_epochs: int = 1,
        lr: float = 0.0075,
        min_lr: float = 1e-6,
        warmup_epochs: int = 10,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        weight_decay_end: float = 1e-4,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.optimisation = SGDWarmupCosine(lr, min_lr, warmup_epochs, momentum, weight_decay, weight_decay_end)
        check_choice("teacher_init", teacher_init, ("student", "separate"))
        for name, value in (("hidden_dim", hidden_dim), ("bottleneck_dim", bottleneck_dim), ("output_dim", output_dim)):
            check_int(name, value, 1)
        for name, value in (("student_temperature", student_temperature), ("teacher_temperature", teacher_temperature),
                            ("warmup_teacher_temperature", warmup_teacher_temperature)):
            check_number(name, value, 0, low_open=True)
        for name, value in (("warmup_teacher_temperature_epochs", warmup_teacher_temperature_epochs),
                            ("freeze_last_layer_epochs", freeze_last_layer_epochs)):
            check_int(name, value, 0)
        for name, value in (("center_momentum", center_momentum), ("teacher_momentum", teacher_momentum),
                            ("teacher_momentum_end", teacher_momentum_end)):
            check_number(name, value, 0, 1)
        self.build_networks(teacher_init == "student")
        self.criterion = DINOLoss(output_dim=output_dim, warmup_teacher_temp=warmup_teacher_temperature,
                                  teacher_temp=teacher_temperature,
                                  warmup_teacher_temp_epochs=warmup_teacher_temperature_epochs,
                                  student_temp=student_temperature, center_momentum=center_momentum)
        self._schedules: dict[str, torch.Tensor] | None = None
        self._step_index = 0

    def build_networks(self, teacher_copies_student: bool) -> None:
        """The student (``backbone``, ``head``) and the teacher (``teacher_backbone``, ``teacher_head``), in
        this order (the initial weights depend on it)."""
        config = self.unet_config()
        self.backbone = EncoderBackbone(config)
        self.head = self._head()
        # Fresh modules draw their own initial weights ("separate"); "student" then overwrites them with the
        # student's. (deepcopy cannot copy the weight-normalised last layer.)
        self.teacher_backbone = EncoderBackbone(config)
        self.teacher_head = self._head()
        if teacher_copies_student:
            self.teacher_backbone.load_state_dict(self.backbone.state_dict())
            self.teacher_head.load_state_dict(self.head.state_dict())
        # The teacher learns only through the EMA; no gradients, no optimiser state.
        deactivate_requires_grad(self.teacher_backbone)
        deactivate_requires_grad(self.teacher_head)

    def check_output_size(self, size: int) -> None:
        super().check_output_size(size)
        divisor = self.backbone.config.divisor
        step = 2 * divisor  # the local crops, output_size // 2 px, go through the encoder too
        if size % step:
            raise ValueError(f"output_size {size} is not divisible by {step}, which DINO needs: its local crops of "
                             f"{size // 2} px must be multiples of {divisor} for the U-Net with "
                             f"{len(self.unet_channels)} stages (use a multiple of {step}, e.g. "
                             f"{max(step, round(size / step) * step)})")

    def train_augmentation(self) -> Augmenter:
        """DINO's 2 global and ``local_views`` local crops (:func:`dino_views`)."""
        return dino_views(**self.recipe_options())

    def _head(self) -> DINOProjectionHead:
        h = self.hparams
        with warnings.catch_warnings():  # lightly builds the last layer with the older weight_norm API
            warnings.filterwarnings("ignore", "`torch.nn.utils.weight_norm` is deprecated", FutureWarning)
            return DINOProjectionHead(self.unet_channels[-1], h.hidden_dim, h.bottleneck_dim, h.output_dim,
                                      batch_norm=True, freeze_last_layer=h.freeze_last_layer_epochs,
                                      norm_last_layer=True)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Student outputs (B, output_dim) of (B, 1, H, W) crops."""
        return self.head(self.encode(images))

    def teacher_temperature_at(self, epoch: int) -> float:
        """The teacher temperature of an epoch: lightly's ``DINOLoss`` warm-up (linear from
        ``warmup_teacher_temperature`` over ``warmup_teacher_temperature_epochs``), then ``teacher_temperature``."""
        schedule = self.criterion.teacher_temp_schedule
        return float(schedule[epoch]) if epoch < len(schedule) else float(self.criterion.teacher_temp)

    # -- optimisation: per-step schedules (the recipe's learning rate and weight decay, the teacher momentum) --

    def schedules(self, iterations_per_epoch: int, epochs: int) -> dict[str, torch.Tensor]:
        """Per-step learning rate, weight decay and teacher momentum (docs/reference.md#dino-schedules)."""
        h = self.hparams
        return {**self.optimisation.schedules(iterations_per_epoch, epochs),
                "teacher_momentum": dino_cosine_schedule(h.teacher_momentum, h.teacher_momentum_end, epochs,
                                                         iterations_per_epoch)}

    def on_train_start(self) -> None:
        epochs = self.trainer.max_epochs
        if epochs is None or epochs < 1:
            raise ValueError(f"DINO's schedules need a finite trainer.max_epochs; got {epochs}")
        iterations = int(self.trainer.num_training_batches)
        accumulate = max(1, int(self.trainer.accumulate_grad_batches))
        self._schedules = self.schedules(max(1, iterations // accumulate), epochs)

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        if self._schedules is None:
            return
        self._step_index = min(self.trainer.global_step, len(self._schedules["lr"]) - 1)
        self.optimisation.set_step(self.optimizers(use_pl_optimizer=False), self._schedules, self._step_index)

    def on_after_backward(self) -> None:
        # Dropping the last layer's gradients in the first epoch(s) keeps it fixed (no SGD update, no decay).
        self.head.cancel_last_layer_gradients(self.current_epoch)

    def on_train_batch_end(self, outputs, batch: dict, batch_idx: int) -> None:
        if self._schedules is None:
            return
        m = float(self._schedules["teacher_momentum"][self._step_index])
        # After the optimiser step: teacher <- m teacher + (1 - m) student, parameters only (not BN buffers).
        update_momentum(self.backbone, self.teacher_backbone, m)
        update_momentum(self.head, self.teacher_head, m)
        self.log("train/teacher_momentum", m, on_step=True, on_epoch=False)

    # -- steps ---------------------------------------------------------------------------------------

    def _student(self, global_views: list[torch.Tensor], local_views: list[torch.Tensor]) -> list[torch.Tensor]:
        # Global and local crops are encoded separately (BatchNorm statistics per crop size, as in the
        # reference); the head then sees all crops at once: [global_0, global_1, local_0, ...].
        features = [self.encode(torch.cat(global_views))]
        if local_views:
            features.append(self.encode(torch.cat(local_views)))
        outputs = self.head(torch.cat(features))
        return list(outputs.chunk(len(global_views) + len(local_views)))

    def distillation_loss(self, teacher_out: list[torch.Tensor], student_out: list[torch.Tensor]) -> torch.Tensor:
        """lightly's DINO loss of the per-view outputs at this epoch's teacher temperature (its warm-up), in
        float32 whatever the autocast precision; updates the centre."""
        # The sharp teacher softmax (T = 0.04 over 8192 outputs) and the cross-entropy einsum need float32: the
        # outputs are cast and autocast is off, so lightly's operations are not lowered again.
        with autocast_off(self.device):
            return self.criterion([t.float() for t in teacher_out], [s.float() for s in student_out],
                                  epoch=self.current_epoch)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        views = batch[K.VIEWS]
        if len(views) < 2:
            raise ValueError("DINO needs at least 2 global crops (its train_augmentation)")
        global_views, local_views = list(views[:2]), list(views[2:])
        with torch.no_grad():
            teacher = self.teacher_head(self.encode(torch.cat(global_views), self.teacher_backbone))
        teacher_out = [t.float() for t in teacher.chunk(len(global_views))]
        student_out = [s.float() for s in self._student(global_views, local_views)]
        temperature = self.teacher_temperature_at(self.current_epoch)
        monitor = self.monitor_due()
        if monitor:  # before the loss updates the centre, with the centre the loss uses
            probabilities = torch.softmax((torch.cat(teacher_out) - self.criterion.center[0]) / temperature, dim=1)
        loss = self.distillation_loss(teacher_out, student_out)
        self.log_training(loss, views[0].shape[0], student_out[0])
        self.log("train/teacher_temperature", temperature, on_step=True, on_epoch=False)
        if monitor:
            self.log_dict({"train/teacher_entropy": mean_entropy(probabilities),
                           "train/teacher_mean_entropy": mean_entropy(probabilities.mean(0, keepdim=True))},
                          on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        # The reference has no DINO validation; here validation feeds the label-free position probe only.
        self.probe_features(batch[K.VIEWS][0], batch)


def dino_views(output_size: int = 256, output_spacing: float = 1.25, local_views: int = 6,
               scale_convention: ScaleConvention = "monai", centring: Centring = "gt",
               centre_convention: CentreConvention = "reference") -> Augmenter:
    """DINO's 8 views (the reference's): global "blur", global "solarize", then ``local_views`` local crops.

    Global views are ``output_size`` px with σ in 0.524-1.4; local views are ``output_size // 2`` px with
    σ in 0.313-0.524 and translation ±160 px (at 128 px). Local views keep ``output_spacing``, so their
    field of view is σ · (S/2) · spacing: a quarter of the intended area, replicating the reference.
    """
    base = IntensityAugmentation.dino_base(scale_convention=scale_convention)
    glob = augmented_geometry(output_size, output_spacing, centring, centre_convention, (0.524, 1.4))
    local_shift = 160.0 * output_size / 256  # ±160 px of the 128 px local grid when output_size is 256
    local = augmented_geometry(output_size // 2, output_spacing, centring, centre_convention, (0.313, 0.524),
                               local_shift)
    return Augmenter([
        ViewSpec(glob, replace(base, smooth_prob=1.0, smooth_sigma=(0.1, 2.0))),
        ViewSpec(glob, replace(base, solarize_prob=0.2, solarize_threshold=0.0)),
        ViewSpec(local, base, count=local_views),
    ])
