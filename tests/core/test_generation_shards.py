"""Generation in seeded shards: shards made in any order (by Ray tasks, or an interrupted run)
assemble into the same images, in the same order, as one pass; an interruption loses at most
the shard in progress."""

import numpy as np
import pytest
import torch

from cxrbench import generation
from cxrbench.contracts import Condition


class SeededGenerator:
    """Each image is a function of its condition's seed alone (the generator contract), made in
    whatever batches it is given; counts the images it generated."""

    name = "seeded"

    def __init__(self, size=8, fail_after=None):
        self.size, self.made, self.fail_after = size, 0, fail_after

    def generate(self, conditions):
        if self.fail_after is not None and self.made >= self.fail_after:
            raise KeyboardInterrupt  # the process dies mid-set
        self.made += len(conditions)
        out = [torch.from_numpy(np.random.default_rng(c.seed).integers(0, 256, (1, self.size, self.size), dtype=np.uint8))
               for c in conditions]
        return torch.stack(out)


@pytest.fixture
def small_shards(monkeypatch):
    monkeypatch.setattr(generation, "SHARD_SIZE", 4)
    monkeypatch.setattr(generation, "GENERATE_BATCH", 2)


def conditions(n):
    return [Condition(labels=(float(i % 2),), seed=1000 + i) for i in range(n)]


def test_shards_in_any_order_assemble_into_the_one_pass_set(tmp_path, small_shards):
    conds = conditions(11)  # 3 shards: 4 + 4 + 3
    one_pass, _ = generation.generate_cached(SeededGenerator(), conds, key="a", path=tmp_path / "one" / "a.npy",
                                             size=8, label="t", progress=False)
    path = tmp_path / "sharded" / "a.npy"
    worker = SeededGenerator()
    for k in (2, 0, 1):  # e.g. three Ray tasks finishing out of order
        generation.generate_shard(worker, conds, path=path, shard=k, size=8, label="t")
    assert worker.made == 11
    assembler = SeededGenerator()
    images, seconds = generation.generate_cached(assembler, conds, key="a", path=path, size=8, label="t", progress=False)
    assert assembler.made == 0  # every shard was already there
    assert torch.equal(images, one_pass) and seconds >= 0
    assert not list((path.parent / "shards").glob("*.npy"))  # shards are removed once assembled
    assert np.array_equal(np.load(path), one_pass.numpy())


def test_an_interrupted_set_resumes_at_its_first_missing_shard(tmp_path, small_shards):
    conds, path = conditions(10), tmp_path / "a.npy"
    with pytest.raises(KeyboardInterrupt):
        generation.generate_cached(SeededGenerator(fail_after=6), conds, key="a", path=path, size=8, label="t",
                                   progress=False)
    assert not path.exists() and generation.shard_path(path, 0).exists()  # shard 0 (4 images) was kept
    resumed = SeededGenerator()
    images, _ = generation.generate_cached(resumed, conds, key="a", path=path, size=8, label="t", progress=False)
    assert resumed.made == 6  # shards 1 and 2 only
    reference = SeededGenerator().generate(conds)
    assert torch.equal(images, reference)


def test_a_corrupt_shard_is_set_aside_and_regenerated(tmp_path, small_shards):
    conds, path = conditions(8), tmp_path / "a.npy"
    generation.generate_shard(SeededGenerator(), conds, path=path, shard=1, size=8, label="t")
    spath = generation.shard_path(path, 1)
    data = bytearray(spath.read_bytes())
    data[-1] ^= 0xFF
    spath.write_bytes(bytes(data))
    again = SeededGenerator()
    images, _ = generation.generate_cached(again, conds, key="a", path=path, size=8, label="t", progress=False)
    assert again.made == 8 and torch.equal(images, SeededGenerator().generate(conds))
    assert list(spath.parent.glob("*.corrupt-*"))  # moved aside, not deleted


def test_shard_size_is_a_multiple_of_the_batch():
    # the guarantee that a sharded set equals one pass rests on this
    assert generation.SHARD_SIZE % generation.GENERATE_BATCH == 0
