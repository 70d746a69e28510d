"""JSRT with lung-field masks: the real 512 px copy when present, and small made-up folders shaped
like both layouts it reads (the 512 px copy; the original All247images/*.IMG with SCR masks).
Also: the mask checks of the dataset contract kit, on plugins that break them."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrbench.datasets import load_dataset
from cxrbench.errors import ConfigError, DatasetError
from cxrbench.plugins.datasets.jsrt import (
    RAW_MAX,
    JSRTDataset,
    JSRTOptions,
    nodule_from_id,
    read_raw_image,
)
from cxrbench.testing import DatasetContractTests
from cxrbench.testing.base import ContractViolation
from cxrbench.testing.dataset_contract import (
    DatasetSetup,
    check_loaded_masks,
    check_mask_aligned,
    check_mask_array,
)

DATA_ROOT = os.environ.get("CXRBENCH_DATA_ROOT", "").strip()
REAL_JSRT = Path(DATA_ROOT) / "jsrt" if DATA_ROOT else None
HAVE_REAL = REAL_JSRT is not None and (REAL_JSRT / "labels.csv").is_file()
needs_real = pytest.mark.skipif(
    not HAVE_REAL,
    reason="real JSRT copy not found: set CXRBENCH_DATA_ROOT to a folder holding jsrt/labels.csv, jsrt/images/ "
           "and jsrt/masks/lungs/",
)

# --------------------------------------------------------------------------- made-up original layout

#: side of the made-up .IMG files (2048 in the database); the SCR masks are half of it, as 1024 is
RAW = 64
HALF = RAW // 2
#: raw values: a HIGHER raw value is a DARKER film in JSRT (lungs: dense film)
RAW_LUNG, RAW_BODY = 3500, 1000
ORIGINAL_IDS = ("JPCLN001", "JPCLN002", "JPCLN003", "JPCNN001", "JPCNN002", "JPCNN003")


def lungs_at_half(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Image k's (left, right) lung masks at HALF px (bool): two boxes, shifted with k."""
    left, right = np.zeros((HALF, HALF), bool), np.zeros((HALF, HALF), bool)
    top = 5 + k % 3
    left[top:top + 18, 18:27] = True  # the patient's left lung: on the image's right (PA view)
    right[top:top + 18, 4:13 + k % 2] = True
    return left, right


def raw_image(k: int) -> np.ndarray:
    """Image k as stored (uint16 12-bit values): body RAW_BODY, lungs RAW_LUNG, two marker pixels."""
    left, right = lungs_at_half(k)
    lungs = np.kron(left | right, np.ones((2, 2), bool))
    arr = np.where(lungs, RAW_LUNG, RAW_BODY).astype(np.uint16)
    arr += np.arange(RAW, dtype=np.uint16)[None, :] % 7  # some texture
    arr[0, 0], arr[0, 1], arr[0, 2] = 0, RAW_MAX, 2048
    return arr


def write_gif(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.astype(np.uint8) * 255, "L").save(path)  # a palette GIF, as SCR's


def write_original(folder: Path, ids=ORIGINAL_IDS, *, mask_base=("scratch", "masks"), labels=None) -> Path:
    """<folder>/All247images/<ID>.IMG (RAW x RAW big-endian 12-bit) and SCR masks (HALF px GIFs)
    under <folder>/<mask_base>/{left lung,right lung}/<ID>.gif; ``labels``: rows of a labels.csv."""
    (folder / "All247images").mkdir(parents=True, exist_ok=True)
    for k, image_id in enumerate(ids):
        raw_image(k).astype(">u2").tofile(folder / "All247images" / f"{image_id}.IMG")
        left, right = lungs_at_half(k)
        base = mask_base(k) if callable(mask_base) else mask_base
        write_gif(folder.joinpath(*base, "left lung", f"{image_id}.gif"), left)
        write_gif(folder.joinpath(*base, "right lung", f"{image_id}.gif"), right)
    if labels is not None:
        (folder / "labels.csv").write_text("image,split,nodule\n" + "".join(f"{r}\n" for r in labels))
    return folder


@pytest.fixture
def original_root(tmp_path: Path) -> Path:
    """A data root holding JSRT/ in the original layout."""
    write_original(tmp_path / "data" / "JSRT")
    return tmp_path / "data"


def _ds(root, **options) -> JSRTDataset:
    return JSRTDataset(root, JSRTOptions(raw_size=RAW, **options))


