"""Segmenters, the fifth plugin kind (issue #31): the built-ins pass the segmenter contract kit,
deliberately broken segmenters fail it with one line, registration goes through the entry points
like every other kind, and pretrained weights come only from local files."""

from __future__ import annotations

from importlib import metadata

import pytest
import torch

from cxrbench import registry
from cxrbench.cli import main
from cxrbench.contracts import BuiltSegmenter, Segmenter
from cxrbench.errors import ConfigError, PluginError
from cxrbench.registry import PluginSource, load_plugins
from cxrbench.testing import ContractViolation, SegmenterContractTests, plugin_module, plugins_with
from cxrbench.testing import segmenter_contract as kit
from cxrbench.testing.segmenter_contract import SegmenterSetup

BUILTIN = {"tiny-unet", "unet-resnet18", "unet-resnet34"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------- the kit on the built-ins


class TestTinyUnet(SegmenterContractTests):
    segmenter_name = "tiny-unet"
    bad_options = [({"width": 0}, 32), ({}, 0)]


class TestUnetResNet18(SegmenterContractTests):
    segmenter_name = "unet-resnet18"
    bad_options = [({}, 0)]
    train_steps = 50  # it passes at the first evaluation (step 25)


@pytest.mark.slow
class TestUnetResNet34(SegmenterContractTests):
    segmenter_name = "unet-resnet34"
    sizes = (32, 48)
    bad_options = [({}, 0)]
    train_steps = 50


# --------------------------------------------------------------------------- broken segmenters


class HalfSize(Segmenter):
    """Logits at half the input size: breaks the size contract."""

    name = "half-size"

    def build(self, num_classes, size, pretrained=False):
        return BuiltSegmenter(torch.nn.Conv2d(1, int(num_classes), 3, stride=2, padding=1), "scratch")


class _BiasOnly(torch.nn.Module):
    def __init__(self, num_classes, size):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(1, num_classes, size, size))

    def forward(self, x):
        return self.bias.expand(x.shape[0], -1, x.shape[-2], x.shape[-1])


class IgnoresInput(Segmenter):
    """One learned logit per pixel whatever the image: right shape, gradients, no segmentation."""

    name = "ignores-input"

    def build(self, num_classes, size, pretrained=False):
        return BuiltSegmenter(_BiasOnly(int(num_classes), int(size)), "scratch")


def test_wrong_output_size_fails_with_the_actual_shape():
    with pytest.raises(ContractViolation) as err:
        kit.check_output_shape(SegmenterSetup(HalfSize), None)
    msg = str(err.value)
    assert "\n" not in msg
    assert "forward at 32 px with 1 class(es) returned tensor torch.float32 (2, 1, 16, 16); expected float logits of " \
           "shape (2, 1, 32, 32)" in msg


def test_a_segmenter_that_ignores_its_input_fails_the_kit():
    setup = SegmenterSetup(IgnoresInput, sizes=(32,))
    kit.check_output_shape(setup, None)  # the shape is right ...
    kit.check_gradients_reach_parameters(setup, None)  # ... and it trains ...
    with pytest.raises(ContractViolation, match="gave the same logits for two different images"):
        kit.check_output_depends_on_input(setup, None)
    with pytest.raises(ContractViolation) as err:  # ... but it learns no mask
        kit.check_learns_toy_masks(setup, None)
    msg = str(err.value)
    assert "\n" not in msg and "held-out Dice is 0.0" in msg and "expected > 0.8" in msg, msg


@pytest.fixture
def broken_segmenters(monkeypatch):
    plugins = plugins_with(("segmenter", "half-size", HalfSize), ("segmenter", "ignores-input", IgnoresInput))
    monkeypatch.setattr(registry, "_CACHED", plugins)
    return plugins


