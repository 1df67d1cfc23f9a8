"""The speed options every method shares (``CineModule``): ``channels_last`` gives the default's outputs, loss
and gradients on a tiny U-Net; ``compile`` routes the U-Net through ``torch.compile`` without changing the state
dict keys, the checkpoint manifest or the outputs; both reach the model through the real ``sspcmr fit``."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

import sspcmr.commands.training
from sspcmr.commands.main import main
from sspcmr.commands.training import lightning_cli
from sspcmr.data import keys as K
from sspcmr.data.datamodule import CineDataModule
from sspcmr.methods import DINO, MIM, PCL, Inpainting, Multitask, Orientation, Segmentation, SimCLR, SliceLocation
from sspcmr.methods.transfer import MANIFEST_KEY
from sspcmr.models import UNetDecoder, UNetEncoder

TINY = [8, 16, 32, 64]
GRID = {"output_size": 32, "output_spacing": 5.0}
CHANNELS_LAST = torch.channels_last
# Small enough for 32 px: every method's own options that depend on the grid or make big heads.
METHODS = {
    SimCLR: {}, PCL: {}, MIM: {"patch_size": 16}, Inpainting: {"patch_size": 8},
    DINO: {"hidden_dim": 16, "bottleneck_dim": 8, "output_dim": 16}, SliceLocation: {}, Orientation: {},
    Multitask: {}, Segmentation: {"log_images": False},
}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def native_batches(prepared_tiny) -> dict[str, dict]:
    """One native training batch of 4 slices per data-module mode (``segment`` has labels)."""
    root, split = prepared_tiny
    out = {}
    for mode in ("segment", "pretrain"):
        data = CineDataModule(str(root), str(split), mode=mode, batch_size=4, num_workers=0, **GRID)
        data.setup("fit")
        out[mode] = next(iter(data.train_dataloader()))
    return out


def build(method: type, **options) -> torch.nn.Module:
    """A tiny ``method`` with logging and the collapse monitors stubbed out, so a step runs without a Trainer."""
    model = method(channels=TINY, **GRID, **METHODS[method], **options)
    model.log = lambda *args, **kwargs: None
    model.log_dict = lambda *args, **kwargs: None
    model.monitor_due = lambda: False
    return model


def training_step(model: torch.nn.Module, native: dict,
                  dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict]:
    """The loss of one training step on ``native`` (augmented by the model's own fresh stream, its images then cast
    to ``dtype``), the gradients and the augmented batch."""
    model.to(dtype).train()
    model.zero_grad()
    batch = model.augment(dict(native), training=True)
    for key in (K.IMAGE, K.LABEL):
        if key in batch:
            batch[key] = batch[key].to(dtype)
    if K.VIEWS in batch:
        batch[K.VIEWS] = [view.to(dtype) for view in batch[K.VIEWS]]
    loss = model.training_step(batch, 0)
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads, batch


def twins(method: type, dtype: torch.dtype) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The default model and a ``channels_last`` one with the same weights, both in ``dtype``."""
    torch.manual_seed(0)
    default = build(method)
    fast = build(method, channels_last=True)
    fast.load_state_dict(default.state_dict())
    default.to(dtype)
    fast.to(dtype)
    fast.apply_speed_options()
    return default, fast