def test_raw_reader_inverts_and_scales_12_to_8_bits(tmp_path):
    path = tmp_path / "JPCLN001.IMG"
    raw = raw_image(0)
    raw.astype(">u2").tofile(path)
    assert path.stat().st_size == RAW * RAW * 2  # no header
    img = read_raw_image(path, RAW)
    assert img.shape == (RAW, RAW) and img.dtype == np.uint8
    assert img[0, 0] == 255 and img[0, 1] == 0 and img[0, 2] == 127  # inverted: raw 0 is white; 2047 * 255 / 4095
    assert np.array_equal(img, np.round((RAW_MAX - raw.astype(float)) * 255 / RAW_MAX).astype(np.uint8))
    kept = read_raw_image(path, RAW, invert=False)
    assert kept[0, 0] == 0 and kept[0, 1] == 255 and kept[0, 2] == 128
    assert np.array_equal(kept, np.round(raw.astype(float) * 255 / RAW_MAX).astype(np.uint8))


def test_raw_reader_refuses_a_wrong_size_or_byte_order(tmp_path):
    path = tmp_path / "JPCLN001.IMG"
    raw_image(0).astype(">u2").tofile(path)
    with pytest.raises(ValueError, match=rf"holds {RAW * RAW * 2} bytes.*holds {2048 * 2048 * 2}"):
        read_raw_image(path)  # the default 2048 px
    raw_image(0).astype("<u2").tofile(path)  # little-endian: values above 12 bits
    with pytest.raises(ValueError, match="above 12 bits"):
        read_raw_image(path, RAW)


def test_original_layout_records_labels_and_split(original_root):
    ds = _ds(original_root)
    recs = ds.records()
    assert sorted(r.key for r in recs) == sorted(ORIGINAL_IDS)
    for r in recs:
        assert r.patient_id == r.key and r.has_mask and r.metadata == {}
        assert r.labels == ((1.0,) if r.key.startswith("JPCLN") else (0.0,))
        assert r.source["format"] == "img" and len(r.source["masks"]) == 2
    # stratified by nodule: one of each 3-image stratum to test (0.2 of 3 rounds up), one to val
    assert Counter(r.split for r in recs) == {"train": 3, "val": 1, "test": 2}
    assert {r.labels for r in recs if r.split == "test"} == {(0.0,), (1.0,)}
    again = _ds(original_root).records()
    assert [(r.key, r.split) for r in again] == [(r.key, r.split) for r in recs]  # deterministic
    assert "by image" in ds.split_notes["split"] and ds.split_notes["seed"] == 0
    assert "inverted (4095 - v): True" in ds.split_notes["raw"]
    assert nodule_from_id("JPCLN154") == 1.0 and nodule_from_id("JPCNN093") == 0.0 and nodule_from_id("X1") is None


