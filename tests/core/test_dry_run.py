"""`cxrbench run --dry-run` prints the grid and what of it is cached, and runs nothing."""

from cxrbench.cli import main


def test_dry_run_before_and_after_a_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    paths = ["--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache")]
    ddpm_tiny = tmp_path / "spec.yaml"
    ddpm_tiny.write_text(
        "spec_version: 1\nname: dry\ndataset: {name: phantom, options: {n_train: 40, n_val: 20, n_test: 20}}\n"
        "size: 16\nclassifier: {name: tiny-cnn}\n"
        "generators: [{name: noise}, {name: ddpm, label: ddpm, options: {preset: tiny, train_steps: 3, sampling_steps: 4, gen_batch_size: 64}}]\n"
        "protocols: [{name: synthetic-only, schedule: quick}]\nseeds: [0, 1]\n"
        "evaluation: {bootstrap_resamples: 20}\nquality: {enabled: false}\n")
    assert main(["run", "--spec", str(ddpm_tiny), "--dry-run", *paths]) == 0
    before = capsys.readouterr().out
    assert not (tmp_path / "run").exists()  # nothing was run or written
    assert "6 cell(s): 0 finished, 6 to run; 2 fit(s): 0 cached, 1 to fit; 4 replica(s): 0 cached, 4 to generate" in before
    assert main(["run", "--spec", str(ddpm_tiny), *paths]) == 0
    capsys.readouterr()
    assert main(["run", "--spec", str(ddpm_tiny), "--dry-run", *paths]) == 0
    after = capsys.readouterr().out
    assert "6 cell(s): 6 finished, 0 to run; 2 fit(s): 1 cached, 0 to fit; 4 replica(s): 4 cached, 0 to generate" in after
