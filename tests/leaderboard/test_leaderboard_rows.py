"""Leaderboard rows and the display schema: what shares a row, what a row says about its seeds,
which way it sorts, and that a bad schema is a one-line error naming the key."""

from __future__ import annotations

import copy

import pytest
import yaml

from cxrbench.errors import ConfigError
from cxrbench.leaderboard.build import build_rows, display_columns
from cxrbench.leaderboard.schema import DEFAULT_SCHEMA, load_schema, schema_from_data


@pytest.fixture(scope="module")
def rows(mixed_records):
    return build_rows(mixed_records, load_schema())


def by_label(rows, label, protocol="synthetic-only.v2"):
    found = [r for r in rows if r["generator"] == label and r["protocol"] == protocol]
    assert len(found) == 1, [(r["generator"], r["protocol"]) for r in rows]
    return found[0]


def test_protocol_versions_never_share_a_row(rows):
    noise = [r for r in rows if r["generator"] == "noise" and r["protocol"].startswith("synthetic-only")]
    assert sorted(r["protocol"] for r in noise) == ["synthetic-only.v1", "synthetic-only.v2"]
    for r in noise:
        assert all(p.split("/")[-1].startswith(r["protocol"] + "__") for p in r["records"]), r["records"]
        assert r["seeds"] == "2/2" and r["status"] == "ok"


def test_each_row_lists_its_records_by_seed(rows):
    row = by_label(rows, "noise")
    assert row["records"] == sorted(row["records"], key=lambda p: int(p.split("__seed")[1].split("__")[0]))
    assert [p.split("__seed")[1][0] for p in row["records"]] == ["0", "1"]
    assert all(p.startswith("mixed-run/cells/") and p.endswith(".json") for p in row["records"])


def test_failed_truncated_and_incomplete_are_shown_with_their_status(rows):
    broken = by_label(rows, "broken")
    assert broken["status"].startswith("failed (2/2 seeds): RuntimeError: simulated failure in fit")
    assert "second line" not in broken["status"] and broken["seeds"] == "0/2"
    assert broken["values"]["auroc"] is None and len(broken["records"]) == 2
    trunc = by_label(rows, "trunc")
    assert "truncated fit (2 seed(s); 5/100 steps)" in trunc["status"]
    flaky = by_label(rows, "flaky")
    assert flaky["seeds"] == "2/3" and flaky["status"].startswith("incomplete: 2/3 seeds ok (failed: seed 2)")
    assert flaky["values"]["auroc"]["n_seeds"] == 2 and len(flaky["records"]) == 3


def test_quality_and_cost_are_means_over_ok_seeds(rows, mixed_records):
    row = by_label(rows, "noise")
    recs = [rec for path, rec in mixed_records if path in row["records"]]
    fds = [r["generator"]["quality"]["features"]["domain"]["fd"] for r in recs]
    assert row["values"]["domain_fd"] == pytest.approx(sum(fds) / len(fds), rel=1e-12)
    assert row["values"]["device"] == "cpu"
    real_only = next(r for r in rows if r["protocol"] == "real-only.v1")
    assert real_only["values"]["domain_fd"] is None and real_only["values"]["seconds_per_image"] is None


def test_older_records_without_quality_or_cost_show_a_dash(mixed_records):
    from cxrbench.leaderboard.render import render_markdown

    old = []
    for path, rec in mixed_records:
        rec = copy.deepcopy(rec)
        if rec.get("generator"):
            rec["generator"].pop("quality", None)
            rec["generator"].pop("cost", None)
        old.append((path, rec))
    schema = load_schema()
    rows = build_rows(old, schema)
    assert all(r["values"]["domain_fd"] is None and r["feature_network"] is None for r in rows)
    assert "| -" in render_markdown(rows, display_columns(rows, schema), [])


def test_a_different_feature_network_gets_its_own_row_and_column(mixed_records):
    changed = []
    for path, rec in mixed_records:
        rec = copy.deepcopy(rec)
        if rec["cell"]["protocol"] == "synthetic-only.v1" and rec.get("generator"):
            rec["generator"]["quality"]["features"]["domain"]["identity"] = "reference-cnn-v9:other"
        changed.append((path, rec))
    schema = load_schema()
    rows = build_rows(changed, schema)
    cols = {c.id: c for c in display_columns(rows, schema)}
    assert "domain_fd" not in cols
    split = [c for c in cols if c.startswith("domain_fd@")]
    assert len(split) == 2 and any("[reference-cnn-v9:other]" in cols[c].header for c in split)
    v1 = by_label(rows, "noise", "synthetic-only.v1")
    assert cols["domain_fd@reference-cnn-v9:other"].value(v1) == v1["values"]["domain_fd"]
    other = next(c for c in split if "v9" not in c)
    assert cols[other].value(v1) is None  # never in the other network's column


