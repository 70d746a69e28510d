import types

import pytest

from cxrbench import registry as reg
from cxrbench.contracts import Generator
from cxrbench.errors import PluginError
from cxrbench.hookspecs import hookimpl
from cxrbench.registry import PluginSource, load_plugins
from cxrbench.testing import generator_plugin


def _plugin(gen_name):
    return generator_plugin(gen_name, "cxrbench.plugins.generators.noise:NoiseGenerator", summary="fake")


def test_builtins_register_through_entry_points():
    plugins = load_plugins()
    for kind, names in {
        "generator": {"real", "noise", "ddpm", "gan"},
        "dataset": {"phantom", "kermany", "rsna-pneumonia", "chexpert", "mimic-cxr", "nih-cxr14", "pneumoniamnist"},
        "classifier": {"resnet50", "convnext_base", "densenet121", "tiny-cnn"},
        "segmenter": {"tiny-unet", "unet-resnet18", "unet-resnet34"},
    }.items():
        assert names <= set(plugins.registry(kind).names())
    entry = plugins.generators.get("real")
    assert entry.source.distribution == "cxrbench" and entry.source.entry_point == "builtin-generators"
    assert set(reg.KINDS) == {"generator", "postprocessor", "classifier", "dataset", "segmenter"}
    for kind in reg.KINDS:  # every kind registers through its own built-in entry point
        entry = plugins.registry(kind).entries()[0]
        assert entry.kind == kind and entry.source.entry_point == f"builtin-{kind}s", entry


def test_duplicate_name_names_both_plugins():
    extra = [(_plugin("noise"), PluginSource("other-gens", "other-dist", "1.2"))]
    with pytest.raises(PluginError) as err:
        load_plugins(extra=extra)
    msg = str(err.value)
    assert "'noise'" in msg and "builtin-generators" in msg and "other-dist" in msg


def test_unknown_name_suggests_closest():
    plugins = load_plugins()
    with pytest.raises(PluginError, match=r"did you mean 'ddpm'"):
        plugins.load("generator", "ddmp")


def test_misspelt_hook_is_an_error():
    mod = types.ModuleType("typo")

    @hookimpl
    def cxrbench_register_generator(registry):  # missing "s"
        pass

    mod.cxrbench_register_generator = cxrbench_register_generator
    with pytest.raises(PluginError, match="invalid"):
        load_plugins(extra=[(mod, PluginSource("typo", "typo-dist", "0.1"))])


class _FakeDist:
    def __init__(self, name, version):
        self.name, self.version = name, version


class _FakeEntryPoint:
    def __init__(self, name, dist, loader):
        self.name, self.dist, self._loader = name, dist, loader

    def load(self):
        return self._loader()


def _with_third_party(monkeypatch, eps):
    real = reg._entry_points()
    monkeypatch.setattr(reg, "_entry_points", lambda: real + eps)


def test_broken_third_party_plugin_warns_and_is_named_when_needed(monkeypatch):
    def boom():
        raise ImportError("no module named 'missing_dep'")

    _with_third_party(monkeypatch, [_FakeEntryPoint("broken", _FakeDist("broken-dist", "0.3"), boom)])
    with pytest.warns(UserWarning, match="broken-dist"):
        plugins = load_plugins(allow=None, autoload=True)
    assert "real" in plugins.generators  # the others still load
    with pytest.raises(PluginError, match="broken-dist"):
        plugins.load("generator", "fancy-gan")


def test_disable_autoload_and_allow_list(monkeypatch):
    _with_third_party(monkeypatch, [_FakeEntryPoint("x", _FakeDist("extra-dist", "1.0"), lambda: _plugin("extra"))])
    assert "extra" in load_plugins(autoload=True).generators
    monkeypatch.setenv(reg.DISABLE_AUTOLOAD_ENV, "1")
    plugins = load_plugins()
    assert "extra" not in plugins.generators and "real" in plugins.generators
    monkeypatch.delenv(reg.DISABLE_AUTOLOAD_ENV)
    assert "extra" not in load_plugins(allow=[], autoload=True).generators  # empty allow-list: built-ins only
    assert "extra" in load_plugins(allow=["extra-dist==1.0"]).generators
    with pytest.raises(PluginError, match="pins"):
        load_plugins(allow=["extra-dist==2.0"])
    with pytest.raises(PluginError, match="not installed"):
        load_plugins(allow=["extra-dist", "absent-dist"])


