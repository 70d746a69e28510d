"""The learning-curve section of a leaderboard: ``learning-curves.md`` and its part of ``index.html``.

Written only when a record has the real-data axis (a spec's ``real_data:``); a leaderboard of
records without it has neither the file nor the section. Per curve group of
:func:`cxrbench.learning_curves.learning_curves`: a heading naming dataset, image size,
classifier, schedule and test set, the table of :func:`~cxrbench.learning_curves.table_rows`,
the plain reading as bullet points, and a line saying that every size is tested on the same full
test set. Strings only (no file I/O); every value goes through :func:`html.escape` in the HTML.
"""

from __future__ import annotations

FILE = "learning-curves.md"
#: shown first on the page (cxrbench.leaderboard.table_html): who, the size, the AUROC and what it is
#: worth in real images; the rest (seeds) behind the details toggle
KEY = ["protocol", "generator", "r", "real data", "n real", "AUROC [95% CI]", "gain vs real-only [CI] (seeds +/-)",
       "content gain vs real + r x noise [CI] (seeds +/-)", "worth (real images) [CI]", "utility (floor / ceiling)"]
HEADLINE = "AUROC [95% CI]"
INTRO = ("AUROC against the number of real training images (the spec's `real_data:` sizes), the mean over "
         "seeds with its 95% interval (Rubin's rules). Gain: vs real-only at the same size; content gain: vs "
         "real + r x noise images at the same size, ratio and seed (what the synthetic images' content adds "
         "beyond their number); worth: the real images at which the real-only curve reaches the row's AUROC; utility: "
         "where the row sits between the noise floor (0) and the real ceiling (1) of its size, protocol and ratio. "
         "Seeds +/-: seeds significantly better / worse (paired DeLong, p < 0.05).")


def curve_groups(records, cards_of=None) -> list[dict]:
    """The curve groups of ``records`` (dicts); empty when none has the real-data axis.
    ``cards_of(records)``: the card paths a row's generator cell links to (cxrbench.cards.card_finder)."""
    from cxrbench.learning_curves import learning_curves

    records = list(records)
    if not any("real_data" in (r.get("cell") or {}) for r in records):
        return []
    return learning_curves(records, cards_of)


def headings(groups: list[dict]) -> list[str]:
    """A heading per group; the context hash is named only where two groups would read the same."""
    plain = [f"{g['dataset']}, {g['image_size']} px, {g['classifier']} ({g['schedule']}), test set {g['test_set']}"
             for g in groups]
    return [f"{h} [context {g['context']}]" if plain.count(h) > 1 else h for h, g in zip(plain, groups)]


def same_test_set(group: dict) -> str:
    return (f"Every size is tested on the same full test set ({group['test_set']}): only the real training and "
            "tuning images shrink with the size, so the points are comparable along the curve.")


def render_markdown(groups: list[dict], plot: dict | None) -> str:
    from tabulate import tabulate

    from cxrbench.cards import markdown_generator_links
    from cxrbench.learning_curves import TABLE_HEADERS, plain_reading, table_points, table_rows

    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["# cxrbench learning curves", "", INTRO, ""]
    if plot:
        lines += [f"![{plot['title']}]({plot['png']}) ([SVG]({plot['svg']}))", ""]
    for heading, group in zip(headings(groups), groups):
        rows = markdown_generator_links([[cell(v) for v in row] for row in table_rows(group)], table_points(group))
        lines += [f"## {cell(heading)}", "",
                  tabulate(rows, headers=TABLE_HEADERS, tablefmt="github", disable_numparse=True), ""]
        lines += [f"- {cell(line)}" for line in plain_reading(group)]
        lines += ["", same_test_set(group), ""]
    return "\n".join(lines).rstrip() + "\n"


def render_html(groups: list[dict]) -> list[str]:
    """The page's learning-curve section, as lines."""
    from cxrbench.leaderboard.render import _e
    from cxrbench.leaderboard.table_html import role_of, section_table
    from cxrbench.learning_curves import TABLE_HEADERS, plain_reading, table_points, table_rows

    out = ['<h2 id="learning-curves">Learning curves</h2>', f"<p>{_e(INTRO.replace('`', ''))} Also in "
           f'<a href="{FILE}">{FILE}</a>.</p>']
    for heading, group in zip(headings(groups), groups):
        rows = table_rows(group)
        # the noise rows of a supplemented curve are the noise control the content gain is read against
        roles = [role_of(r[0], r[1], supplemented_noise="control") for r in rows]
        out += [f"<h3>{_e(heading)}</h3>"]
        out += section_table(TABLE_HEADERS, rows, cls="learning-curve", key=KEY, headline=HEADLINE, roles=roles,
                             linked=table_points(group))
        reading = plain_reading(group)
        if reading:
            out += ['<ul class="notes">'] + [f"<li>{_e(line)}</li>" for line in reading] + ["</ul>"]
        out.append(f"<p>{_e(same_test_set(group))}</p>")
    return out
