"""A dataset fingerprint blind to content (issue #28 point 3): an image replaced by another file
of the same size is noticed - by its modification time on every load, by its bytes with
--verify-data - and only the changed files are decoded again."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from cxrbench.datasets import load_dataset
from cxrbench.plugins.datasets.kermany import KermanyDataset, KermanyOptions

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "datasets"))
from conftest import KERMANY_FILES, write_jpeg  # noqa: E402

pytestmark = pytest.mark.faults

NAME = "train/PNEUMONIA/person9_bacteria_28.jpeg"


def _root(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    for sub, names in KERMANY_FILES.items():
        for i, name in enumerate(names):
            write_jpeg(root / "chest_xray" / sub / name, rng, h=40, w=48)
    return root


def _load(root, cache, **kw):
    return load_dataset(KermanyDataset(root, KermanyOptions()), size=16, cache_dir=cache, progress=False, **kw)


def _pixels(loaded, key_part):
    for split in loaded.splits().values():
        for i, key in enumerate(split.keys):
            if key_part in key:
                return split.images[i].clone()
    raise AssertionError(key_part)


def _replace_same_size(path: Path, seed: int) -> None:
    """Another image in the very same number of bytes (a JPEG padded with trailing bytes)."""
    size = path.stat().st_size
    for s in range(seed, seed + 50):
        write_jpeg(path, np.random.default_rng(s), h=40, w=48)
        data = path.read_bytes()
        if len(data) <= size:
            path.write_bytes(data + b"\0" * (size - len(data)))
            return
    raise AssertionError("could not make a same-size replacement")


def test_a_same_size_replacement_is_decoded_again_and_only_it(tmp_path, capsys):
    root = _root(tmp_path)
    first = _load(root, tmp_path / "cache")
    before, other = _pixels(first, "person9_bacteria_28"), _pixels(first, "IM-0001")
    path = root / "chest_xray" / NAME
    size = path.stat().st_size
    _replace_same_size(path, seed=100)
    assert path.stat().st_size == size
    again = _load(root, tmp_path / "cache")
    err = capsys.readouterr().err
    assert again.fingerprint == first.fingerprint  # names, labels, sizes: the same data identity
    assert "1 source file(s) changed since they were decoded" in err and "person9_bacteria_28" in err
    assert not np.array_equal(_pixels(again, "person9_bacteria_28").numpy(), before.numpy())
    assert np.array_equal(_pixels(again, "IM-0001").numpy(), other.numpy())
    third = _load(root, tmp_path / "cache")
    assert "changed since" not in capsys.readouterr().err and third.info["cache_hit"]


def test_verify_data_catches_a_replacement_that_kept_the_old_time(tmp_path, capsys):
    root = _root(tmp_path)
    _load(root, tmp_path / "cache", verify_data=True)  # records each file's sha256
    path = root / "chest_xray" / NAME
    st = path.stat()
    _replace_same_size(path, seed=200)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # as `cp -p` or `touch -r` would
    _load(root, tmp_path / "cache")
    assert "changed since" not in capsys.readouterr().err  # stats alone cannot see it
    _load(root, tmp_path / "cache", verify_data=True)
    assert "1 source file(s) changed since they were decoded" in capsys.readouterr().err


def test_a_corrupt_same_size_replacement_is_a_one_line_error_naming_it(tmp_path):
    from cxrbench.errors import DatasetError

    root = _root(tmp_path)
    _load(root, tmp_path / "cache")
    path = root / "chest_xray" / NAME
    path.write_bytes(b"\xff" * path.stat().st_size)
    with pytest.raises(DatasetError, match="person9_bacteria_28.jpeg"):
        _load(root, tmp_path / "cache")
