"""The built-in timm classifiers: one input channel, the right logits, local-only ImageNet weights."""

from __future__ import annotations

import pytest
import torch

from cxrbench.contracts import BuiltClassifier, Classifier
from cxrbench.errors import ConfigError, PluginError
from cxrbench.plugins.classifiers import timm_models as tm


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: on a shared 2-core machine, 2 OpenMP threads competing with other
    processes make these small models 5-30x slower (measured); one thread is never much slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

ALL = [tm.ResNet50, tm.ConvNeXtBase, tm.DenseNet121, tm.ResNet18, tm.TinyCNN]
LIGHT = {tm.ResNet18, tm.TinyCNN}


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """Point the Hugging Face and torch hub caches at empty folders."""
    import huggingface_hub.constants

    hf = tmp_path / "hf"
    th = tmp_path / "torchhub"
    hf.mkdir()
    th.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hf))
    monkeypatch.setattr(torch.hub, "_hub_dir", str(th))
    return hf, th


def _first_conv(module) -> torch.nn.Conv2d:
    return next(m for m in module.modules() if isinstance(m, torch.nn.Conv2d))


def test_registered_names_match_classes():
    names = {cls.name for cls in ALL}
    assert names == {"resnet50", "convnext_base", "densenet121", "resnet18", "tiny-cnn"}
    for cls in ALL:
        assert issubclass(cls, Classifier)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.name)
def test_builds_one_channel_with_right_logits(cls):
    clf = cls()
    # the heavy ones are built once (building convnext_base takes seconds) and run at 32 px only
    cases = ((32, 1), (64, 3)) if cls in LIGHT else ((64, 3),)
    for size, labels in cases:
        torch.manual_seed(0)
        built = clf.build(labels, size, pretrained=False)
        assert isinstance(built, BuiltClassifier)
        assert built.weights == "scratch"
        assert _first_conv(built.module).in_channels == 1
        built.module.eval()
        for px in (size,) if cls in LIGHT else (32,):
            with torch.no_grad():
                out = built.module(torch.zeros(2, 1, px, px).uniform_(-1, 1))
            assert out.shape == (2, labels)
            assert torch.isfinite(out).all()


def test_options_are_validated_and_passed():
    with pytest.raises(ConfigError, match="drop_rate"):
        tm.TimmOptions(drop_rate=1.5)
    built = tm.ResNet18(tm.TimmOptions(drop_rate=0.3)).build(2, 32, False)
    assert built.module.drop_rate == pytest.approx(0.3)
    with pytest.raises(ConfigError, match="num_labels"):
        tm.TinyCNN().build(0, 32, False)


def test_pretrained_without_local_weights_falls_back_to_scratch(empty_caches):
    hf, th = empty_caches
    built = tm.ResNet18().build(2, 32, pretrained=True)
    assert built.weights.startswith("scratch (pretrained requested but no local ImageNet weights found:")
    assert "timm/resnet18" in built.weights and str(hf) in built.weights
    assert str(th) in built.weights
    assert _first_conv(built.module).in_channels == 1


def test_missing_weights_path_is_a_config_error(tmp_path):
    opts = tm.TimmOptions(weights_path=str(tmp_path / "nope.safetensors"))
    with pytest.raises(ConfigError, match="nope.safetensors"):
        tm.ResNet18(opts).build(2, 32, pretrained=True)


@pytest.mark.parametrize("fmt", ["safetensors", "pth"])
def test_pretrained_from_local_file_adapts_first_conv(tmp_path, fmt):
    import safetensors.torch
    import timm

    torch.manual_seed(1)
    rgb = timm.create_model("resnet18", pretrained=False)  # 3 channels, 1000 classes
    state = {k: v.clone().contiguous() for k, v in rgb.state_dict().items()}
    path = tmp_path / f"resnet18.{fmt}"
    if fmt == "safetensors":
        safetensors.torch.save_file(state, str(path))
    else:
        torch.save({"state_dict": state}, str(path))  # a training checkpoint wrapper

    built = tm.ResNet18(tm.TimmOptions(weights_path=str(path))).build(3, 64, pretrained=True)
    assert built.weights == f"imagenet:file:{path}"
    m = built.module
    assert m.conv1.weight.shape == (64, 1, 7, 7)
    torch.testing.assert_close(m.conv1.weight, state["conv1.weight"].sum(dim=1, keepdim=True))
    torch.testing.assert_close(m.layer3[1].conv2.weight, state["layer3.1.conv2.weight"])
    torch.testing.assert_close(m.bn1.running_var, state["bn1.running_var"])
    assert m.fc.weight.shape == (3, 512)  # the 1000-class head is dropped


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    import safetensors.torch
    import timm

    state = timm.create_model("resnet18", pretrained=False).state_dict()
    path = tmp_path / "resnet18.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    with pytest.raises(PluginError, match="do not fit"):
        tm.TinyCNN(tm.TimmOptions(weights_path=str(path))).build(1, 32, pretrained=True)


def test_pretrained_found_in_hugging_face_cache(empty_caches):
    """A timm checkpoint already in the hub cache is used, offline, and adapted to 1 channel."""
    import safetensors.torch
    import timm

    hf, _ = empty_caches
    cfg = timm.models.get_pretrained_cfg("test_resnet")
    repo = cfg.hf_hub_id
    torch.manual_seed(2)
    state = {k: v.contiguous() for k, v in timm.create_model("test_resnet").state_dict().items()}
    folder = hf / ("models--" + repo.replace("/", "--"))
    snap = folder / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("0" * 40)
    safetensors.torch.save_file(state, str(snap / "model.safetensors"))

    built = tm.TinyCNN().build(2, 32, pretrained=True)
    assert built.weights.startswith(f"imagenet:hf-cache:{repo}:")
    torch.testing.assert_close(
        built.module.conv1[0].weight, state["conv1.0.weight"].sum(dim=1, keepdim=True)
    )
