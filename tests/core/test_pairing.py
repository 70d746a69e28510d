"""Paired comparisons stay tied to the reference run they were made against (cxrbench.pairing)."""

from cxrbench.pairing import outdated_comparisons

REAL_ONLY = "real-only.v1__none__r0__real=0.05__budget-quick__seed1__cea7fcdf"
NOISE = "supplemented.v1__noise__r1__real=0.05__budget-quick__seed1__cea7fcdf"


def reference(cell_id, auroc, status="ok"):
    return {"cell_id": cell_id, "status": status,
            "metrics": {"kermany:test": {"labels": {"pneumonia": {"auroc": auroc}}, "macro": {"auroc": auroc}}}}


def cell(base_auroc, control_auroc=None):
    rec = {"comparisons": {"kermany:test": {"baseline": REAL_ONLY, "labels": {
        "pneumonia": {"auroc": 0.91, "auroc_baseline": base_auroc, "delta": 0.91 - base_auroc}}}}}
    if control_auroc is not None:
        rec["vs_noise_control"] = {"kermany:test": {"baseline": NOISE, "labels": {
            "pneumonia": {"auroc": 0.91, "auroc_baseline": control_auroc}}}}
    return rec


def test_a_comparison_made_against_the_reference_as_it_stands_is_current():
    refs = {REAL_ONLY: reference(REAL_ONLY, 0.9006), NOISE: reference(NOISE, 0.8976)}
    # DeLong's AUC and the rank AUROC of the same predictions differ only in the last bits
    assert outdated_comparisons(cell(0.9006 + 1e-12, 0.8976), refs.get) == []


def test_a_reference_re_run_since_makes_the_comparison_outdated_and_says_by_how_much():
    refs = {REAL_ONLY: reference(REAL_ONLY, 0.8886), NOISE: reference(NOISE, 0.8976)}
    (why,) = outdated_comparisons(cell(0.9006, 0.8976), refs.get)
    assert why == ("compared with an earlier run of real-only seed1 on kermany:test "
                   "(AUROC pneumonia 0.9006 then, 0.8886 now)")
    refs[NOISE] = reference(NOISE, 0.9)
    whys = outdated_comparisons(cell(0.8886, 0.8976), refs.get)
    assert whys == ["compared with an earlier run of noise r1 seed1 on kermany:test "
                    "(AUROC pneumonia 0.8976 then, 0.9000 now)"]


def test_an_absent_or_failed_reference_is_not_judged():
    assert outdated_comparisons(cell(0.9006), {}.get) == []
    assert outdated_comparisons(cell(0.9006), {REAL_ONLY: reference(REAL_ONLY, 0.5, status="failed")}.get) == []
    assert outdated_comparisons({"status": "ok"}, {}.get) == []  # a real-only cell compares with nothing


def test_a_segmentation_comparison_is_judged_by_the_reference_mean_dice():
    seg_ref = {"status": "ok", "metrics": {"jsrt:test": {"macro": {"dice": 0.9713}, "classes": {}}}}
    rec = {"comparisons": {"jsrt:test": {"baseline": REAL_ONLY, "baseline_mean_dice": 0.9713, "mean_dice": 0.96}}}
    assert outdated_comparisons(rec, {REAL_ONLY: seg_ref}.get) == []
    seg_ref["metrics"]["jsrt:test"]["macro"]["dice"] = 0.9650
    (why,) = outdated_comparisons(rec, {REAL_ONLY: seg_ref}.get)
    assert "(Dice 0.9713 then, 0.9650 now)" in why
