"""The segmentation section of a leaderboard: ``segmentation.md`` and its part of ``index.html``.

Written only when records of ``task: segmentation`` are present (they are kept out of the
classification table, whose columns are AUROC's). One row per training configuration (dataset,
size, segmenter, schedule, real-data size), protocol, generator and ratio, pooled over seeds with
Rubin's rules on each seed's patient-level bootstrap interval: Dice [CI] and HD95 on the test
split, the paired Dice difference vs real-only and vs the noise control at the same seeds, the
floor (`noise`) and ceiling (`real` pairs) of the same protocol and ratio with the row's utility
between them, and the mask adherence of its synthetic set (Dice of the drawn mask with a learned
lung-field estimate of the image, beside a random pairing).
"""

from __future__ import annotations

FILE = "segmentation.md"
HEADERS = ["Protocol", "Generator", "r", "Seeds", "Dice [95% CI]", "HD95 px [95% CI]", "dDice vs real-only [95% CI]",
           "dDice vs noise control", "Utility (floor 0, ceiling 1)", "Mask adherence (random pairing)"]
#: the page's headline column (cxrbench.leaderboard.table_html): the segmentation table ranks by Dice
HEADLINE = "Dice [95% CI]"
INTRO = ("Lung-field segmentation on real test masks: Dice and the 95th-percentile Hausdorff distance (pixels at the "
         "image size), means over test images with patient-level bootstrap intervals, seeds pooled with Rubin's "
         "rules. dDice: the paired per-image difference at the same seeds. Floor: noise images with real masks; "
         "ceiling: the real pairs through the same protocol. Mask adherence: Dice between each synthetic image's "
         "drawn mask and a lung-field estimate of the image (a small U-Net trained on the real training pairs), "
         "beside the same with images and masks paired at random.")


def segmentation_records(records) -> list[dict]:
    return [r for r in records if "segmenter" in r]


def groups(records: list[dict], cards_of=None) -> list[dict]:
    """[{key, test_set, rows}] per training configuration and test set. ``cards_of(records)``: the
    card paths a row's generator cell links to (cxrbench.cards.card_finder); none without it."""
    from cxrbench.aggregate import DIFFERENCE, NON_NEGATIVE, UNIT
    from cxrbench.external_validity import add_references, pool_seeds

    by: dict[tuple, dict[tuple, list[dict]]] = {}
    for rec in records:
        if rec.get("status") != "ok":
            continue
        cell, spec = rec["cell"], rec.get("spec") or {}
        key = ((rec.get("dataset") or {}).get("name"), spec.get("size"), rec["segmenter"].get("name"),
               cell.get("schedule"), str(cell.get("real_data")) if "real_data" in cell else None)
        gen = cell.get("generator") or {}
        for tname in rec.get("metrics", {}):
            row = (cell.get("protocol"), gen.get("label") or gen.get("name") or "-", gen.get("name"), cell.get("ratio"))
            by.setdefault((key, tname), {}).setdefault(row, []).append(rec)
    out = []
    for (key, tname) in sorted(by, key=lambda k: tuple(str(x) for x in (*k[0], k[1]))):
        rows = []
        for (protocol, label, plugin, ratio), recs in sorted(by[(key, tname)].items(),
                                                             key=lambda kv: (str(kv[0][0]), str(kv[0][1]), kv[0][3] or 0)):
            recs = sorted(recs, key=lambda r: r["cell"]["seed"])
            macro = [r["metrics"][tname]["macro"] for r in recs]
            cmp = [(r.get("comparisons") or {}).get(tname) or {} for r in recs]
            ctl = [(r.get("vs_noise_control") or {}).get(tname) or {} for r in recs]
            adh = [((r.get("generator") or {}).get("masks") or {}) for r in recs]
            own = [a["dice_own_mask"] for a in adh if a.get("dice_own_mask") is not None]
            rnd = [a["dice_random_pairing"] for a in adh if a.get("dice_random_pairing") is not None]
            rows.append({
                "protocol": protocol, "generator": label, "plugin": plugin, "ratio": ratio,
                "seeds": [r["cell"]["seed"] for r in recs], "cards": cards_of(recs) if cards_of else [],
                "dice": pool_seeds([m.get("dice") for m in macro], [m.get("dice_ci") for m in macro], bounds=UNIT),
                "hd95": pool_seeds([m.get("hd95") for m in macro], [m.get("hd95_ci") for m in macro],
                                   bounds=NON_NEGATIVE),
                "vs_real_only": pool_seeds([c.get("difference") for c in cmp], [c.get("difference_ci") for c in cmp],
                                           bounds=DIFFERENCE)
                if all(c.get("difference") is not None for c in cmp) else None,
                "vs_noise": pool_seeds([c.get("difference") for c in ctl], [c.get("difference_ci") for c in ctl],
                                       bounds=DIFFERENCE)
                if all(c.get("difference") is not None for c in ctl) else None,
                "adherence": (sum(own) / len(own), sum(rnd) / len(rnd)) if own and rnd else None,
            })
        add_references(rows, lambda r: (r["dice"] or {}).get("mean"),
                       lambda r: ((r["dice"] or {}).get("ci") or [None])[0])  # the ceiling's lower end
        out.append({"key": key, "test_set": tname, "rows": rows})
    return out


