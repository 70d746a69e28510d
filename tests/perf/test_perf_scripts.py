"""The perf scripts of benchmarks/perf/ run end to end in CI-safe sizes on CPU and write the
JSON they promise (the figures themselves are measured on purpose, not in the suite).
ray_scaling.py runs in tests/core/test_ray_executor.py, the one file that starts Ray: under
pytest-xdist (`--dist loadfile`) a file runs on one worker, so two Ray tests never overlap."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from perf_scripts import run_script  # noqa: E402


def test_sampling_speed(tmp_path):
    r = run_script("sampling_speed", tmp_path, "--generators", "ddpm", "ldm", "--sizes", "16", "--samplers", "ddim:3",
                   "dpmsolver++:2", "--cfg", "0", "4", "--n", "2", "--preset", "tiny")
    assert len(r["rows"]) == 2 * 2 * 2 and all(row["images_per_s"] > 0 for row in r["rows"])


def test_training_input(tmp_path):
    r = run_script("training_input", tmp_path, "--dataset", "phantom", "--size", "16", "--steps", "3", "--batch", "16",
                   "--classifier", "tiny-cnn", "--cache-dir", str(tmp_path / "cache"))
    assert r["from_cache_img_s"] > 0 and r["in_memory_img_s"] > 0 and r["ratio"] > 0


def test_cell_wall(tmp_path):
    # the quality report (a reference CNN trained from scratch) is measured by quality_speed.py:
    # off here, so the script's own path is what this test pays for
    spec = tmp_path / "wall.yaml"
    spec.write_text("spec_version: 1\nname: wall\nquality: {enabled: false}\n")
    r = run_script("cell_wall", tmp_path, "--args", f"--spec {spec} --generator noise --protocol synthetic-only "
                   "--size 16 --dataset phantom --bootstrap 20")
    assert len(r["cells"]) == 2 and r["wall_s"] > 0
    assert all(c["total_s"] > 0 for c in r["cells"])
    assert all(c.get("quality_s", 0) < 1 for c in r["cells"])