def relative_error(grads: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> float:
    """|g - reference| / |reference| over all parameters together (L2)."""
    assert grads.keys() == reference.keys() and len(reference) > 10
    difference = sum(float((grads[name] - g).double().square().sum()) for name, g in reference.items())
    return (difference / sum(float(g.double().square().sum()) for g in reference.values())) ** 0.5


@pytest.mark.parametrize("method", list(METHODS), ids=lambda m: m.__name__)
def test_channels_last_gives_the_default_loss_and_gradients(method, native_batches):
    native = native_batches["segment" if method is Segmentation else "pretrain"]
    default, fast = twins(method, torch.float32)
    convs = [m.weight for m in fast.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1]
    assert convs and all(w.is_contiguous(memory_format=CHANNELS_LAST) for w in convs)
    loss, grads, _ = training_step(default, native)
    fast_loss, fast_grads, inputs = training_step(fast, native)
    images = inputs[K.VIEWS] if K.VIEWS in inputs else [inputs[K.IMAGE]]
    with torch.no_grad():
        features = (fast.backbone if hasattr(fast, "backbone") else fast.net).encode(images[0])
    assert all(f.is_contiguous(memory_format=CHANNELS_LAST) for f in features)  # not plain NCHW: it took effect
    assert torch.isfinite(loss) and float(loss) > 0
    torch.testing.assert_close(fast_loss, loss, rtol=1e-5, atol=0)  # measured: <= 3e-6 relative
    # float32 kernels for the two layouts sum in different orders; measured 2e-6 to 3e-5, but 1.2e-3 for
    # Inpainting, whose tiny-batch float32 gradients are ill-conditioned (float64 below: equal to 1e-14).
    assert relative_error(fast_grads, grads) < 3e-3
    if method is DINO:
        return  # its step casts the head outputs to float32 (against a float64 centre): no float64 run
    default, fast = twins(method, torch.float64)
    _, grads, _ = training_step(default, native, torch.float64)
    _, fast_grads, _ = training_step(fast, native, torch.float64)
    assert relative_error(fast_grads, grads) < 1e-10


def test_channels_last_converts_the_network_inputs_and_nothing_else():
    # One-channel images are channels_last already (their strides are both), so three channels show the conversion.
    images = torch.randn(2, 3, 8, 8)
    batch = {K.IMAGE: images, K.VIEWS: [images, images[:, :, :4, :4]], K.LABEL: torch.randn(2, 4, 8, 8)}
    out = MIM(channels=TINY, channels_last=True).network_inputs(batch)
    assert all(x.is_contiguous(memory_format=CHANNELS_LAST) for x in [out[K.IMAGE], *out[K.VIEWS]])
    assert torch.equal(out[K.IMAGE], images) and torch.equal(out[K.VIEWS][1], images[:, :, :4, :4])
    assert out[K.LABEL] is batch[K.LABEL] and batch[K.IMAGE] is images  # targets and the given batch untouched
    assert MIM(channels=TINY).network_inputs(batch) is batch


def test_the_speed_options_are_checked_and_not_saved():
    model = MIM(channels=TINY, compile=True, channels_last=True)
    assert model.compile_network is True and model.channels_last is True
    for hparams in (model.hparams, Segmentation(channels=TINY, channels_last=True).hparams):
        assert "compile" not in hparams and "channels_last" not in hparams  # run-time options: each run sets them
    for name in ("compile", "channels_last"):
        with pytest.raises(ValueError, match=rf"^{name} must be true or false; got 'yes'$"):
            MIM(channels=TINY, **{name: "yes"})


def compiled_parts(model: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in model.modules() if isinstance(m, (UNetEncoder, UNetDecoder)) and m._compiled_call_impl]


def compiled_twins(method: type) -> tuple[torch.nn.Module, torch.nn.Module]:
    """A fresh tiny ``method`` and a ``compile=True`` one with its weights, speed options applied; dynamo reset."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    plain = build(method)
    compiled = build(method, compile=True)
    compiled.load_state_dict(plain.state_dict())
    compiled.apply_speed_options()
    return plain, compiled


def count_compilations(monkeypatch: pytest.MonkeyPatch):
    """Route every ``nn.Module.compile`` to a counting eager backend (inductor would take minutes); returns it."""
    from torch._dynamo.testing import CompileCounter

    counter = CompileCounter()
    original = torch.nn.Module.compile
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *args, **kwargs: original(self, backend=counter))
    return counter


@pytest.mark.parametrize("method", [MIM, Segmentation, DINO], ids=lambda m: m.__name__)
def test_compile_keeps_the_checkpoint_keys_and_manifest(method):
    plain, compiled = compiled_twins(method)
    compiled.apply_speed_options()  # idempotent: the parts are compiled once
    # The encoder and decoder of every U-Net (DINO: the student's and the teacher's encoders).
    assert len(compiled_parts(compiled)) == {MIM: 2, Segmentation: 2, DINO: 2}[method]
    saved, reference = {"state_dict": compiled.state_dict()}, {"state_dict": plain.state_dict()}
    compiled.on_save_checkpoint(saved)
    plain.on_save_checkpoint(reference)
    assert list(saved["state_dict"]) == list(reference["state_dict"])
    assert not any("_orig_mod" in key for key in saved["state_dict"])
    assert saved[MANIFEST_KEY] == reference[MANIFEST_KEY]
    loaded = build(method)
    loaded.load_state_dict(saved["state_dict"], strict=True)  # a checkpoint saved with compile loads without it


def test_compile_runs_the_unet_through_torch_compile(monkeypatch: pytest.MonkeyPatch):
    """Fast: the graphs go to a counting eager backend instead of inductor, so this checks the routing (encoder
    and decoder compiled in place, the same outputs) in a few seconds; the slow test below runs inductor."""
    counter = count_compilations(monkeypatch)
    plain, compiled = (model.eval() for model in compiled_twins(MIM))
    images = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        expected, output = plain(images), compiled(images)
    assert counter.frame_count >= 2  # the encoder's and the decoder's forward were captured
    torch.testing.assert_close(output, expected, rtol=0, atol=0)
    torch._dynamo.reset()


@pytest.mark.slow
def test_compiled_forward_equals_eager_with_inductor():
    # Slow: inductor's C++ code generation took 44-61 s on the 2-core test machine for this 4-stage U-Net.
    plain, compiled = (model.eval() for model in compiled_twins(Segmentation))
    images = torch.randn(2, 1, 32, 32)
    start = time.perf_counter()
    with torch.no_grad():
        outputs = compiled(images)
        expected = plain(images)
    print(f"first compiled forward: {time.perf_counter() - start:.1f} s")
    for output, reference in zip(outputs, expected, strict=True):
        torch.testing.assert_close(output, reference, rtol=1e-4, atol=1e-5)
    torch._dynamo.reset()


def fit_demo_mim(prepared_tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *options: str):
    """One ``fast_dev_run`` step of configs/demo/mim.yaml through ``sspcmr fit`` on tiny data: its LightningCLI."""
    prepared, split = prepared_tiny
    built = []

    def keep(*args, **kwargs):
        built.append(lightning_cli(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(sspcmr.commands.training, "lightning_cli", keep)
    args = ["fit", "--config", str(ROOT / "configs/demo/mim.yaml"), *options,
            "--trainer.fast_dev_run", "1", "--trainer.enable_progress_bar", "false",
            "--trainer.default_root_dir", str(tmp_path), "--trainer.logger.init_args.save_dir", str(tmp_path),
            "--data.data_dir", str(prepared), "--data.split", str(split), "--data.output_size", "32",
            "--data.output_spacing", "5.0", "--data.batch_size", "2", "--data.val_batch_size", "2"]
    assert main(args) == 0
    cli = built[0]
    assert cli.trainer.state.finished and cli.trainer.global_step == 1
    assert all(torch.isfinite(p).all() for p in cli.model.parameters())
    assert torch.isfinite(cli.trainer.callback_metrics["train/loss_step"])
    return cli


def test_channels_last_through_the_command_line(prepared_tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    model = fit_demo_mim(prepared_tiny, tmp_path, monkeypatch, "--model.init_args.channels_last", "true").model
    assert model.channels_last is True and model.compile_network is False
    weight = model.backbone.encoder.enc_blocks[1].conv1.weight
    assert weight.is_contiguous(memory_format=CHANNELS_LAST)  # configure_model ran under the Trainer


def test_compile_through_the_command_line(prepared_tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    counter = count_compilations(monkeypatch)
    torch._dynamo.reset()
    cli = fit_demo_mim(prepared_tiny, tmp_path, monkeypatch, "--model.init_args.compile", "true")
    assert cli.model.compile_network is True
    assert counter.frame_count >= 2 and len(compiled_parts(cli.model)) == 2  # the step ran through the compiled parts
    cli.trainer.save_checkpoint(tmp_path / "compiled.ckpt")
    state = torch.load(tmp_path / "compiled.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    plain = MIM(channels=TINY, patch_size=16)
    assert list(state) == list(plain.state_dict())  # no _orig_mod. prefixes
    plain.load_state_dict(state, strict=True)
    torch._dynamo.reset()
