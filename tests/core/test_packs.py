"""Packaged fits (issue #32): `cxrbench pack` writes a fit from one cache, `cxrbench unpack` or a
row's `fit_from:` installs it into an empty one, and the run reuses it without training and
reproduces the AUROC; a tampered, mismatched or unsafe pack is refused in one line naming why."""

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
import yaml

from cxrbench.cli import main
from cxrbench.config import spec_from_data
from cxrbench.errors import CxrbenchError
from cxrbench.packs import CARD_FILE, PACK_FILE, OpenedPack, PackError, unpack, write_pack
from cxrbench.runner import Runner

GAN = {"name": "gan", "label": "gan", "options": {"preset": "tiny", "train_steps": 3}}
SPEC = {"spec_version": 1, "name": "packs", "size": 16, "classifier": {"name": "tiny-cnn"},
        "dataset": {"name": "phantom", "options": {"n_train": 40, "n_val": 20, "n_test": 40}},
        "generators": [GAN], "protocols": [{"name": "synthetic-only.v2", "schedule": "quick"}],
        "evaluation": {"bootstrap_resamples": 20}, "quality": {"enabled": False}}


def _spec(tmp: Path, name: str, **row) -> Path:
    data = json.loads(json.dumps(SPEC))
    data["generators"][0].update(row)
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _record(run: Path) -> dict:
    rec = json.loads(next((run / "cells").glob("synthetic-only*.json")).read_text())
    assert rec["status"] == "ok", rec.get("error")
    return rec


def _auroc(rec: dict) -> float:
    return next(iter(rec["metrics"].values()))["labels"]["pneumonia"]["auroc"]


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """One real tiny GAN fit in cache A (and its run), packed as a .tar and as a folder."""
    tmp = tmp_path_factory.mktemp("packs")
    spec = _spec(tmp, "fit")
    args = ["--cache-dir", str(tmp / "cache-a"), "--no-progress"]
    assert main(["run", "--spec", str(spec), "--out", str(tmp / "run-a"), *args]) == 0
    for out in ("gan.tar", "gan-pack"):
        assert main(["pack", "gan", "--spec", str(spec), "--cache-dir", str(tmp / "cache-a"),
                     "--run", str(tmp / "run-a"), "--out", str(tmp / out)]) == 0
    return {"tmp": tmp, "record": _record(tmp / "run-a"), "tar": tmp / "gan.tar", "folder": tmp / "gan-pack"}


@pytest.fixture
def no_training(monkeypatch):
    """Training is impossible: any fit() call fails the test's run."""
    from cxrbench.plugins.generators.gan import GANGenerator

    def refuse(self, train, progress=True):
        raise AssertionError("the generator was trained; the pack should have been reused")

    monkeypatch.setattr(GANGenerator, "fit", refuse)


def test_fit_from_reuses_the_packed_fit_in_an_empty_cache_and_reproduces_the_auroc(packed, no_training, tmp_path):
    spec = _spec(tmp_path, "reuse", fit_from=str(packed["tar"]))
    assert main(["run", "--spec", str(spec), "--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "empty"),
                 "--no-progress"]) == 0
    rec, first = _record(tmp_path / "run"), packed["record"]
    gen = rec["generator"]
    assert gen["cached"] is True and gen["fit_key"] == first["generator"]["fit_key"]
    assert gen["fit_from"]["fit_key"] == first["generator"]["fit_key"] and gen["fit_from"]["data_differs"] is None
    assert abs(_auroc(rec) - _auroc(first)) <= 1e-6
    # installed under its own key: a later run of the plain spec (no fit_from) reuses it too
    assert main(["run", "--spec", str(_spec(tmp_path, "plain")), "--out", str(tmp_path / "run-plain"),
                 "--cache-dir", str(tmp_path / "empty"), "--no-progress"]) == 0
    assert abs(_auroc(_record(tmp_path / "run-plain")) - _auroc(first)) <= 1e-6