def test_sort_direction_follows_higher_is_better(mixed_records):
    data = yaml.safe_load(DEFAULT_SCHEMA.read_text())

    def v2_order(higher):
        d = copy.deepcopy(data)
        next(c for c in d["columns"] if c["id"] == "auroc")["higher_is_better"] = higher
        rows = build_rows(mixed_records, schema_from_data(d, "t"))
        return [r["values"]["auroc"]["mean"] if r["values"]["auroc"] else None
                for r in rows if r["protocol"] == "synthetic-only.v2"]

    best_first, worst_first = v2_order(True), v2_order(False)
    scored = [x for x in best_first if x is not None]
    assert scored == sorted(scored, reverse=True) and len(scored) >= 4
    assert [x for x in worst_first if x is not None] == sorted(scored)
    assert best_first[-1] is None and worst_first[-1] is None  # the failed row last either way


def test_the_same_input_in_any_order_gives_the_same_rows(mixed_records):
    schema = load_schema()
    assert build_rows(list(reversed(mixed_records)), schema) == build_rows(mixed_records, schema)


def test_a_cell_in_two_folders_counts_once(mixed_records):
    doubled = mixed_records + [(p.replace("mixed-run/", "copy/"), r) for p, r in mixed_records]
    rows = build_rows(doubled, load_schema())
    noise = by_label(rows, "noise")
    assert noise["seeds"] == "2/2" and len(noise["ignored_records"]) == 2


@pytest.mark.parametrize("edit, where, what", [
    (lambda d: d["columns"][0].update(sourc="row.generator"), "columns[0].sourc", "unknown key"),
    (lambda d: d.update(colour="red"), "colour", "unknown key"),
    (lambda d: d["columns"][11].update(source="aggregate.metrics.auprc.mean"), "columns[11].source",
     "unknown column source"),
    (lambda d: d["columns"][15].update(source="record.generatr.quality.fd"), "columns[15].source",
     "unknown column source"),
    (lambda d: d["columns"][0].update(source="row.nope"), "columns[0].source", "unknown column source"),
    (lambda d: d["columns"][0].update(format="fixed"), "columns[0].format", "unknown format"),
    (lambda d: d.update(sort={"column": "nope"}), "sort.column", "not a column id"),
    (lambda d: d["group_by"].remove("classifier"), "group_by", "must include classifier"),
    (lambda d: d.update(schema_version=2), "schema_version", "not supported"),
    (lambda d: d["columns"][0].update(higher_is_better="yes"), "columns[0].higher_is_better", "expected"),
])
def test_a_bad_schema_is_a_one_line_error_naming_the_key(edit, where, what):
    data = yaml.safe_load(DEFAULT_SCHEMA.read_text())
    edit(data)
    with pytest.raises(ConfigError) as info:
        schema_from_data(data, "my-schema.yaml")
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"my-schema.yaml: {where}:") and what in message, message