def test_original_layout_masks_are_the_union_resized_to_the_image(original_root):
    ds = _ds(original_root)
    for k, r in enumerate(sorted(ds.records(), key=lambda r: ORIGINAL_IDS.index(r.key))):
        img, mask = ds.read_image(r), ds.read_mask(r)
        assert img.shape == mask.shape == (RAW, RAW)
        assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
        left, right = lungs_at_half(k)
        assert np.array_equal(mask, np.kron(left | right, np.ones((2, 2), np.uint8)))  # nearest neighbour
        assert mask[:, : RAW // 2].any() and mask[:, RAW // 2:].any()  # both lungs
        # the inversion convention: lungs (high raw values) are dark, as in a radiograph
        assert img[mask == 1].mean() < 60 < 150 < img[mask == 0][3:].mean()
    dark = _ds(original_root, invert_raw=False)
    r = dark.records()[0]
    assert dark.read_image(r)[dark.read_mask(r) == 1].mean() > 200  # not inverted: lungs bright


def test_full_size_original_2048_image_with_1024_scr_masks(tmp_path):
    """The database's own sizes (one 8 MB file): the 1024 px SCR masks become 2048 px."""
    folder = tmp_path / "jsrt"
    (folder / "All247images").mkdir(parents=True)
    raw = np.full((2048, 2048), RAW_BODY, np.uint16)
    raw[200:1800, 1100:1900] = RAW_LUNG
    raw.astype(">u2").tofile(folder / "All247images" / "JPCNN001.IMG")
    left = np.zeros((1024, 1024), bool)
    left[100:900, 550:950] = True
    write_gif(folder / "scratch" / "masks" / "left lung" / "JPCNN001.gif", left)
    write_gif(folder / "scratch" / "masks" / "right lung" / "JPCNN001.gif", np.zeros((1024, 1024), bool))
    ds = JSRTDataset(folder)
    (r,) = ds.records()
    img, mask = ds.read_image(r), ds.read_mask(r)
    assert img.shape == mask.shape == (2048, 2048)
    assert np.array_equal(mask.astype(bool), raw == RAW_LUNG)  # aligned pixel for pixel
    assert img[mask == 1].max() < img[mask == 0].min()  # inverted: the lung is dark


def test_original_layout_loads_aligned_at_every_size(original_root, tmp_path):
    for size in (16, 32, 48):
        ld = load_dataset(_ds(original_root), size=size, cache_dir=tmp_path / "cache", progress=False)
        for split in ld.splits().values():
            assert split.masks is not None and split.masks.shape == split.images.shape == (len(split), 1, size, size)
            assert set(np.unique(split.masks.numpy())) <= {0, 1}
            for i, key in enumerate(split.keys):
                m = split.masks[i, 0].numpy().astype(bool)
                img = split.images[i, 0].numpy().astype(float)
                assert img[m].mean() < img[~m].mean()  # the lungs (dark) under the mask
                if size == HALF:  # BOX-downsampled 2x2 blocks: exactly the SCR masks as written
                    left, right = lungs_at_half(ORIGINAL_IDS.index(key))
                    assert np.array_equal(m, left | right)


def test_original_layout_with_labels_csv_and_scr_folds(tmp_path):
    ids = ORIGINAL_IDS[:4]
    rows = [f"{i}.png,{s},{int(i.startswith('JPCLN'))}" for i, s in zip(ids, ("train", "test", "train", "val"))]
    folder = write_original(tmp_path / "jsrt", ids, labels=rows,
                            mask_base=lambda k: ("scratch", f"fold{1 + k % 2}", "masks"))
    ds = _ds(folder)
    recs = {r.key: r for r in ds.records()}
    assert {k: r.split for k, r in recs.items()} == dict(zip(ids, ("train", "test", "train", "val")))
    assert ds.split_notes["split"] == "as given in labels.csv"
    assert "fold2" in recs["JPCLN002"].source["masks"][0] and "fold1" in recs["JPCLN001"].source["masks"][0]
    (folder / "labels.csv").write_text("image,split,nodule\n" + "\n".join(rows[:3]) + "\n")
    with pytest.raises(DatasetError, match="JPCNN001.IMG' is not listed in"):
        _ds(folder).records()


def test_original_layout_missing_mask_is_a_one_line_error(original_root):
    gif = original_root / "JSRT" / "scratch" / "masks" / "right lung" / "JPCNN002.gif"
    gif.unlink()
    with pytest.raises(DatasetError) as exc:
        _ds(original_root).records()
    msg = str(exc.value)
    assert "\n" not in msg and f"missing mask file {str(gif)!r}" in msg and "'JPCNN002'" in msg


def test_original_layout_bad_files(tmp_path):
    folder = write_original(tmp_path / "jsrt", ("JPCLN001", "JPCNN001", "XRAY0001"))
    with pytest.raises(DatasetError, match="'XRAY0001' starts with neither JPCLN"):
        _ds(folder).records()
    empty = tmp_path / "empty"
    (empty / "All247images").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no .IMG file in"):
        _ds(empty).records()


def test_bad_options():
    with pytest.raises(ConfigError, match="raw_size"):
        JSRTOptions(raw_size=4)
    with pytest.raises(ConfigError, match="invert_raw"):
        JSRTOptions(invert_raw="yes")
    with pytest.raises(ConfigError, match="test_fraction"):
        JSRTOptions(test_fraction=0.8, val_fraction=0.3)


# --------------------------------------------------------------------------- made-up 512 px copy layout

COPY_ROWS = [("JPCLN001", "train"), ("JPCLN002", "train"), ("JPCLN003", "val"), ("JPCLN004", "test"),
             ("JPCNN001", "train"), ("JPCNN002", "train"), ("JPCNN003", "val"), ("JPCNN004", "test")]


def write_copy(folder: Path, rows=COPY_ROWS, size: int = 40) -> Path:
    """<folder>/labels.csv, images/<ID>.png and masks/lungs/<ID>.png (0 / 255)."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks" / "lungs").mkdir(parents=True, exist_ok=True)
    lines = ["image,split,nodule"]
    rng = np.random.default_rng(3)
    for k, (image_id, split) in enumerate(rows):
        mask = np.zeros((size, size), np.uint8)
        mask[8:30, 4 + k % 2:17] = 255
        mask[8:30, 23:36] = 255
        img = np.clip(np.where(mask > 0, 60, 170) + rng.normal(0, 8, (size, size)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / "images" / f"{image_id}.png")
        Image.fromarray(mask).save(folder / "masks" / "lungs" / f"{image_id}.png")
        lines.append(f"{image_id}.png,{split},{int(image_id.startswith('JPCLN'))}")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def copy_root(tmp_path: Path) -> Path:
    write_copy(tmp_path / "copy" / "jsrt")
    return tmp_path / "copy"


def test_copy_layout_split_as_given(copy_root):
    ds = JSRTDataset(copy_root)
    recs = ds.records()
    assert {r.key: r.split for r in recs} == dict(COPY_ROWS)
    assert all(r.has_mask and r.patient_id == r.key and r.source["format"] == "png" for r in recs)
    assert Counter(r.labels for r in recs) == {(1.0,): 4, (0.0,): 4}
    r = recs[0]
    img, mask = ds.read_image(r), ds.read_mask(r)
    assert img.shape == mask.shape == (40, 40) and set(np.unique(mask)) == {0, 1}
    assert img[mask == 1].mean() < img[mask == 0].mean()
    assert ds.split_notes["unlisted_images_left_out"] == 0


def test_copy_layout_is_preferred_over_the_original_in_one_folder(tmp_path):
    folder = write_copy(tmp_path / "jsrt")
    write_original(folder, ORIGINAL_IDS[:2])
    assert {r.source["format"] for r in JSRTDataset(folder).records()} == {"png"}


def test_copy_layout_missing_mask_is_a_one_line_error(copy_root):
    path = copy_root / "jsrt" / "masks" / "lungs" / "JPCNN003.png"
    path.unlink()
    with pytest.raises(DatasetError) as exc:
        JSRTDataset(copy_root).records()
    msg = str(exc.value)
    assert "\n" not in msg and f"missing mask file {str(path)!r}" in msg and "'JPCNN003'" in msg


def test_copy_layout_bad_labels(tmp_path):
    folder = write_copy(tmp_path / "jsrt")
    text = (folder / "labels.csv").read_text()
    (folder / "labels.csv").write_text(text.replace("JPCNN001.png,train,0", "JPCNN001.png,train,1"))
    with pytest.raises(DatasetError, match=r"nodule '1' but the ID prefix 'JPCNN' says 0"):
        JSRTDataset(folder).records()
    (folder / "labels.csv").write_text(text.replace("JPCNN001.png,train,0", "JPCNN001.png,holdout,0"))
    with pytest.raises(DatasetError, match="split 'holdout'"):
        JSRTDataset(folder).records()


# --------------------------------------------------------------------------- the contract kit, both layouts


class TestJSRTOriginalContract(DatasetContractTests):
    dataset_name = "jsrt"
    dataset_options = {"raw_size": RAW}

    @pytest.fixture
    def dataset_root(self, original_root):
        return original_root


class TestJSRTCopyContract(DatasetContractTests):
    dataset_name = "jsrt"

    @pytest.fixture
    def dataset_root(self, copy_root):
        return copy_root


class TestJSRTRealContract(DatasetContractTests):
    dataset_name = "jsrt"

    @pytest.fixture
    def dataset_root(self):
        if not HAVE_REAL:
            pytest.skip("real JSRT copy not found: set CXRBENCH_DATA_ROOT to a folder holding jsrt/labels.csv")
        return Path(DATA_ROOT)


# --------------------------------------------------------------------------- the kit catches broken masks


class _Unresized(JSRTDataset):
    """Returns the SCR masks at their own (half) size: not aligned with the image."""

    def read_mask(self, record):
        return np.asarray(Image.open(record.source["masks"][0]).convert("L"))


class _ImageAsMask(JSRTDataset):
    def read_mask(self, record):
        return self.read_image(record)


class _LoadedEmpty(JSRTDataset):
    """A mask of one corner pixel per record: it vanishes once loaded at a small size."""

    def read_mask(self, record):
        m = np.zeros(self._image_shape(record), np.uint8)
        m[0, 0] = 1
        return m


def test_kit_refuses_masks_not_aligned_or_not_masks(original_root, copy_root, tmp_path):
    setup = DatasetSetup(_Unresized, JSRTOptions(raw_size=RAW), original_root, cache_root=tmp_path / "c")
    with pytest.raises(ContractViolation, match=rf"a {HALF}x{HALF} mask for a {RAW}x{RAW} image"):
        check_mask_aligned(setup, tmp_path)
    setup = DatasetSetup(_ImageAsMask, None, copy_root, cache_root=tmp_path / "c")  # noisy images
    with pytest.raises(ContractViolation, match="distinct values"):
        check_mask_aligned(setup, tmp_path)
    good = DatasetSetup(JSRTDataset, JSRTOptions(raw_size=RAW), original_root, cache_root=tmp_path / "c")
    check_mask_aligned(good, tmp_path)
    check_loaded_masks(good, tmp_path)


def test_kit_mask_values():
    check_mask_array(np.array([[0, 255]], np.uint8), "m")
    check_mask_array(np.array([[0, 1, 2, 3]], np.int64), "m")  # class ids
    check_mask_array(np.array([[0.0, 1.0]], np.float32), "m")
    check_mask_array(np.array([[True, False]]), "m", (1, 2))
    check_mask_array(np.array([[0, 65535]], np.uint16), "m")  # binary with any region value
    for bad, why in [(np.array([[0, 0.5]]), "non-integer"), (np.array([[-1, 0, 1]]), "negative"),
                     (np.arange(64, dtype=np.uint8).reshape(8, 8), "64 distinct values"),
                     (np.array([0, 1]), "2-D"), (np.array([[0, 1]], np.uint8), "shape")]:
        with pytest.raises(ContractViolation, match=why):
            check_mask_array(bad, "m", (2, 2) if why == "shape" else None)


def test_kit_loaded_masks_pass_on_phantom_and_a_tiny_region_may_vanish(original_root, tmp_path):
    from cxrbench.plugins.datasets.phantom import PhantomDataset, PhantomOptions

    check_loaded_masks(DatasetSetup(PhantomDataset, PhantomOptions(n_train=4, n_val=2, n_test=2, render_size=32),
                                    None, size=16, cache_root=tmp_path / "p"), tmp_path)
    # one pixel of 64x64 is below a tenth: may vanish at 16 px without a violation
    check_loaded_masks(DatasetSetup(_LoadedEmpty, JSRTOptions(raw_size=RAW), original_root, size=16,
                                    cache_root=tmp_path / "e"), tmp_path)


# --------------------------------------------------------------------------- the real copy


@pytest.fixture(scope="module")
def real_records():
    ds = JSRTDataset(Path(DATA_ROOT))
    return ds, ds.records()


@pytest.fixture(scope="module")
def real_loaded(tmp_path_factory):
    return load_dataset(JSRTDataset(Path(DATA_ROOT)), size=64, cache_dir=tmp_path_factory.mktemp("cache"),
                        progress=False)


@needs_real
def test_real_counts(real_records):
    ds, recs = real_records
    assert len(recs) == 247 and len({r.key for r in recs}) == 247
    assert Counter(r.split for r in recs) == {"train": 174, "val": 22, "test": 51}
    assert Counter(r.labels for r in recs) == {(1.0,): 154, (0.0,): 93}
    assert all(r.labels == ((1.0,) if r.key.startswith("JPCLN") else (0.0,)) for r in recs)
    assert all(r.has_mask and Path(r.source["masks"][0]).is_file() for r in recs)
    assert len({r.patient_id for r in recs}) == 247  # one image per patient
    assert ds.split_notes["unlisted_images_left_out"] == 0
    r = recs[0]
    img, mask = ds.read_image(r), ds.read_mask(r)
    assert img.shape == mask.shape == (512, 512) and set(np.unique(mask)) == {0, 1}


@needs_real
def test_real_loaded_masks_plausible_and_aligned(real_loaded):
    splits = real_loaded.splits()
    assert {k: len(s) for k, s in splits.items()} == {"train": 174, "val": 22, "test": 51}
    images = np.concatenate([s.images.numpy() for s in splits.values()])[:, 0].astype(float)
    masks = np.concatenate([s.masks.numpy() for s in splits.values()])[:, 0]
    assert masks.shape == images.shape == (247, 64, 64)
    assert set(np.unique(masks)) == {0, 1}
    share = masks.mean(axis=(1, 2))
    assert 0.15 < share.mean() < 0.5 and share.min() > 0.1  # both lung fields, every image

    def contrast(m):  # mean outside - mean inside, per image: the lungs are darker
        inside = (images * m).sum((1, 2)) / m.sum((1, 2))
        return (images * (1 - m)).sum((1, 2)) / (1 - m).sum((1, 2)) - inside

    aligned = contrast(masks)
    assert (aligned > 0).mean() > 0.95
    for shift in ((0, 4), (0, -4), (4, 0), (-4, 0)):  # a shifted mask fits the dark lungs worse
        assert contrast(np.roll(masks, shift, axis=(1, 2))).mean() < aligned.mean() - 5
