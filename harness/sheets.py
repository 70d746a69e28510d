"""Contact sheets: a PNG grid of synthetic images, one row per label vector."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence


def contact_sheet(images, conditions: Sequence, label_names: Sequence[str], path: Path, per_row: int = 8,
                  masks=None) -> Path:
    """Write up to ``per_row`` images per distinct label vector, each row titled with its labels;
    with ``masks`` (uint8 0/1, one per image) each image has its conditioning mask beside it."""
    import numpy as np
    from PIL import Image, ImageDraw

    rows: dict[tuple, list[int]] = {}
    for i, cond in enumerate(conditions):
        rows.setdefault(tuple(cond.labels), [])
        if len(rows[tuple(cond.labels)]) < per_row:
            rows[tuple(cond.labels)].append(i)
    if masks is not None:  # image | mask pairs, half as many per row
        import torch

        per_row = max(1, per_row // 2)
        rows = {k: v[:per_row] for k, v in rows.items()}
        paired = torch.cat([images, (masks > 0).to(images.dtype) * 255], dim=-1)
        return contact_sheet(paired, conditions, label_names, path, per_row=per_row)
    h, w = int(images.shape[-2]), int(images.shape[-1])
    scale = max(1, 96 // h)  # by height: an image | mask pair is twice as wide
    title_h = 14
    sheet = Image.new("L", (per_row * w * scale, len(rows) * (h * scale + title_h)), color=0)
    draw = ImageDraw.Draw(sheet)
    for r, (labels, idx) in enumerate(sorted(rows.items())):
        y = r * (h * scale + title_h)
        title = ", ".join(f"{n}={v:g}" for n, v in zip(label_names, labels)) or "unconditional"
        draw.text((2, y + 1), title, fill=255)
        for c, i in enumerate(idx):
            arr = images[i, 0].cpu().numpy().astype(np.uint8)
            tile = Image.fromarray(arr).resize((w * scale, h * scale), Image.NEAREST)
            sheet.paste(tile, (c * w * scale, y + title_h))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
