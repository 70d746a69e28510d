"""Bad dataset files, as a user's folder may hold them: each gives a clear outcome through
`cxrbench run`: a one-line error naming the file (default), or the image skipped and the skip
counted and printed (`on_unreadable: skip`), or (where a decoder can read it) a normal load.
Also: an empty class folder is an error, and `--ratio` is never silently dropped."""

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrbench.cli import build_parser, main, resolve_run_spec
from cxrbench.errors import CxrbenchError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "datasets"))
from conftest import KERMANY_FILES, write_jpeg  # noqa: E402

pytestmark = pytest.mark.faults

BAD = "train/PNEUMONIA/person9_bacteria_28.jpeg"


def _kermany(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for sub, names in KERMANY_FILES.items():
        for i, name in enumerate(names):
            write_jpeg(root / "chest_xray" / sub / name, rng, h=32 + 4 * (i % 3), w=40 + 6 * (i % 4))
    return root


def _write_bad(path: Path, kind: str) -> None:
    good = path.read_bytes()
    if kind == "truncated":
        path.write_bytes(good[: len(good) // 3])
    elif kind == "zero-byte":
        path.write_bytes(b"")
    elif kind == "not-an-image":
        path.write_text("patient notes, not a radiograph\n")
    elif kind == "bomb":  # a tiny PNG that decodes to 30,000 x 30,000 pixels
        Image.new("L", (30000, 30000)).save(path, format="PNG", optimize=True)
    elif kind == "16-bit":
        Image.fromarray((np.arange(40 * 48).reshape(40, 48) * 30).astype(np.uint16)).save(path, format="PNG")
    elif kind == "rgba":
        Image.new("RGBA", (48, 40), (120, 60, 30, 255)).save(path, format="PNG")


def _run(tmp_path, capsys, *extra):
    argv = ["run", "--dataset", "kermany", "--data-root", str(tmp_path / "data"), "--size", "16",
            "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "run"), "--bootstrap", "20",
            "--no-progress", *extra]
    rc = main(argv)
    return rc, capsys.readouterr()


@pytest.mark.parametrize("kind", ["truncated", "zero-byte", "not-an-image", "bomb"])
def test_an_unreadable_file_is_one_line_naming_it(kind, tmp_path, capsys):
    root = _kermany(tmp_path / "data")
    _write_bad(root / "chest_xray" / BAD, kind)
    rc, io = _run(tmp_path, capsys)
    err = [line for line in io.err.splitlines() if line.startswith("cxrbench: error:")]
    assert rc == 2 and len(err) == 1 and "person9_bacteria_28.jpeg" in err[0] and "on_unreadable" in err[0], io.err
    assert "Traceback" not in io.err


def test_skipped_images_are_counted_and_printed(tmp_path, capsys):
    root = _kermany(tmp_path / "data")
    _write_bad(root / "chest_xray" / BAD, "zero-byte")
    spec = tmp_path / "skip.yaml"
    spec.write_text("spec_version: 1\nname: skip\ndataset: {name: kermany}\nsize: 16\n"
                    "preprocessing: {on_unreadable: skip}\nevaluation: {bootstrap_resamples: 20}\n")
    rc = main(["run", "--spec", str(spec), "--data-root", str(root), "--cache-dir", str(tmp_path / "cache"),
               "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 0 and "dataset kermany: skipped 1 unreadable image(s)" in err


@pytest.mark.parametrize("kind", ["16-bit", "rgba"])
def test_other_pixel_formats_load_as_grayscale(kind, tmp_path, capsys):
    root = _kermany(tmp_path / "data")
    _write_bad(root / "chest_xray" / BAD, kind)
    rc, io = _run(tmp_path, capsys)
    assert rc == 0, io.err


def test_an_empty_class_folder_is_an_error_not_an_auroc(tmp_path, capsys):
    root = _kermany(tmp_path / "data")
    for p in (root / "chest_xray" / "train" / "PNEUMONIA").iterdir():
        p.unlink()
    rc, io = _run(tmp_path, capsys)
    err = [line for line in io.err.splitlines() if line.startswith("cxrbench: error:")]
    assert rc == 2 and len(err) == 1, io.err
    assert "PNEUMONIA" in err[0] or "only negative images for label 'pneumonia'" in err[0]


def test_ratio_without_protocol_applies_or_is_refused():
    spec, _ = resolve_run_spec(build_parser().parse_args(["run", "--generator", "noise", "--ratio", "5"]))
    assert [(p.name, p.ratios) for p in spec.protocols] == [("synthetic-only", [5.0])]
    with pytest.raises(CxrbenchError, match="none of the protocols .* takes a ratio"):
        resolve_run_spec(build_parser().parse_args(["run", "--ratio", "2"]))
    with pytest.raises(CxrbenchError, match="ratio -1.0 is outside"):
        resolve_run_spec(build_parser().parse_args(["run", "--generator", "noise", "--ratio", "-1"]))