def table_rows(group: dict) -> list[list[str]]:
    from cxrbench.external_validity import fmt_interval

    def ratio(r):
        return "-" if not r["ratio"] else f"{r['ratio']:g}"

    return [[r["protocol"], r["generator"], ratio(r), ",".join(str(s) for s in r["seeds"]), fmt_interval(r["dice"]),
             fmt_interval(r["hd95"]), fmt_interval(r["vs_real_only"], True), fmt_interval(r["vs_noise"], True),
             "-" if r["utility"] is None else f"{r['utility']:.2f}",
             "-" if r["adherence"] is None else f"{r['adherence'][0]:.3f} ({r['adherence'][1]:.3f})"]
            for r in group["rows"]]


def plain_reading(group: dict) -> list[str]:
    from cxrbench.external_validity import interval_sign, fmt_interval

    rows, lines = group["rows"], []
    base = next((r for r in rows if str(r["protocol"]).startswith("real-only")), None)
    if base and base["dice"]:
        lines.append(f"Real-only reaches Dice {fmt_interval(base['dice'])} on {group['test_set']}.")
    for r in rows:
        if r["plugin"] in ("noise", "real") and r["generator"] == r["plugin"] and r["dice"]:
            role = "floor (noise images, real masks)" if r["plugin"] == "noise" else "ceiling (real pairs)"
            where = r["protocol"] + (f" r = {r['ratio']:g}" if r["ratio"] else "")
            lines.append(f"The {role} under {where}: Dice {fmt_interval(r['dice'])}.")
    gens = [r for r in rows if r["plugin"] not in ("noise", "real") and r["plugin"] is not None]
    helped = [r for r in gens if interval_sign(r["vs_real_only"]) > 0]
    if gens and not helped:
        lines.append("No generator raises Dice over real-only beyond its interval here.")
    for r in helped:
        lines.append(f"{r['generator']} ({r['protocol']}, r = {r['ratio']:g}) raises Dice by {fmt_interval(r['vs_real_only'], True)}"
                     + (f"; over the noise control by {fmt_interval(r['vs_noise'], True)}." if r["vs_noise"] else "."))
    for r in gens:
        if r["adherence"] and r["adherence"][0] <= r["adherence"][1] + 0.02:
            lines.append(f"{r['generator']}'s images hardly follow their masks (adherence {r['adherence'][0]:.3f} vs "
                         f"{r['adherence'][1]:.3f} at random pairing): its pairs teach a segmenter little.")
    return lines


def _heading(group: dict) -> str:
    dataset, size, segmenter, schedule, real = group["key"]
    return (f"{dataset}, {size} px, {segmenter} ({schedule}){'' if real is None else f', real data {real}'}, "
            f"test set {group['test_set']}")


def render_markdown(data: list[dict]) -> str:
    from tabulate import tabulate

    from cxrbench.cards import markdown_generator_links

    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["# cxrbench segmentation", "", INTRO, ""]
    for g in data:
        lines += [f"## {cell(_heading(g))}", "",
                  tabulate(markdown_generator_links([[cell(v) for v in r] for r in table_rows(g)], g["rows"]),
                           headers=HEADERS, tablefmt="github", disable_numparse=True), ""]
        lines += [f"- {cell(x)}" for x in plain_reading(g)] + [""]
    return "\n".join(lines).rstrip() + "\n"


def render_html(data: list[dict]) -> list[str]:
    from cxrbench.leaderboard.render import _e
    from cxrbench.leaderboard.table_html import role_of, section_table

    out = ['<h2 id="segmentation">Segmentation</h2>', f"<p>{_e(INTRO)} Also in <a href=\"{FILE}\">{FILE}</a>.</p>"]
    for g in data:
        roles = [role_of(r["protocol"], r["generator"], r["plugin"]) for r in g["rows"]]
        out += [f"<h3>{_e(_heading(g))}</h3>"]
        out += section_table(HEADERS, table_rows(g), cls="segmentation", key=[h for h in HEADERS if h != "Seeds"],
                             headline=HEADLINE, roles=roles, linked=g["rows"])
        reading = plain_reading(g)
        if reading:
            out += ['<ul class="notes">'] + [f"<li>{_e(x)}</li>" for x in reading] + ["</ul>"]
    return out
