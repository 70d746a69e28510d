"""The contract kits as a plugin author meets them: through pytest (the pytest11 plugin) and
through `cxrbench check NAME`. A broken plugin must fail with the actual value in the message."""

import pytest

from cxrbench import registry
from cxrbench.cli import main
from cxrbench.contracts import Classifier, Postprocessor, SyntheticBatch
from cxrbench.testing import plugins_with

pytest_plugins = ["pytester"]

BROKEN_STEP = """
from cxrbench.contracts import Postprocessor, SyntheticBatch
from cxrbench.testing import PostprocessorContractTests


class FloatOut(Postprocessor):
    '''Returns float images: breaks the uint8 contract.'''

    name = "float-out"

    def __call__(self, batch):
        return SyntheticBatch(batch.images.float(), batch.conditions)


class TestFloatOut(PostprocessorContractTests):
    postprocessor_class = FloatOut
    size = 16


def test_plugin_fixture(cxrbench_toy_split):
    assert cxrbench_toy_split.images.shape == (64, 1, 16, 16)
"""


def test_broken_plugin_fails_the_kit_showing_the_actual_dtype(pytester):
    pytester.makepyfile(test_broken=BROKEN_STEP)
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    # returns_batch, deterministic, empty_batch, batch_independent fail; bad_options is skipped
    result.assert_outcomes(failed=4, passed=3, skipped=1)
    result.stdout.fnmatch_lines(["*returned images tensor torch.float32 (6, 1, 16, 16); expected a tensor "
                                 "torch.uint8 (N, 1, 16, 16)*"])


def test_the_kits_are_rewritten_by_the_pytest_plugin():
    """The pytest11 entry point registered cxrbench.testing for assert rewriting before import."""
    import cxrbench.testing.base as base

    assert type(base.__loader__).__name__ == "AssertionRewritingHook"


def test_check_functions_name_actual_values_without_pytest():
    """The check functions work outside pytest and raise ContractViolation with the values."""
    from cxrbench.testing import ContractViolation
    from cxrbench.testing.postprocessor_contract import PostprocessorSetup, check_returns_batch

    class Drops(Postprocessor):
        name = "drops"

        def __call__(self, batch):
            return SyntheticBatch(batch.images[1:], batch.conditions[1:])

    with pytest.raises(ContractViolation, match=r"returned 5 images for 6 input images"):
        check_returns_batch(PostprocessorSetup(Drops, size=16), None)
    check_returns_batch(PostprocessorSetup(Drops, size=16, may_drop=True), None)  # a declared filter


class Reorders(Postprocessor):
    name = "reorders"

    def __call__(self, batch):
        return SyntheticBatch(batch.images.flip(0), list(reversed(batch.conditions)))


class WideLogits(Classifier):
    """One logit too many."""

    name = "wide-logits"

    def build(self, num_labels, input_size, pretrained):
        import torch

        from cxrbench.contracts import BuiltClassifier

        torch.manual_seed(0)
        return BuiltClassifier(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(num_labels + 1)), "scratch")


@pytest.fixture
def broken_plugins(monkeypatch):
    plugins = plugins_with(("postprocessor", "reorders", Reorders), ("classifier", "wide-logits", WideLogits))
    monkeypatch.setattr(registry, "_CACHED", plugins)
    return plugins


def test_check_command_prints_one_line_per_check_and_exits_1(broken_plugins, capsys):
    assert main(["check", "reorders", "--size", "16"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("post-processor 'reorders'")
    fail = next(line for line in out if line.startswith("FAIL  returns_batch"))
    assert "input seeds [1000, 1001, 1002, 1003, 1004, 1005], output seeds [1005, 1004" in fail
    assert any(line.startswith("PASS  input_not_mutated") for line in out)
    assert any(line.startswith("SKIP  bad_options_rejected") for line in out)
    assert out[-1].startswith("3 passed, 3 failed, 1 skipped (do not apply)")


def test_check_command_on_a_classifier_shows_the_shape(broken_plugins, capsys):
    assert main(["check", "wide-logits", "--kind", "classifier", "--size", "16"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  forward_shape" in out and "torch.float32 (2, 2); expected float logits of shape (2, 1)" in out


def test_check_command_passes_builtins(capsys):
    assert main(["check", "equalize", "--size", "16"]) == 0
    assert main(["check", "phantom", "--option", "n_train=20", "--option", "n_test=10", "--option", "n_val=4"]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and "PASS  patient_disjoint" in out and "SKIP  missing_root" in out


def test_a_dataset_checked_without_its_data_root_is_not_a_pass(capsys, monkeypatch):
    """Checks that could not run are NOT CHECKED, say what to give, and exit 1 (issue #29.2)."""
    monkeypatch.delenv("CXRBENCH_DATA_ROOT", raising=False)
    assert main(["check", "kermany"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert any(line.startswith("NOT CHECKED") and "give --data-root" in line for line in out)
    assert "NOT CHECKED (see above: e.g. give --data-root)" in out[-1]


def test_check_command_unknown_name_and_bad_option(capsys):
    assert main(["check", "equalise"]) == 2
    assert "unknown plugin 'equalise'; did you mean 'equalize' (postprocessor)" in capsys.readouterr().err
    assert main(["check", "crop-border", "--option", "botom=0.1"]) == 2
    assert "did you mean 'bottom'" in capsys.readouterr().err


def test_check_command_finds_a_dataset_under_its_data_root(tmp_path, capsys):
    """A data root holding the dataset's default folder works, as in `cxrbench run`."""
    import numpy as np

    from cxrbench.plugins.datasets.pneumoniamnist import PneumoniaMNISTDataset

    root = tmp_path / "data"
    folder = root / PneumoniaMNISTDataset.default_subdir
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = {}
    for split, k in (("train", 8), ("val", 4), ("test", 4)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (k, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(k) % 2).reshape(k, 1).astype(np.uint8)
    np.savez(folder / "pneumoniamnist.npz", **arrays)
    assert main(["check", "pneumoniamnist", "--size", "28", "--data-root", str(root)]) == 0
    assert "PASS  read_image" in capsys.readouterr().out


NONDETERMINISTIC = """
import torch

from cxrbench.contracts import Generator, GeneratorCapabilities
from cxrbench.testing import GeneratorContractTests


class GlobalRng(Generator):
    '''Draws from the global RNG: the same condition gives another image each call.'''

    name = "global-rng-kit"
    capabilities = GeneratorCapabilities(labels=False, needs_training=False)

    def fit(self, train, *, progress=True):
        return {}

    def generate(self, conditions):
        return (torch.rand((len(conditions), 1, self.size, self.size)) * 255).to(torch.uint8)


class TestGlobalRng(GeneratorContractTests):
    generator_class = GlobalRng
    size = 16
"""


def test_a_nondeterministic_generator_is_told_the_cause_not_blamed_on_demographics(pytester):
    """issue #29.2: its kit failure names the seed, never "demographics ... changed the image"."""
    pytester.makepyfile(test_nondeterministic=NONDETERMINISTIC)
    result = pytester.runpytest("-q", "-p", "no:cacheprovider", "-k", "demographics_accepted")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*another image for the same condition and seed (no demographics involved)*"])
    assert "demographics are not declared" not in result.stdout.str()
