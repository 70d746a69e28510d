"""Every cache kind is checksummed (issue #28 point 1): bytes flipped in the decoded dataset, the
reference classifier's weights, a quality report or a stored paid image are detected, moved
aside with one warning line naming the file, and rebuilt - never used."""

import json
import sys
from pathlib import Path

import pytest
import torch

from cxrbench.config import QualitySettings
from cxrbench.datasets import load_dataset
from cxrbench.integrity import check_file, checksum_path, write_checksum
from cxrbench.plugins.datasets.phantom import PhantomDataset, PhantomOptions

pytestmark = pytest.mark.faults


def flip_byte(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_check_file_catches_a_flipped_byte_and_hashes_only_what_changed(tmp_path):
    f = tmp_path / "entry.bin"
    f.write_bytes(bytes(range(256)) * 64)
    write_checksum(f)
    assert check_file(f) is None
    flip_byte(f)
    assert "does not match its checksum" in check_file(f)
    f.write_bytes(bytes(range(256)) * 64)  # the original bytes, a new time: verified and re-stamped
    assert check_file(f) is None
    assert json.loads(checksum_path(f).read_text())["mtime_ns"] == f.stat().st_mtime_ns
    g = tmp_path / "legacy.bin"
    g.write_bytes(b"made before checksums")
    assert "has no checksum" in check_file(g)
    assert check_file(g, missing_ok=True) is None and checksum_path(g).is_file()


def _phantom():
    return PhantomDataset(None, PhantomOptions(n_train=40, n_val=16, n_test=16))


def test_a_flipped_byte_in_the_decoded_dataset_is_rebuilt_not_trained_on(tmp_path, capsys):
    first = load_dataset(_phantom(), size=16, cache_dir=tmp_path)
    images = Path(first.info["cache_path"]) / "images.npy"
    original = first.train.images.clone()
    flip_byte(images, offset=images.stat().st_size - 10)
    again = load_dataset(_phantom(), size=16, cache_dir=tmp_path)
    err = capsys.readouterr().err
    assert again.info["cache_hit"] is False
    assert "WARNING: cache entry" in err and "images.npy does not match its checksum" in err
    assert torch.equal(again.train.images, original)
    assert list(images.parent.parent.glob("*.corrupt-*"))  # kept aside for inspection
    third = load_dataset(_phantom(), size=16, cache_dir=tmp_path)
    assert third.info["cache_hit"] is True


def test_flipped_reference_weights_are_retrained_not_loaded(tmp_path, capsys):
    from cxrbench.kit.reference import ReferenceClassifier, ReferenceOptions

    train = load_dataset(_phantom(), size=16, cache_dir=tmp_path).train
    net = ReferenceClassifier(ReferenceOptions(steps=5, batch_size=8))
    info = net.fit(train, cache_dir=tmp_path)
    before = net.probabilities(train.images[:8])
    flip_byte(Path(info["path"]))
    again = ReferenceClassifier(ReferenceOptions(steps=5, batch_size=8))
    info2 = again.fit(train, cache_dir=tmp_path)
    err = capsys.readouterr().err
    assert info2["cached"] is False and "does not match its checksum" in err and Path(info["path"]).name in err
    assert torch.allclose(again.probabilities(train.images[:8]), before)  # retrained: the same weights
    assert ReferenceClassifier(ReferenceOptions(steps=5, batch_size=8)).fit(train, cache_dir=tmp_path)["cached"]


def test_an_edited_quality_report_is_recomputed_not_copied(tmp_path, capsys):
    from cxrbench.quality.synthetic import synthetic_quality

    ds = load_dataset(_phantom(), size=16, cache_dir=tmp_path)
    settings = QualitySettings(features=["domain"], pairs=10, worst_pairs=0, reference_steps=5)
    images, labels = ds.val.images, ds.val.labels
    report = synthetic_quality(images, labels, ds.train, settings=settings, cache_dir=tmp_path,
                               out_dir=tmp_path / "cell", val=ds.val)
    (path,) = (tmp_path / "quality").glob("report-*/report.json")
    edited = json.loads(path.read_text())
    edited["features"]["domain"]["fd"] = -1.0
    path.write_text(json.dumps(edited))
    again = synthetic_quality(images, labels, ds.train, settings=settings, cache_dir=tmp_path,
                              out_dir=tmp_path / "cell", val=ds.val)
    err = capsys.readouterr().err
    assert "WARNING: cache entry" in err and "report.json has" in err and "moved aside" in err
    assert again["cached"] is False and again["features"]["domain"]["fd"] == report["features"]["domain"]["fd"]


def test_a_flipped_stored_paid_image_is_fetched_again(tmp_path, monkeypatch, capsys):
    pytest.importorskip("google.genai")
    sys.path.insert(0, str(Path(__file__).parents[1] / "generators"))
    from fake_image_api import FakeImageAPI
    from test_api import ENV, KEY, conds, make

    monkeypatch.setenv(ENV, KEY)
    with FakeImageAPI(KEY, fail_rate=0.0, seed=4) as api:
        g = make(api, "gemini", tmp_path / "cache")
        c = conds(3)
        first = g.generate(c)
        stored = sorted(p for p in (tmp_path / "cache").rglob("*") if p.is_file() and not p.name.endswith(".json"))
        assert len(stored) == 3 and api.requests == 3
        flip_byte(stored[0], offset=stored[0].stat().st_size // 2)
        again = make(api, "gemini", tmp_path / "cache").generate(c)
        assert api.requests == 4  # only the damaged one is bought again
        assert "does not match its checksum" in capsys.readouterr().err
        assert torch.equal(again, first)  # the fake server draws the same image for (prompt, seed)