def test_cxrbench_check_fails_broken_segmenters(broken_segmenters, capsys):
    assert main(["check", "ignores-input", "--size", "16"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("segmenter 'ignores-input' (test-dist 0)")
    assert any(line.startswith("FAIL  output_depends_on_input") for line in out)
    assert any(line.startswith("FAIL  learns_toy_masks") and "held-out Dice" in line for line in out)
    assert any(line.startswith("PASS  output_shape") for line in out)
    assert main(["check", "half-size", "--kind", "segmenter", "--size", "16"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  output_shape" in out and "(2, 1, 8, 8); expected float logits of shape (2, 1, 16, 16)" in out


def test_cxrbench_check_tiny_unet_passes(capsys):
    assert main(["check", "tiny-unet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("segmenter 'tiny-unet' (cxrbench ")
    for name in ("build", "output_shape", "output_depends_on_input", "gradients_reach_parameters",
                 "same_seed_same_result", "learns_toy_masks", "pretrained_offline"):
        assert f"PASS  {name}" in out, out
    assert "FAIL" not in out


# --------------------------------------------------------------------------- registration


def test_builtins_register_through_the_entry_point():
    eps = {ep.name: ep.value for ep in metadata.entry_points(group="cxrbench")}
    assert eps.get("builtin-segmenters") == "cxrbench.plugins.segmenters"
    plugins = load_plugins()
    assert BUILTIN <= set(plugins.segmenters.names())
    assert plugins.registry("segmenter") is plugins.segmenters
    entry = plugins.segmenters.get("tiny-unet")
    assert entry.kind == "segmenter"
    assert entry.source.distribution == "cxrbench" and entry.source.entry_point == "builtin-segmenters"
    assert isinstance(entry.target, str)  # lazy: listing imports nothing
    assert issubclass(plugins.load("segmenter", "unet-resnet18"), Segmenter)
    assert "segmenter" in registry.KINDS and {e.name for e in plugins.all_entries() if e.kind == "segmenter"} >= BUILTIN


def test_third_party_segmenter_registers_and_duplicates_name_both_plugins():
    plugins = plugins_with(("segmenter", "my-unet", "cxrbench.plugins.segmenters.unet:TinyUnet"))
    assert "my-unet" in plugins.segmenters and plugins.segmenters.get("my-unet").source.distribution == "test-dist"
    extra = [(plugin_module("segmenter", "tiny-unet", IgnoresInput), PluginSource("other-segs", "other-dist", "1.2"))]
    with pytest.raises(PluginError) as err:
        load_plugins(extra=extra)
    msg = str(err.value)
    assert "duplicate segmenter name 'tiny-unet'" in msg and "builtin-segmenters" in msg and "other-dist" in msg
    with pytest.raises(PluginError, match=r"unknown segmenter 'tiny-unte'; did you mean 'tiny-unet'"):
        load_plugins().load("segmenter", "tiny-unte")


def test_cxrbench_plugins_lists_the_segmenters(capsys):
    assert main(["plugins"]) == 0
    rows = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()[2:] if line.split()}
    assert {name: rows.get(name) for name in BUILTIN} == {name: "segmenter" for name in BUILTIN}
    assert main(["plugins", "--kind", "segmenter"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()[2:] if line.strip()]
    assert sorted(names) == sorted(BUILTIN)
    assert main(["plugins", "tiny-unet"]) == 0
    out = capsys.readouterr().out
    assert "tiny-unet (segmenter)" in out
    assert "channels of the first level" in next(l for l in out.splitlines() if l.strip().startswith("width "))


# --------------------------------------------------------------------------- the built-ins


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_output_has_the_input_size_at_any_size(name):
    """smp needs multiples of 32 and tiny-unet of 4: other sizes are padded and cropped back."""
    cls = load_plugins().load("segmenter", name)
    for size, classes in ((1, 1), (7, 2), (31, 3), (33, 1), (50, 2)):
        torch.manual_seed(0)
        module = cls().build(classes, size).module.eval()
        with torch.no_grad():
            out = module(torch.rand(2, 1, size, size) * 2 - 1)
        assert out.shape == (2, classes, size, size) and out.dtype == torch.float32


def test_padding_is_undone_exactly():
    from cxrbench.plugins.segmenters._nets import crop_back, pad_to_multiple

    x = torch.randn(2, 3, 33, 50)
    padded, where = pad_to_multiple(x, 32)
    assert padded.shape == (2, 3, 64, 64) and where == (15, 7, 33, 50)
    assert torch.equal(crop_back(padded, where), x)
    same, where = pad_to_multiple(x[..., :32, :32], 32)
    assert same.shape == (2, 3, 32, 32) and torch.equal(crop_back(same, where), x[..., :32, :32])


def test_the_smp_unet_is_smps_with_one_input_channel():
    import segmentation_models_pytorch as smp

    from cxrbench.plugins.segmenters.unet import UnetResNet18, UnetResNet34

    for cls, encoder in ((UnetResNet18, "resnet18"), (UnetResNet34, "resnet34")):
        module = cls().build(2, 64).module
        assert isinstance(module, smp.Unet) and module.encoder.conv1.in_channels == 1
        plain = smp.Unet(encoder_name=encoder, encoder_weights=None, in_channels=1, classes=2)
        assert module.state_dict().keys() == plain.state_dict().keys()  # smp checkpoints load as they are


def test_options_and_sizes_are_checked():
    from cxrbench.plugins.segmenters.unet import TinyUnet, TinyUnetOptions, UnetResNet18

    with pytest.raises(ConfigError, match="width"):
        TinyUnetOptions(width=0)
    with pytest.raises(ConfigError, match="size must be >= 1"):
        UnetResNet18.check_options(UnetResNet18.Options(), 0)
    with pytest.raises(ConfigError, match="num_classes must be >= 1"):
        TinyUnet().build(0, 32)


# --------------------------------------------------------------------------- pretrained: local only


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """Point the Hugging Face and torch hub caches at empty folders."""
    import huggingface_hub.constants

    hf, th = tmp_path / "hf", tmp_path / "torchhub"
    hf.mkdir()
    th.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hf))
    monkeypatch.setattr(torch.hub, "_hub_dir", str(th))
    return hf, th


def test_pretrained_without_local_weights_is_a_one_line_error(empty_caches):
    from cxrbench.plugins.segmenters.unet import TinyUnet, UnetResNet18

    hf, _ = empty_caches
    with pytest.raises(ConfigError) as err:
        UnetResNet18().build(1, 32, pretrained=True)
    msg = str(err.value)
    assert "\n" not in msg
    assert "'unet-resnet18': pretrained weights requested but none found locally" in msg
    assert "options.weights_path unset" in msg and "smp-hub/resnet18.imagenet model.safetensors" in msg
    assert str(hf) in msg
    with pytest.raises(ConfigError, match="tiny-unet has no published weights and options.weights_path is unset"):
        TinyUnet().build(1, 32, pretrained=True)
    with pytest.raises(ConfigError, match="nope.pth"):
        UnetResNet18(UnetResNet18.Options(weights_path=str(hf / "nope.pth"))).build(1, 32, pretrained=True)


def _save(state: dict, path) -> None:
    if str(path).endswith(".safetensors"):
        import safetensors.torch

        safetensors.torch.save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save({"state_dict": state}, str(path))


def test_pretrained_imagenet_encoder_from_a_local_file(tmp_path):
    """A torchvision resnet18 checkpoint (3 channels, fc head): the encoder loads, RGB summed."""
    import torchvision

    from cxrbench.plugins.segmenters.unet import UnetResNet18

    torch.manual_seed(3)
    state = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path / "resnet18.pth"
    _save(state, path)
    built = UnetResNet18(UnetResNet18.Options(weights_path=str(path))).build(2, 48, pretrained=True)
    assert built.weights == f"encoder:file:{path}"
    enc = built.module.encoder
    torch.testing.assert_close(enc.conv1.weight, state["conv1.weight"].sum(dim=1, keepdim=True))
    torch.testing.assert_close(enc.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
    with torch.no_grad():
        assert built.module.eval()(torch.zeros(1, 1, 48, 48)).shape == (1, 2, 48, 48)


def test_pretrained_whole_model_and_wrong_architecture(tmp_path):
    from cxrbench.plugins.segmenters.unet import TinyUnet, UnetResNet18, UnetResNet34

    torch.manual_seed(4)
    trained = UnetResNet18().build(2, 32).module.state_dict()
    path = tmp_path / "unet.safetensors"
    _save(trained, path)
    same = UnetResNet18(UnetResNet18.Options(weights_path=str(path))).build(2, 32, pretrained=True)
    assert same.weights == f"model:file:{path}"
    assert all(torch.equal(v, trained[k]) for k, v in same.module.state_dict().items())
    other = UnetResNet18(UnetResNet18.Options(weights_path=str(path))).build(1, 32, pretrained=True)
    assert other.weights == f"model:file:{path} (segmentation head re-initialised)"
    assert torch.equal(other.module.encoder.conv1.weight, trained["encoder.conv1.weight"])
    with pytest.raises(PluginError, match="do not fit an smp Unet"):
        UnetResNet34(UnetResNet34.Options(weights_path=str(path))).build(2, 32, pretrained=True)

    tiny = TinyUnet().build(1, 32).module.state_dict()
    tiny_path = tmp_path / "tiny.safetensors"
    _save(tiny, tiny_path)
    loaded = TinyUnet(TinyUnet.Options(weights_path=str(tiny_path))).build(1, 32, pretrained=True)
    assert loaded.weights == f"model:file:{tiny_path}"
    assert all(torch.equal(v, tiny[k]) for k, v in loaded.module.state_dict().items())
    with pytest.raises(PluginError, match="do not fit tiny-unet width 8"):
        TinyUnet(TinyUnet.Options(width=8, weights_path=str(tiny_path))).build(1, 32, pretrained=True)


def test_pretrained_found_in_the_hugging_face_cache(empty_caches):
    """smp's own ImageNet encoder weights, already in the hub cache at the revision smp pins,
    are used offline."""
    from segmentation_models_pytorch.encoders import encoders

    from cxrbench.plugins.segmenters.unet import UnetResNet18

    hf, _ = empty_caches
    settings = encoders["resnet18"]["pretrained_settings"]["imagenet"]
    torch.manual_seed(5)
    rgb = encoders["resnet18"]["encoder"](**encoders["resnet18"]["params"])  # smp's encoder: 3 channels
    state = rgb.state_dict()
    folder = hf / ("models--" + settings["repo_id"].replace("/", "--"))
    snap = folder / "snapshots" / settings["revision"]
    snap.mkdir(parents=True)
    _save(state, snap / "model.safetensors")
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(settings["revision"])
    built = UnetResNet18().build(1, 32, pretrained=True)
    assert built.weights == f"encoder:hf-cache:{settings['repo_id']}:{snap / 'model.safetensors'}"
    torch.testing.assert_close(built.module.encoder.conv1.weight, state["conv1.weight"].sum(dim=1, keepdim=True))


def test_segmenter_contract_is_abstract():
    with pytest.raises(TypeError):
        Segmenter()  # build is required
    built = BuiltSegmenter(module=torch.nn.Identity(), weights="scratch")
    assert built.weights == "scratch"


# --------------------------------------------------------------------------- the guide


def test_the_guides_segmenter_passes_the_kit():
    """The "Writing a segmenter" code of CONTRIBUTING.md works: every kit check passes (or, for
    bad_options, is skipped), and its test class's bad_options are refused."""
    import re
    from pathlib import Path

    from cxrbench.checking import run_checks

    text = (Path(__file__).resolve().parents[2] / "CONTRIBUTING.md").read_text(encoding="utf-8")
    section = text.split("## Writing a segmenter", 1)[1].split("\n## ", 1)[0]
    plugin_code, test_code = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    namespace: dict = {}
    exec(compile(plugin_code, "CONTRIBUTING.md", "exec"), namespace)  # noqa: S102 - our own guide
    exec(compile(test_code, "CONTRIBUTING.md", "exec"), {**namespace, "SegmenterContractTests": SegmenterContractTests})
    fcn = namespace["SmallFCN"]
    results = {r.name: r for r in run_checks(kit.CHECKS, SegmenterSetup(fcn, bad_options=(({"width": 0}, 32),)))}
    assert {n: r.status for n, r in results.items() if r.status != "PASS"} == {}, \
        {n: r.message for n, r in results.items() if r.status != "PASS"}
    registered = plugins_with(("segmenter", "small-fcn", fcn)).segmenters
    assert "small-fcn" in registered


# --------------------------------------------------------------------------- pre-flight


def _runner(name: str, plugins, size: int = 16):
    from types import SimpleNamespace

    spec = SimpleNamespace(segmenter=SimpleNamespace(name=name, options={}), size=size, task="segmentation")
    return SimpleNamespace(spec=spec, plugins=plugins, spec_source="spec.yaml")


def test_preflight_checks_the_segmenter_in_one_line(broken_segmenters):
    from cxrbench.checking import PreflightError, _preflight_segmenter

    _preflight_segmenter(_runner("tiny-unet", broken_segmenters, size=20))
    with pytest.raises(PreflightError) as err:
        _preflight_segmenter(_runner("half-size", broken_segmenters))
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("pre-flight: segmenter 'half-size': forward of 2 images at 16 px built "
                                              "for num_classes=1 returned tensor torch.float32 (2, 1, 8, 8)"), msg
