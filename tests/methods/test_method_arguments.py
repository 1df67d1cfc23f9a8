"""The methods' constructor chains: the arguments every method shares are declared once (``Pretraining``, the
family bases) and reached through ``**kwargs``; the command line still lists each one with its default and
doc, and each method saves every argument of its chain once, as before the families existed."""

from __future__ import annotations

import pytest
from jsonargparse import ArgumentParser

from sspcmr.methods import DINO, MIM, PCL, Inpainting, Multitask, Orientation, SimCLR, SliceLocation
from sspcmr.methods.optimisation import AdamStep, SGDCosine, SGDWarmupCosine

TINY = [8, 16, 32, 64]
SHARED = {"channels": None, "norm": "batch", "probe": True, "probe_max_samples": 4096, "monitor_every_n_steps": 0}
SGD_MIM = {"lr": 0.01, "momentum": 0.99, "nesterov": True, "weight_decay": 3e-5}
GEOMETRIC = {"optimizer": "sgd", **SGD_MIM, "step_size": 100, "gamma": 0.5}
# Every method's saved hyperparameters with the defaults (log_images is a run-time option, saved by SliceLocation
# alone; DINO has no nesterov).
SAVED = {
    SimCLR: {"hidden_dim": 512, "projection_dim": 512, "temperature": 0.1, "gather_distributed": True,
             "num_views": 2, "lr": 0.1, "momentum": 0.9, "nesterov": False, "weight_decay": 1e-4},
    PCL: {"hidden_dim": 512, "projection_dim": 512, "temperature": 0.1, "gather_distributed": True,
          "num_views": 2, "lr": 0.1, "momentum": 0.9, "nesterov": False, "weight_decay": 1e-5, "threshold": 0.1,
          "cyclic": False, "boundary": "reference"},
    DINO: {"hidden_dim": 2048, "bottleneck_dim": 256, "output_dim": 8192, "student_temperature": 0.1,
           "teacher_temperature": 0.04, "warmup_teacher_temperature": 0.02, "warmup_teacher_temperature_epochs": 30,
           "center_momentum": 0.9, "teacher_momentum": 0.996, "teacher_momentum_end": 1.0, "teacher_init": "student",
           "freeze_last_layer_epochs": 1, "lr": 0.0075, "min_lr": 1e-6, "warmup_epochs": 10, "momentum": 0.9,
           "weight_decay": 1e-4, "weight_decay_end": 1e-4},
    MIM: {"patch_size": 32, "mask_ratio": 0.75, "mask_value": 0.0, "mask_seed": 0, **SGD_MIM},
    Inpainting: {"task": "restoration", "patch_size": 32, "placement": "poisson", "coverage": 0.25,
                 "bank_size": 100, "fill_value": 0.0, "mask_seed": 0, "loss_reduction": "mean", **SGD_MIM},
    SliceLocation: {"centrosymmetric": False, **GEOMETRIC, "log_images": True},
    Orientation: {"sigma": 6.0, "views_used": None, **GEOMETRIC},
    Multitask: {"sigma": 6.0, "views_used": None, **GEOMETRIC, "centrosymmetric": False, "orientation_weight": 1.0,
                "location_weight": 1.0},
}
SMALL = {DINO: {"hidden_dim": 8, "bottleneck_dim": 8, "output_dim": 8}}


@pytest.mark.parametrize("method", list(SAVED), ids=lambda m: m.__name__)
def test_each_method_saves_every_argument_of_its_chain_once(method):
    model = method(channels=TINY, output_size=64, **SMALL.get(method, {}))
    expected = {**SHARED, **SAVED[method], **SMALL.get(method, {}), "channels": TINY, "output_size": 64}
    assert dict(model.hparams) == expected


@pytest.mark.parametrize("method", list(SAVED), ids=lambda m: m.__name__)
def test_the_command_line_lists_every_argument_with_its_default(method):
    parser = ArgumentParser()
    parser.add_class_arguments(method, "model")
    defaults = parser.get_defaults().model
    expected = {**SHARED, **SAVED[method], "log_images": True} if method not in (SimCLR, PCL, DINO) else \
        {**SHARED, **SAVED[method]}
    expected.update(output_size=256, output_spacing=1.25, scale_convention="monai", centring="gt",
                    augmentation_seed=0, compile=False, channels_last=False)
    assert {k: v for k, v in vars(defaults).items()} == expected
    for action in parser._actions:  # noqa: SLF001 - every argument keeps its doc
        if action.dest.startswith("model.") and action.dest != "model.help":
            assert action.help and not action.help.startswith("(type:"), action.dest


def test_each_family_builds_its_optimisation_recipe():
    assert SimCLR(channels=TINY).optimisation == SGDCosine(0.1, 0.9, False, 1e-4)
    assert PCL(channels=TINY).optimisation == SGDCosine(0.1, 0.9, False, 1e-5)
    assert MIM(channels=TINY).optimisation == SGDCosine(0.01, 0.99, True, 3e-5)
    assert Inpainting(channels=TINY, lr=0.02).optimisation == SGDCosine(0.02, 0.99, True, 3e-5)
    assert SliceLocation(channels=TINY).optimisation == SGDCosine(0.01, 0.99, True, 3e-5)
    assert Multitask(channels=TINY, optimizer="adam", lr=1e-3).optimisation == AdamStep(1e-3, 3e-5, 100, 0.5)
    dino = DINO(channels=TINY, **SMALL[DINO]).optimisation
    assert dino == SGDWarmupCosine(0.0075, 1e-6, 10, 0.9, 1e-4, 1e-4)


def test_the_optimizer_choice_checks_the_arguments_it_does_not_use():
    with pytest.raises(ValueError, match="momentum"):  # unused by Adam, refused all the same
        Orientation(channels=TINY, optimizer="adam", momentum=1.5)
    with pytest.raises(ValueError, match="gamma"):  # unused by SGD, refused all the same
        SliceLocation(channels=TINY, gamma=0)