def test_unpack_installs_the_fit_so_a_plain_run_reuses_it(packed, no_training, tmp_path, capsys):
    assert main(["unpack", str(packed["folder"]), "--cache-dir", str(tmp_path / "cache")]) == 0
    assert "installed gan" in capsys.readouterr().out
    assert main(["run", "--spec", str(_spec(tmp_path, "plain")), "--out", str(tmp_path / "run"),
                 "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    rec = _record(tmp_path / "run")
    assert rec["generator"]["cached"] is True and "fit_from" not in rec["generator"]
    assert abs(_auroc(rec) - _auroc(packed["record"])) <= 1e-6


def test_the_pack_lists_what_the_fit_key_hashes_and_only_safetensors_weights(packed):
    with OpenedPack(packed["tar"]) as pack:
        meta = pack.meta
        files = sorted(meta["files"])
    assert meta["fit_key"] == packed["record"]["generator"]["fit_key"]
    assert set(meta["hashed"]) == {"generator", "version", "source", "options", "train", "train_keys", "size",
                                   "fit_seed"}
    assert meta["hashed"]["options"]["train_steps"] == 3 and meta["training_data"]["images"] == 40
    assert meta["code"]["code_fingerprint"] and meta["cost"]["fit_seconds"] > 0
    weights = [f for f in files if f.startswith("fit/") and not f.endswith(".json")]
    assert weights and all(f.endswith(".safetensors") for f in weights)
    assert CARD_FILE in files


def _copy(folder: Path, tmp: Path) -> Path:
    return Path(shutil.copytree(folder, tmp / "copy"))


@pytest.mark.parametrize("how", ["weights", "card", "document", "extra file"])
def test_a_tampered_pack_is_refused(packed, tmp_path, how):
    pack = _copy(packed["folder"], tmp_path)
    if how == "weights":
        target = next((pack / "fit").glob("*.safetensors"))
        data = bytearray(target.read_bytes())
        data[-1] ^= 1
        target.write_bytes(bytes(data))
    elif how == "card":
        (pack / CARD_FILE).write_text((pack / CARD_FILE).read_text() + "edited\n")
    elif how == "document":
        doc = json.loads((pack / PACK_FILE).read_text())
        doc["hashed"]["options"]["train_steps"] = 4000
        (pack / PACK_FILE).write_text(json.dumps(doc))
    else:
        (pack / "fit" / "extra.json").write_text("{}")
    with pytest.raises(PackError) as err:
        unpack(pack, tmp_path / "cache")
    assert "\n" not in str(err.value) and "refus" in str(err.value)
    assert not (tmp_path / "cache" / "generators").exists() or not any((tmp_path / "cache" / "generators").iterdir())


@pytest.mark.parametrize("row, field", [
    ({"options": {"preset": "tiny", "train_steps": 4}}, "options.train_steps differs: pack 3, spec 4"),
    ({"options": {"preset": "tiny", "train_steps": 3, "lr_g": 0.01}}, "options.lr_g"),
])
def test_a_pack_of_other_options_is_refused_naming_the_field(packed, tmp_path, capsys, row, field):
    spec = _spec(tmp_path, "other", fit_from=str(packed["tar"]), **row)
    assert main(["run", "--spec", str(spec), "--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "c"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert field in err and "fit_from" in err and "Traceback" not in err


def test_a_pack_of_another_plugin_version_is_refused(packed, tmp_path, monkeypatch):
    from cxrbench.plugins.generators.gan import GANGenerator

    was = GANGenerator.version
    monkeypatch.setattr(GANGenerator, "version", f"{was}.1")  # the plugin's version as a new release bumps it
    spec = spec_from_data({**SPEC, "generators": [{**GAN, "fit_from": str(packed["tar"])}]}, "s")
    runner = Runner(spec, out=tmp_path / "run", cache_dir=tmp_path / "c", device="cpu", progress=False)
    with pytest.raises(CxrbenchError, match=rf"plugin version differs: pack [^,]+/{was}, spec [^,]+/{was}\.1;"):
        runner.run()


def test_other_training_data_is_refused_unless_the_row_says_so_and_then_recorded(packed, tmp_path, no_training):
    other = {**SPEC, "dataset": {"name": "phantom", "options": {"n_train": 50, "n_val": 20, "n_test": 40}}}
    row = {**GAN, "fit_from": str(packed["tar"])}
    refused = Runner(spec_from_data({**other, "generators": [row]}, "s"), out=tmp_path / "a", cache_dir=tmp_path / "c",
                     device="cpu", progress=False)
    with pytest.raises(CxrbenchError, match="training-data fingerprint differs.*fit_from_data_differs: true"):
        refused.run()
    spec = spec_from_data({**other, "generators": [{**row, "fit_from_data_differs": True}]}, "s")
    assert not Runner(spec, out=tmp_path / "b", cache_dir=tmp_path / "c", device="cpu", progress=False).run().failed
    differs = _record(tmp_path / "b")["generator"]["fit_from"]["data_differs"]
    assert set(differs) == {"train", "train_keys"}
    assert differs["train"]["pack"] == packed["record"]["dataset"]["fingerprint"]


def _tar_with(tmp: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    path = tmp / "evil.tar"
    with tarfile.open(path, "w") as tar:
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return path


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_a_tar_member_outside_the_pack_is_refused_before_anything_is_written(tmp_path, kind):
    name = {"dotdot": "../escaped.json", "absolute": str(tmp_path / "escaped.json"), "symlink": "fit/link"}[kind]
    member = tarfile.TarInfo(name)
    if kind == "symlink":
        member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
    else:
        member.size = 2
    archive = _tar_with(tmp_path, member, b"{}")
    (tmp_path / "scratch").mkdir()
    with pytest.raises(PackError, match="outside the pack|not a plain file"):
        OpenedPack(archive, scratch=tmp_path / "scratch")
    assert not (tmp_path / "escaped.json").exists()


def test_a_fit_with_a_pickle_file_is_not_packed(packed, tmp_path):
    from cxrbench.integrity import manifest

    fit = Path(shutil.copytree(packed["folder"] / "fit", tmp_path / "fit"))
    (fit / "weights.pt").write_bytes(b"\x80\x04pickled")
    done = json.loads((fit / "cxrbench-fit.json").read_text())
    done["manifest"] = manifest([p for p in fit.iterdir() if p.name != "cxrbench-fit.json"], fit)
    (fit / "cxrbench-fit.json").write_text(json.dumps(done))
    with OpenedPack(packed["folder"]) as pack:
        meta = {k: pack.meta[k] for k in ("generator", "label", "fit_key", "hashed")}
    with pytest.raises(PackError, match=r"weights\.pt: a pack carries weights only as \.safetensors"):
        write_pack(fit, meta, "card", tmp_path / "out.tar")
    assert not (tmp_path / "out.tar").exists()


def test_a_fake_safetensors_file_is_refused(packed, tmp_path):
    pack = _copy(packed["folder"], tmp_path)
    target = next((pack / "fit").glob("*.safetensors"))
    target.write_bytes(b"\x80\x04pickled, not safetensors")
    doc = json.loads((pack / PACK_FILE).read_text())
    from cxrbench.integrity import sha256_file
    from cxrbench.store import seal

    rel = target.relative_to(pack).as_posix()
    doc["files"][rel] = [target.stat().st_size, sha256_file(target)]  # a pack made consistent around it
    (pack / PACK_FILE).write_text(json.dumps(seal({k: v for k, v in doc.items() if k != "digest"})))
    with pytest.raises(PackError, match="not a safetensors file"):
        unpack(pack, tmp_path / "cache")


def test_the_card_front_matter_is_yaml_with_the_facts(packed):
    card = (packed["folder"] / CARD_FILE).read_text()
    _, front, body = card.split("---\n", 2)
    facts = yaml.safe_load(front)
    rec = packed["record"]
    assert facts["generator"] == "gan" and facts["fit_key"] == rec["generator"]["fit_key"]
    assert facts["training_data"]["dataset"] == "phantom" and facts["training_data"]["images"] == 40
    assert facts["options"]["train_steps"] == 3 and facts["conditioning"]
    assert facts["cost"]["fit_seconds"] > 0 and facts["pack"]["file"].startswith("cxrbench-pack-gan-")
    assert [r["protocol"] for r in facts["used_by"]] == ["synthetic-only.v2"]
    assert abs(facts["used_by"][0]["auroc"] - _auroc(rec)) <= 1e-6
    for section in ("## Architecture", "## Training data", "## Conditioning", "## Intended use and limits",
                    "## Leaderboard rows that used this fit"):
        assert section in body
    assert "No source or licence of dataset `phantom`" in body  # the phantom has no CITATION.cff entry


@pytest.mark.parametrize("row, message", [
    ({"name": "noise", "fit_from": "x.tar"}, "'noise' is not trained"),
    ({**GAN, "fit_from_data_differs": True}, "applies to a row with fit_from"),
    ({**GAN, "fit_from": "x.tar", "fit_seed": "per-seed", "options": {"preset": "tiny"}}, "a pack holds one fit"),
])
def test_spec_rows_with_fit_from_are_checked(row, message):
    from cxrbench.spec_validation import validate_plugins
    from cxrbench.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        validate_plugins(spec_from_data({**SPEC, "generators": [row]}, "s.yaml"), "s.yaml")


def test_the_leaderboard_writes_a_card_per_learned_fit_and_links_its_rows(packed, tmp_path):
    from cxrbench.leaderboard import build_leaderboard

    summary = build_leaderboard([packed["tmp"] / "run-a"], tmp_path / "lb")
    key = packed["record"]["generator"]["fit_key"]
    card = f"cards/gan-{key}.md"
    assert [f for f in summary["files"] if f.startswith("cards/")] == [card]  # none for the real-only row
    assert f"| [gan]({card})" in (tmp_path / "lb" / "leaderboard.md").read_text()
    assert f'<a class="card" href="{card}">gan</a>' in (tmp_path / "lb" / "index.html").read_text()
    # the leaderboard's card and the pack's are one function of the same records
    assert (tmp_path / "lb" / card).read_text() == (packed["folder"] / CARD_FILE).read_text()


def test_a_file_that_is_not_a_pack_is_one_line(tmp_path):
    (tmp_path / "notes.tar").write_text("not an archive\n")
    cases = ((tmp_path / "notes.tar", "not a readable tar archive"), (tmp_path / "missing.tar", "no such pack"),
             (tmp_path, "not a cxrbench pack"))
    for path, message in cases:
        with pytest.raises(PackError, match=message) as err:
            OpenedPack(path, scratch=tmp_path)
        assert "\n" not in str(err.value)


def test_the_dry_run_says_a_packed_fit_is_not_trained(packed, tmp_path, capsys):
    spec = _spec(tmp_path, "dry", fit_from=str(packed["tar"]))
    assert main(["run", "--spec", str(spec), "--dry-run", "--out", str(tmp_path / "run"),
                 "--cache-dir", str(tmp_path / "empty")]) == 0
    assert f"cached (from pack {packed['tar']})" in capsys.readouterr().out
