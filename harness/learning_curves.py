"""Learning curves over the real-data axis, and the figures derived from them.

Built from finished cell records (a run folder, or the leaderboard's copies), for ``cxrbench
show`` and the leaderboard alike. Definitions (quoted in leaderboard/README.md):

* **curve point**: a configuration's AUROC at one real-data size, the mean over its seeds with a
  95% interval pooling the test-set bootstrap and the seed-to-seed variation (Rubin's rules,
  :mod:`cxrbench.aggregate`); its x is the number of real training images the size gave.
* **gain**: AUROC minus real-only AUROC at the same size, paired per seed (DeLong on the same test
  patients), pooled over seeds; with the number of seeds significantly better / worse.
* **content gain** (supplemented only): AUROC minus that of real + r x *noise* images at the same
  size, ratio and seed (the noise control): what the synthetic images' content adds beyond their
  number. The plain reading uses it.
* **real-image equivalent**: the number of real images at which the real-only curve (made
  monotone by isotonic regression, linear in log n) reaches the row's AUROC, with an interval by
  parametric bootstrap of both (:mod:`cxrbench.evaluation.curves`); "> N" / "< n" outside the
  measured sizes.
* **floor, ceiling, utility**: at each size, a supplemented or synthetic-only row is read between
  the ``noise`` row (floor) and the ``real`` row (ceiling) of the same protocol, ratio and size:
  utility = (AUROC - floor) / (ceiling - floor), shown only when the ceiling is clearly above the
  floor (:func:`cxrbench.aggregate.utility_between`).
* **saturation size**: for one (protocol, generator, ratio), the smallest size from which every
  larger size's gain interval covers 0 (``None``: the largest size still shows a gain or a loss).

Curves are grouped by everything a comparison must hold fixed: dataset, image size, classifier,
schedule, the cell's context hash and the test set. Every size is tested on the same test set.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable

from cxrbench.aggregate import aggregate, config_key
from cxrbench.subsets import size_text

REAL_ONLY = "real-only.v1"


def _group_key(rec: dict, test_set: str) -> tuple:
    spec = rec.get("spec") or {}
    protocol, _, _, schedule, context, _ = config_key(rec)
    return ((spec.get("dataset") or {}).get("name"), spec.get("size"),
            (spec.get("classifier") or {}).get("name"), schedule, context, test_set)


def _pooled(paired: dict | None) -> dict | None:
    """A pooled paired difference as plain numbers (mean, ci, seeds better / worse, p per seed)."""
    if not paired:
        return None
    d = paired["delta_auroc"]
    return {"mean": d["mean"], "ci": d.get("ci"), "seeds_better": paired["seeds_better"],
            "seeds_worse": paired["seeds_worse"], "n_seeds": paired["n_seeds"], "p_values": paired["p_values"]}


def learning_curves(records: Iterable[dict], cards_of: Callable[[list[dict]], list[str]] | None = None) -> list[dict]:
    """One entry per curve group with a real-data axis: its real-only curve, every other
    configuration's points (gain, content gain, real-image equivalent) and saturation sizes.
    ``cards_of(records)`` (the leaderboard's, cxrbench.cards.card_finder) gives each point the
    generator cards of the fits behind it (``cards``; empty without it)."""
    from cxrbench.evaluation.curves import equivalent_interval, real_image_equivalent, saturation_size
    from cxrbench.external_validity import add_references

    records = [r for r in records if "real_data" in (r.get("cell") or {})]
    n_of = {}  # (group minus test set, size) -> real training images
    by_config: dict[tuple, list[dict]] = {}
    for rec in records:
        if rec.get("status") == "ok" and rec.get("real_data"):
            n_of[(_group_key(rec, "")[:-1], rec["cell"]["real_data"])] = rec["real_data"]["n_train"]
        by_config.setdefault(config_key(rec), []).append(rec)
    groups: dict[tuple, dict] = {}
    for recs in by_config.values():
        for row in aggregate(recs):
            auc = row["metrics"].get("auroc")
            if not auc or row["test_set"] is None:
                continue
            key = _group_key(recs[0], row["test_set"])
            n = n_of.get((key[:-1], row["real_data"]))
            if n is None:
                continue
            point = {"protocol": row["protocol"], "generator": row["generator"], "ratio": row["ratio"],
                     "real_data": row["real_data"], "size_text": size_text(row["real_data"]), "n": n,
                     "auroc": auc["mean"], "ci": auc.get("ci"), "sd": auc.get("sd"),
                     "se": math.sqrt(auc["total_var"]), "n_seeds": auc["n_seeds"],
                     "gain": _pooled(row.get("vs_real_only")), "content_gain": _pooled(row.get("vs_noise_control")),
                     "cards": cards_of(recs) if cards_of else []}
            group = groups.setdefault(key, {"dataset": key[0], "image_size": key[1], "classifier": key[2],
                                            "schedule": key[3], "context": key[4], "test_set": key[5],
                                            "real_only": [], "points": []})
            group["real_only" if row["protocol"] == REAL_ONLY else "points"].append(point)
    out = []
    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        group = groups[key]
        curve = sorted(group["real_only"], key=lambda p: p["n"])
        group["real_only"] = curve
        # at each size, every generator beside the floor (noise) and ceiling (real) of that size
        group["points"].sort(key=lambda p: (p["protocol"], p["ratio"], p["n"], p["generator"]))
        sizes, means, ses = [p["n"] for p in curve], [p["auroc"] for p in curve], [p["se"] for p in curve]
        for p in group["points"]:
            if len(curve) < 2:
                p["equivalent"] = None
                continue
            eq = real_image_equivalent(sizes, means, p["auroc"])
            p["equivalent"] = {"n": eq.n, "bound": eq.bound, "text": eq.text(),
                               **equivalent_interval(sizes, means, ses, p["auroc"], p["se"])}
        # each row between the floor (noise) and ceiling (real) of its own protocol, ratio and SIZE
        add_references(group["points"], lambda p: p["auroc"], lambda p: (p.get("ci") or [None])[0],
                       same=lambda p: (p["protocol"], p["ratio"], p["n"]))
        group["saturation"] = []
        for config in sorted({(p["protocol"], p["generator"], p["ratio"]) for p in group["points"]}):
            pts = [p for p in group["points"] if (p["protocol"], p["generator"], p["ratio"]) == config]
            cis = [tuple(p["gain"]["ci"]) if p["gain"] and p["gain"].get("ci") else None for p in pts]
            if len(pts) < 2 or None in cis:
                continue
            size = saturation_size([p["n"] for p in pts], cis)
            group["saturation"].append({"protocol": config[0], "generator": config[1], "ratio": config[2],
                                        "saturation_n": size, "sizes": [p["n"] for p in pts],
                                        "gain_at_largest": max(pts, key=lambda p: p["n"])["gain"]})
        out.append(group)
    return out


def _references_text(p: dict) -> str:
    if p["generator"] in ("noise", "real") or (p.get("floor") is None and p.get("ceiling") is None):  # real-only: none
        return ""
    refs = " / ".join("-" if v is None else f"{v:.3f}" for v in (p["floor"], p["ceiling"]))
    return (f"{p['utility']:.2f} " if p["utility"] is not None else "- ") + f"({refs})"


def _diff(d: dict | None) -> str:
    if not d:
        return ""
    ci = f" [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]" if d.get("ci") else ""
    return f"{d['mean']:+.3f}{ci} ({d['seeds_better']}+/{d['seeds_worse']}- of {d['n_seeds']})"


def _interval(eq: dict | None) -> str:
    if not eq:
        return ""
    return f"{eq['text']} [{eq['lo_text']}, {eq['hi_text']}]"


def _worth(p: dict) -> str:
    """The real-image equivalent in a sentence; with real-only at fewer than two sizes there is no
    curve to read it from, and the sentence says so instead of leaving a blank."""
    if not p.get("equivalent"):
        return "no real-image equivalent (real-only is measured at fewer than two sizes)"
    return f"worth {_interval(p['equivalent'])} real images"


TABLE_HEADERS = ["protocol", "generator", "r", "real data", "n real", "seeds", "AUROC [95% CI]",
                 "gain vs real-only [CI] (seeds +/-)", "content gain vs real + r x noise [CI] (seeds +/-)",
                 "worth (real images) [CI]", "utility (floor / ceiling)"]


def table_points(group: dict) -> list[dict]:
    """The points of one curve group in table order: real-only first, then every configuration by size."""
    return group["real_only"] + group["points"]


def table_rows(group: dict) -> list[list[Any]]:
    """The table of one curve group, a line per :func:`table_points` point."""
    rows = []
    for p in table_points(group):
        ci = f" [{p['ci'][0]:.3f}, {p['ci'][1]:.3f}]" if p.get("ci") else ""
        rows.append([p["protocol"], p["generator"], f"{p['ratio']:g}", p["size_text"], p["n"], p["n_seeds"],
                     f"{p['auroc']:.3f}{ci}", _diff(p["gain"]), _diff(p["content_gain"]),
                     _interval(p.get("equivalent")), _references_text(p)])
    return rows


def _arm(p: dict) -> str:
    """A row's name in a sentence: "ldm r = 3" when added to the real images, "synthetic-only ldm" when
    alone ("r" is a replica count only where synthetic images are added to real ones)."""
    if str(p.get("protocol", "")).startswith("synthetic-only"):
        return f"synthetic-only {p['generator']}"
    return f"{p['generator']} r = {p['ratio']:g}"


def _scale_sentence(n: int, text: str, p: dict) -> str:
    """Where one row sits between the floor and the ceiling of its size (or which is missing)."""
    head = f"At {n:,} real images ({text}), {_arm(p)} scores {p['auroc']:.3f}"
    if p["floor"] is None or p["ceiling"] is None:
        missing = " and ".join(w for w, v in (("floor (noise)", p["floor"]), ("ceiling (real)", p["ceiling"]))
                               if v is None)
        verb = "are" if " and " in missing else "is"
        return head + f"; its {missing} at this size {verb} not measured yet, so it has no utility."
    if p["ceiling"] <= p["floor"]:
        return head + (f"; at this size and r the ceiling (real) {p['ceiling']:.3f} is not above the floor (noise) "
                       f"{p['floor']:.3f}, so there is no scale to read.")
    refs = f"the floor (noise) {p['floor']:.3f} and the ceiling (real) {p['ceiling']:.3f}"
    # a row can sit outside its references (above a ceiling that is not clearly above the floor)
    where = ("above both" if p["auroc"] > p["ceiling"] else "below both" if p["auroc"] < p["floor"] else "between")
    scale = f"{where} {refs}"
    if p["utility"] is None:
        return head + f", {scale}: the ceiling is not clearly above the floor, so there is no scale to read."
    return head + f", {scale}: utility {p['utility']:.2f}."


def _ceiling_sentence(n: int, text: str, p: dict) -> str:
    """The ``real`` row (the size's own images again) below the noise control: say what that means."""
    ci = f" [{p['ci'][0]:.3f}, {p['ci'][1]:.3f}]" if p.get("ci") else ""
    return (f"At {n:,} real images ({text}), the size's own images added again (real r = {p['ratio']:g}) score "
            f"{p['auroc']:.3f}{ci}, below real + the same number of noise images ({_diff(p['content_gain'])}): under "
            "an equal budget, noise images help more than repeated real ones, so `real` is no ceiling at this size; "
            "read the generator rows against real-only and the noise control.")


def _sizes_behind(measured: list, curve_sizes: set) -> str:
    """Which sizes a saturation finding rests on, when the configuration misses some of the real-only
    curve's sizes: "from 47" read over 47, 234 and 1,175 says nothing about the sizes in between."""
    measured = sorted(set(measured))
    if len(measured) >= len(curve_sizes):
        return ""
    return f" (measured at {len(measured)} of the {len(curve_sizes)} sizes: {', '.join(f'{int(n):,}' for n in measured)})"


def _excludes_zero(d: dict | None, sign: int) -> bool:
    return bool(d and d.get("ci") and (d["ci"][0] > 0 if sign > 0 else d["ci"][1] < 0))


def plain_reading(group: dict) -> list[str]:
    """What the curve group says, one sentence per finding, whatever the answer."""
    lines = []
    sizes = sorted({(p["n"], p["size_text"]) for p in group["points"]})
    for n, text in sizes:
        supplemented = [p for p in group["points"] if p["n"] == n and p["protocol"].startswith("supplemented")]
        here = [p for p in supplemented if p["generator"] not in ("noise", "real")]  # the references are read apart
        lines += [_ceiling_sentence(n, text, p) for p in supplemented
                  if p["generator"] == "real" and _excludes_zero(p["content_gain"], -1)]
        helped = [p for p in here if _excludes_zero(p["content_gain"], +1)]
        hurt = [p for p in here if _excludes_zero(p["content_gain"], -1)]
        bought = [p for p in here if _excludes_zero(p["gain"], +1) and not _excludes_zero(p["content_gain"], +1)]
        if not here:
            continue
        lines += [_scale_sentence(n, text, p) for p in here if p["generator"] != "real"]
        if helped:
            lines.append(f"At {n:,} real images ({text}), " + ", ".join(
                f"{_arm(p)} beats the same number of noise images by {_diff(p['content_gain'])} AUROC "
                f"({_worth(p)})" for p in helped) + ".")
        if bought:
            lines.append(f"At {n:,} real images ({text}), the gain of " + ", ".join(_arm(p) for p in bought)
                         + " over real-only is not larger than that of noise images: it is the extra training, "
                           "not the synthetic content.")
        if hurt:
            lines.append(f"At {n:,} real images ({text}), " + " and ".join(
                f"{_arm(p)} ({_diff(p['content_gain'])})" for p in hurt)
                + (" score" if len(hurt) > 1 else " scores") + " below real + the same number of noise images: "
                "the synthetic content hurts beyond what the number of images does.")
        if not helped and not bought and not hurt:
            lines.append(f"At {n:,} real images ({text}), no generator's supplemented set differs from the "
                         "noise control: no generator helps here.")
    for p in group["points"]:
        if p["protocol"].startswith("synthetic-only") and p["generator"] not in ("noise", "real"):
            lines.append(f"Synthetic-only at {p['n']:,} real images ({p['size_text']}): {p['generator']} scores "
                         f"{p['auroc']:.3f}, {_worth(p)}.")
            lines.append(_scale_sentence(p["n"], p["size_text"], p))
    curve_sizes = {p["n"] for p in group["real_only"]}  # every gain is paired with one of these
    for s in group["saturation"]:
        head = f"{s['generator']} ({s['protocol']}, r = {s['ratio']:g}): gain over real-only"
        if s["saturation_n"] is not None:
            lines.append(f"{head} saturates from {int(s['saturation_n']):,} real images{_sizes_behind(s['sizes'], curve_sizes)}.")
        else:
            # say which way it still differs: "still differs" after a loss reads like a gain yet to fade
            gain = s["gain_at_largest"]
            side = "above" if _excludes_zero(gain, +1) else "below"
            lines.append(f"{head} does not saturate within the measured sizes: at its largest, {int(max(s['sizes'])):,} "
                         f"real images, it is still {side} real-only ({_diff(gain)})"
                         f"{_sizes_behind(s['sizes'], curve_sizes)}.")
    return lines


def print_curves(records: Iterable[dict]) -> None:
    """The learning-curve section of ``cxrbench show`` (nothing without a real-data axis)."""
    from tabulate import tabulate

    for group in learning_curves(records):
        print(f"\nlearning curve: {group['dataset']} {group['image_size']} px, {group['classifier']} "
              f"{group['schedule']}, test set {group['test_set']} (same test set at every size)")
        print(tabulate(table_rows(group), headers=TABLE_HEADERS))
        for line in plain_reading(group):
            print(f"  - {line}")