def test_lazy_target_import_failure_names_plugin():
    plugins = load_plugins()
    plugins.generators._entries["ghost"] = reg.RegisteredPlugin(
        "generator", "ghost", "nonexistent_mod:Ghost", "", PluginSource("ep", "ghost-dist", "1"))
    with pytest.raises(PluginError, match="ghost-dist"):
        plugins.load("generator", "ghost")


def test_generator_contract_is_abstract():
    with pytest.raises(TypeError):
        Generator()  # fit/generate are required


# --------------------------------------------------------------------------- author mistakes


def test_misspelt_hook_name_gets_did_you_mean():
    mod = types.SimpleNamespace(cxrbench_register_generator=hookimpl(lambda registry: None))
    with pytest.raises(PluginError, match=r"plugin .bad. from bad-dist.* unknown hook cxrbench_register_generator\(\) "
                                          r"\(did you mean cxrbench_register_generators\(\)\?\)"):
        load_plugins(extra=[(mod, PluginSource("bad", "bad-dist", "0.1"))])


def test_unmarked_hook_function_is_warned_about():
    def cxrbench_register_generators(registry):  # no @hookimpl: pluggy would ignore it silently
        registry.add("never-seen", "cxrbench.plugins.generators.noise:NoiseGenerator")

    mod = types.SimpleNamespace(cxrbench_register_generators=cxrbench_register_generators)
    with pytest.warns(UserWarning, match=r"lazy-dist.*cxrbench_register_generators\(\) is not marked"):
        plugins = load_plugins(extra=[(mod, PluginSource("lazy", "lazy-dist", "0.1"))])
    assert "never-seen" not in plugins.generators


def test_one_plugin_can_be_disabled_by_name(monkeypatch):
    """Only third-party distributions are affected; the built-ins always load."""
    ep = types.SimpleNamespace(
        name="broken-gens", dist=types.SimpleNamespace(name="broken-dist", version="1.0"),
        load=lambda: (_ for _ in ()).throw(ImportError("No module named 'missing_dependency'")))
    real = reg._entry_points
    monkeypatch.setattr(reg, "_entry_points", lambda: real() + [ep])
    with pytest.warns(UserWarning, match="broken-dist"):
        assert "noise" in load_plugins().generators
    for disable in (["broken-dist"], ["broken-gens"]):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            plugins = load_plugins(disable=disable)
        assert not plugins.failed and "noise" in plugins.generators
    monkeypatch.setenv("CXRBENCH_DISABLE_PLUGINS", "broken-dist")
    assert not load_plugins().failed


def test_plugins_name_prints_versions_presets_and_every_option(capsys):
    """`cxrbench plugins ldm` (issue #29.3): versions named, presets, options with defaults and docs."""
    from cxrbench.cli import main

    assert main(["plugins", "ldm"]) == 0
    out = capsys.readouterr().out
    assert "class version: 1" in out and "sampling_version: 1" in out and "package: cxrbench" in out
    assert "presets: tiny, small, medium, paper" in out
    line = next(x for x in out.splitlines() if x.strip().startswith("train_steps "))
    assert "preset: tiny=300, small=800" in line
    line = next(x for x in out.splitlines() if x.strip().startswith("vae_path "))
    assert "a local diffusers AutoencoderKL folder" in line
    assert main(["plugins", "kermany"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.strip().startswith("val_fraction "))
    assert "0.1" in line and "share of the train images carved into val" in line
    assert main(["plugins", "no-such-plugin"]) == 2