def test_the_cli_prints_a_bad_schema_as_one_line(tmp_path, mixed_run, capsys):
    from cxrbench.cli import main

    data = yaml.safe_load(DEFAULT_SCHEMA.read_text())
    data["columns"][2]["source"] = "row.rate"
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    code = main(["leaderboard", str(mixed_run), "--out", str(tmp_path / "lb"), "--schema", str(tmp_path / "s.yaml")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "columns[2].source" in err and "row.rate" in err
    assert not (tmp_path / "lb").exists()


def test_a_row_says_how_many_generator_fits_its_seeds_stand_on(mixed_records):
    """One shared fit, a fit per seed (fit_seed: per-seed), or - flagged in the status - a row
    meant to share one fit whose seeds stand on different fits (the generator changed between
    the runs of its seeds)."""
    v2 = [rec for _, rec in mixed_records if rec["cell_id"].startswith("synthetic-only.v2__noise__")]
    derived = []
    for label, per_seed, policy in (("shared-fit", False, "shared"), ("refit", True, "per-seed"),
                                    ("changed", True, "shared"), ("unsaid", True, None)):
        for rec in v2:  # the noise records as a learned generator's, one fit or one per seed
            new = copy.deepcopy(rec)
            new["cell_id"] = new["cell_id"].replace("__noise__", f"__{label}__")
            new["cell"]["generator"]["label"] = new["generator"]["label"] = label
            new["generator"]["capabilities"] = {**new["generator"]["capabilities"], "needs_training": True}
            new["generator"]["fit_key"] = f"key-{rec['cell']['seed']}" if per_seed else "key-0"
            if policy:
                new["spec"]["generators"] = [{"name": "noise", "label": label, "fit_seed": policy}]
            derived.append((f"x/cells/{new['cell_id']}.json", new))
    rows = build_rows(list(mixed_records) + derived, load_schema())
    assert by_label(rows, "shared-fit")["values"]["fits"] == "1 (shared)"
    assert by_label(rows, "refit")["values"]["fits"] == "2, one per seed"
    assert by_label(rows, "unsaid")["values"]["fits"] == "2, one per seed"  # a record that does not say
    changed = by_label(rows, "changed")["values"]
    assert changed["fits"] == "2, mixed" and "mixed fits: its seeds stand on 2 different fits" in changed["status"]
    for label in ("shared-fit", "refit", "unsaid"):
        assert "mixed" not in by_label(rows, label)["values"]["status"]
    assert by_label(rows, "noise")["values"]["fits"] == "-"  # noise trains nothing


def test_a_seed_compared_with_an_earlier_run_of_its_reference_is_flagged(mixed_records):
    """A real-only cell re-run since (on another CPU, say) scores differently: the seeds whose
    stored comparisons were made against its earlier run say so in their row's status."""
    rows = build_rows(list(mixed_records), load_schema())
    assert not any("outdated" in r["values"]["status"] for r in rows)
    records = copy.deepcopy(list(mixed_records))
    (ref,) = [rec for _, rec in records if rec["cell_id"].startswith("real-only") and rec["cell"]["seed"] == 0]
    test_set = next(iter(ref["metrics"]))
    label, block = next(iter(ref["metrics"][test_set]["labels"].items()))
    was = block["auroc"]
    block["auroc"] = was - 0.012
    rows = build_rows(records, load_schema())
    noise = by_label(rows, "noise")["values"]["status"]
    assert (f"outdated comparison (seed 0): compared with an earlier run of real-only seed0 on {test_set} "
            f"(AUROC {label} {was:.4f} then, {was - 0.012:.4f} now); re-run the seed(s)") in noise
    assert "seed 1" not in noise.split("outdated comparison")[1]


def test_seconds_per_image_counts_what_a_filter_made_the_generator_redraw(mixed_records):
    """The s/image column is per image *delivered*: a record made before the cost block carried
    that figure gets it from its parts (draw seconds, the cell's post-processing seconds, the
    images delivered); one that carries it is taken as is; no chain: the draw seconds."""
    from cxrbench.quality.cost import seconds_per_delivered_image, usd_per_delivered_image

    path, rec = next((p, r) for p, r in mixed_records if r["cell_id"].startswith("synthetic-only.v2__noise__"))
    plain = copy.deepcopy(rec)
    plain["generator"]["cost"] = {"generate_seconds_per_image": 0.2}
    plain["generator"]["synthetic"] = {"n": 900, "tuning_slice": {"n": 100}}
    plain["timings"]["postprocess_s"] = 0.0
    plain["generator"]["postprocessing"] = None
    assert seconds_per_delivered_image(plain) == 0.2
    old = copy.deepcopy(plain)  # a proxy-filtered record of before: 22% dropped, 400 s of chain
    old["generator"]["postprocessing"] = {"topup": {"rejected_first_pass": 0.22}}
    old["timings"]["postprocess_s"] = 400.0
    assert seconds_per_delivered_image(old) == pytest.approx(0.2 + 400.0 / 1000)
    new = copy.deepcopy(old)
    new["generator"]["cost"]["seconds_per_image_delivered"] = 0.55
    assert seconds_per_delivered_image(new) == 0.55
    rows = build_rows([("a/cells/x.json", old)], load_schema())
    assert rows[0]["values"]["seconds_per_image"] == pytest.approx(0.6)
    # a hosted model bills every draw: 300 top-up draws for 1,000 images delivered
    hosted = copy.deepcopy(old)
    hosted["generator"]["cost"]["usd_per_image"] = 0.039
    hosted["generator"]["postprocessing"] = {"topup": {"generated": 270}, "tuning_topup": {"generated": 30}}
    assert usd_per_delivered_image(hosted) == pytest.approx(0.039 * 1.3)
    assert usd_per_delivered_image(plain) is None
    rows = build_rows([("a/cells/x.json", hosted)], load_schema())
    assert rows[0]["values"]["usd_per_image"] == pytest.approx(0.039 * 1.3)


def test_the_cost_block_counts_a_chains_seconds_and_draws():
    from cxrbench.quality.cost import cost_record

    stats = {"n": 900, "seconds_per_image_made": 0.2, "tuning_slice": {"n": 100},
             "generator": {"price_per_image_usd": 0.05}}
    pp = {"topup": {"generated": 200}, "tuning_topup": {"generated": 50}}
    cost = cost_record({}, stats, "cpu", pp, {"postprocess_s": 130.0, "postprocess_prepare_s": 30.0})
    assert cost["postprocess_seconds"] == 100.0
    assert cost["seconds_per_image_delivered"] == pytest.approx(0.2 + 100.0 / 1000)
    assert cost["usd_per_image"] == 0.05 and cost["usd_per_image_delivered"] == pytest.approx(0.05 * 1.25)
    bare = cost_record({}, stats, "cpu")  # no chain: a delivered image is a drawn one
    assert bare["postprocess_seconds"] is None and bare["seconds_per_image_delivered"] == 0.2
    assert bare["usd_per_image_delivered"] == 0.05


def test_an_unknown_derived_source_is_a_one_line_error():
    data = yaml.safe_load(DEFAULT_SCHEMA.read_text())
    data["columns"][0]["source"] = "derived.cost_per_dream"
    with pytest.raises(ConfigError) as info:
        schema_from_data(data, "s.yaml")
    assert "columns[0].source" in str(info.value) and "seconds_per_delivered_image" in str(info.value)


def test_utility_ratio_places_a_row_between_the_noise_floor_and_the_real_images(mixed_records, derive):
    """(AUROC - the `noise` row's) / (the `real` row's - the `noise` row's), within the same
    protocol and settings; None where the protocol lacks either reference (v1 here has no `real`
    row; real-only and supplemented have neither)."""
    reals = []
    for path, rec in mixed_records:
        if rec["cell_id"].startswith("synthetic-only.v2__noise__"):
            real = derive(rec, "real", "real")
            real["cell"]["generator"]["name"] = real["generator"]["name"] = "real"
            for metrics in real["metrics"].values():
                metrics["macro"]["auroc"] = 0.9
            reals.append((path.replace("__noise__", "__real__"), real))
            # a filtered row: its chain gives it another context hash; the references still apply
            chained = derive(rec, "pf", "noise+pf")
            chained["cell"]["generator"]["postprocess"] = [{"name": "proxy-filter", "options": {}}]
            chained["cell_id"] = chained["cell_id"].rsplit("__", 1)[0] + "__0ther0ne"
            for metrics in chained["metrics"].values():
                metrics["macro"]["auroc"] = 0.8
            reals.append((path.replace("__noise__", "__pf__"), chained))
    rows = build_rows(list(mixed_records) + reals, load_schema())
    chained = by_label(rows, "noise+pf")
    assert chained["chain"] == "proxy-filter" and chained["context"] != by_label(rows, "real")["context"]
    noise, ceiling = by_label(rows, "noise"), by_label(rows, "real")
    floor = noise["aggregate"]["metrics"]["auroc"]["mean"]
    assert ceiling["aggregate"]["metrics"]["auroc"]["mean"] == pytest.approx(0.9) and floor < 0.8
    assert chained["values"]["utility_ratio"] == pytest.approx((0.8 - floor) / (0.9 - floor), rel=1e-12)
    assert (chained["values"]["floor"], chained["values"]["ceiling"]) == (pytest.approx(floor), pytest.approx(0.9))
    assert noise["values"]["utility_ratio"] == pytest.approx(0.0, abs=1e-12)
    assert ceiling["values"]["utility_ratio"] == pytest.approx(1.0)
    assert by_label(rows, "noise", "synthetic-only.v1")["values"]["utility_ratio"] is None
    assert all(r["values"]["utility_ratio"] is None for r in rows if not r["protocol"].startswith("synthetic-only.v2"))
    # the Reference column says which rows the others are read between
    assert ceiling["values"]["reference"] == "ceiling" and noise["values"]["reference"] == "floor"
    assert by_label(rows, "noise", "synthetic-only.v1")["values"]["reference"] == "floor"
    assert chained["values"]["reference"] is None  # a filtered noise set is a generator row, not the floor
    assert {r["values"]["reference"] for r in rows if r["protocol"].startswith("real-only")} == {"baseline"}
    assert {r["values"]["reference"] for r in rows if r["protocol"].startswith("supplemented")} == {None}


def test_each_test_set_is_read_between_its_own_floor_and_ceiling(mixed_records, derive):
    """On a shifted external set the noise floor sits below 0.5: the utility there uses that
    set's floor and ceiling, never 0.5 and never the internal set's."""
    (path, noise), = [(p, r) for p, r in mixed_records if r["cell_id"].startswith("synthetic-only.v2__noise__seed0")] \
        or [next((p, r) for p, r in mixed_records if r["cell_id"].startswith("synthetic-only.v2__noise__"))]
    internal = next(iter(noise["metrics"]))
    external = "elsewhere:all"
    made = []
    for token, plugin, values in (("noise", "noise", (0.70, 0.35)), ("real", "real", (0.90, 0.75)),
                                  ("g", "ldm", (0.80, 0.55))):
        rec = derive(noise, token, token)
        rec["cell"]["generator"]["name"] = rec["generator"]["name"] = plugin
        rec["metrics"][external] = copy.deepcopy(rec["metrics"][internal])
        for tname, v in zip((internal, external), values):
            rec["metrics"][tname]["macro"]["auroc"] = v
            rec["metrics"][tname]["macro"]["auroc_ci"] = [v - 0.05, v + 0.05]
        made.append((path.replace("__noise__", f"__{token}__"), rec))
    rows = build_rows(made, load_schema())
    g = {r["test_set"]: r["values"] for r in rows if r["generator"] == "g"}
    assert g[internal]["utility_ratio"] == pytest.approx((0.80 - 0.70) / (0.90 - 0.70))
    assert g[external]["utility_ratio"] == pytest.approx((0.55 - 0.35) / (0.75 - 0.35))  # 0.5, not 0.2
    assert (g[external]["floor"], g[external]["ceiling"]) == (pytest.approx(0.35), pytest.approx(0.75))
    # a ceiling not clearly above its floor (its interval reaches down to the floor) gives no scale:
    # no utility, rather than a ratio over a span inside the noise
    real = next(rec for p, rec in made if "__real__" in p)
    real["metrics"][external]["macro"]["auroc_ci"] = [0.30, 0.90]
    rows = build_rows(made, load_schema())
    g = {r["test_set"]: r["values"] for r in rows if r["generator"] == "g"}
    assert g[external]["utility_ratio"] is None and g[internal]["utility_ratio"] == pytest.approx(0.5)


def test_utility_needs_a_ceiling_clearly_above_the_floor():
    from cxrbench.aggregate import utility_between

    assert utility_between(0.8, 0.7, 0.9) == pytest.approx(0.5)
    assert utility_between(0.8, 0.7, 0.9, ceiling_low=0.75) == pytest.approx(0.5)
    assert utility_between(0.615, 0.547, 0.557, ceiling_low=0.408) is None  # the COVID set's supplemented r = 1
    assert utility_between(0.8, 0.7, 0.7) is None and utility_between(None, 0.7, 0.9) is None


def test_a_protocols_latest_version_is_listed_first(rows):
    order = [r["protocol"] for r in rows]
    assert order.index("synthetic-only.v2") < order.index("synthetic-only.v1")
    firsts = list(dict.fromkeys(order))
    assert firsts == ["real-only.v1", "supplemented.v1", "synthetic-only.v2", "synthetic-only.v1"], firsts


def test_a_row_without_a_quality_report_ranks_among_the_others(mixed_records):
    """Older records (no quality block, so no feature network) are ranked by AUROC with the rest
    of their protocol, not listed after them."""
    mixed = []
    for path, rec in mixed_records:
        rec = copy.deepcopy(rec)
        if rec["cell_id"].startswith("synthetic-only.v2__flaky__") and rec.get("generator"):
            rec["generator"].pop("quality", None)
            for metrics in rec["metrics"].values():
                metrics["macro"]["auroc"] = 0.99  # the best row, though without a report
        mixed.append((path, rec))
    rows = [r for r in build_rows(mixed, load_schema()) if r["protocol"] == "synthetic-only.v2"]
    assert by_label(rows, "flaky")["feature_network"] is None and by_label(rows, "noise")["feature_network"]
    scored = [r["values"]["auroc"]["mean"] for r in rows if r["values"]["auroc"]]
    assert scored == sorted(scored, reverse=True) and rows[0]["generator"] == "flaky"
