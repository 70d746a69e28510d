"""Device and precision are decided in one place and recorded; the GPU-only code paths (pinned
staging buffers, no per-step sync, bf16 autocast, channels_last, torch.compile) are exercised
on CPU where they can be, and on CUDA by the `gpu`-marked tests."""

import platform
from pathlib import Path

import pytest
import torch

from cxrbench import device as dev
from cxrbench.training import TrainRecipe, _Gather, train_classifier


def test_precision_follows_the_device():
    assert dev.precision("cpu") == "float32"
    assert dev.precision("cuda:0") == "bf16-autocast"
    with dev.autocast("cpu"):
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.float32


def test_hardware_block_records_precision_threads_and_compile(monkeypatch):
    monkeypatch.delenv(dev.COMPILE_ENV, raising=False)
    info = dev.hardware_summary("cpu")
    assert info["precision"] == "float32" and info["torch_compile"] is False and info["torch_threads"] >= 1
    monkeypatch.setenv(dev.COMPILE_ENV, "1")
    assert dev.hardware_summary("cpu")["torch_compile"] is True


def test_hardware_block_names_the_cpu_and_the_instruction_set_torch_uses(monkeypatch, tmp_path):
    """Two CPUs can train the same cell to different last digits: the record says which ran it."""
    info = dev.hardware_summary("cpu")
    assert info["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines() if ln.startswith("model name")]
        assert info["cpu"] == (names[0] if names else platform.processor() or None)
    # without /proc/cpuinfo (macOS, Windows): platform's answer
    real = Path.read_text
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: (_ for _ in ()).throw(OSError("no such file"))
                        if str(self) == "/proc/cpuinfo" else real(self, *a, **k))
    monkeypatch.setattr(platform, "processor", lambda: "arm")
    assert dev.cpu_model() == "arm"


def test_compile_is_opt_in(monkeypatch):
    net = torch.nn.Linear(2, 2)
    monkeypatch.delenv(dev.COMPILE_ENV, raising=False)
    assert dev.maybe_compile(net) is net
    monkeypatch.setenv(dev.COMPILE_ENV, "1")
    compiled = dev.maybe_compile(net)  # wrapping is lazy: nothing compiles until a call
    assert compiled is not net and compiled._orig_mod is net


def test_auto_device_is_cpu_without_cuda_and_an_unavailable_gpu_is_one_line():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert dev.resolve_device("auto") == "cpu"
    with pytest.raises(Exception, match="CUDA is not available; use --device cpu"):
        dev.resolve_device("cuda")


def test_cpu_gather_is_plain_indexing():
    images = torch.randint(0, 256, (10, 1, 4, 4), dtype=torch.uint8)
    idx = torch.tensor([3, 1, 7])
    assert torch.equal(_Gather(images, "cpu")(idx), images[idx])


@pytest.mark.gpu
def test_pinned_gather_gives_the_same_batches_on_cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    images = torch.randint(0, 256, (64, 1, 8, 8), dtype=torch.uint8)
    gather = _Gather(images, "cuda")
    for _ in range(5):  # more rounds than buffers: reuse waits for the earlier copy
        idx = torch.randperm(64)[:16]
        got = gather(idx).to("cuda", non_blocking=True)
        assert torch.equal(got.cpu(), images[idx])


@pytest.mark.gpu
def test_classifier_trains_on_cuda_with_bf16_and_channels_last():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    import timm

    from cxrbench.contracts import BuiltClassifier

    torch.manual_seed(0)
    module = timm.create_model("resnet18", num_classes=1, in_chans=1)
    built = BuiltClassifier(module=module, weights="scratch")
    x = torch.randint(0, 256, (128, 1, 32, 32), dtype=torch.uint8)
    y = (x.float().mean(dim=(1, 2, 3)) > 127).float().unsqueeze(1)
    recipe = TrainRecipe(epochs=2, batch_size=32, selection="last")
    result = train_classifier(built, x, y, None, None, recipe=recipe, device="cuda", seed=0, progress=False)
    assert all(torch.isfinite(torch.tensor(h["train_loss"])) for h in result.history)
    assert next(result.model.parameters()).is_cuda
