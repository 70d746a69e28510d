"""The reference generators and the example plugin pass the same contract kit as learned ones."""

import sys
from pathlib import Path

from cxrbench.testing.generator_contract import GeneratorContractTests

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "cxrbench-example-generator" / "src"))
from cxrbench_example_generator.generator import ClassMeanGenerator  # noqa: E402


class TestRealGenerator(GeneratorContractTests):
    generator_name = "real"
    size = 16


class TestNoiseGenerator(GeneratorContractTests):
    generator_name = "noise"
    size = 16


class TestExampleClassMeanGenerator(GeneratorContractTests):
    generator_class = ClassMeanGenerator
    size = 16


def test_the_checkpoint_format_check_reads_the_formats_not_a_first_byte(tmp_path):
    """A safetensors header length whose low byte is 0x80 (as a pickle's first byte) is valid
    safetensors; a pickle saved under the .safetensors name is not."""
    import pickle
    import struct

    import torch
    from safetensors.torch import save_file

    from cxrbench.testing.generator_contract import _is_json, _is_safetensors

    good = tmp_path / "w.safetensors"
    for n in range(1, 400):  # grow the header until its length's low byte is 0x80
        save_file({f"t{i}": torch.zeros(1) for i in range(n)}, str(good))
        if good.read_bytes()[0] == 0x80:
            break
    assert good.read_bytes()[0] == 0x80 and _is_safetensors(good)
    bad = tmp_path / "p.safetensors"
    bad.write_bytes(pickle.dumps({"w": [1.0, 2.0]}))
    assert not _is_safetensors(bad)
    (tmp_path / "c.json").write_text('{"a": 1}')
    (tmp_path / "b.json").write_bytes(pickle.dumps([1]))
    assert _is_json(tmp_path / "c.json") and not _is_json(tmp_path / "b.json")
