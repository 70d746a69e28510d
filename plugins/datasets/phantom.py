"""phantom: an embedded, procedurally SIMULATED chest-radiograph-like dataset (not clinical data).

It exists so that the whole benchmark (generators, classifiers, protocols, leaderboard) can run
and be tested end to end without downloading anything. Its pixels are drawn from a handful of
geometric shapes and noise; it carries no medical meaning, and no result obtained on it says
anything about real patients.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from cxrbench.contracts import Dataset, ImageRecord
from cxrbench.errors import ConfigError

#: bump when the rendering changes (it changes the fingerprint, hence every cache built on it)
RENDER_VERSION = "1"
SPLITS = ("train", "val", "test")


#: per split (the images of a run are decoded into memory)
MAX_IMAGES = 200_000


@dataclass
class PhantomOptions:
    """:param n_train, n_val, n_test: number of images per split.
    :param seed: everything (patients, labels, anatomy, noise) follows from it.
    :param prevalence: probability that a patient is 'pneumonia' positive.
    :param render_size: pixel size the phantoms are drawn at (preprocessing resizes).
    :param repeat_fraction: share of patients with two images (a second, re-exposed view).
    """

    n_train: int = 600
    n_val: int = 150
    n_test: int = 300
    seed: int = 0
    prevalence: float = 0.5
    render_size: int = 128
    repeat_fraction: float = 0.25

    def __post_init__(self) -> None:
        for name in ("n_train", "n_val", "n_test"):
            if int(getattr(self, name)) < 2:
                raise ConfigError(f"phantom {name} must be at least 2, not {getattr(self, name)!r}")
            # rendered in memory: a million 128 px images is already 16 GB
            if int(getattr(self, name)) > MAX_IMAGES:
                raise ConfigError(f"phantom {name} must be at most {MAX_IMAGES:,}, not {getattr(self, name)!r}")
        if not 0.0 <= self.prevalence <= 1.0:
            raise ConfigError(f"phantom prevalence must be in [0, 1], not {self.prevalence!r}")
        if not 32 <= int(self.render_size) <= 1024:
            raise ConfigError(f"phantom render_size must be in [32, 1024], not {self.render_size!r}")
        if not 0.0 <= self.repeat_fraction <= 1.0:
            raise ConfigError(f"phantom repeat_fraction must be in [0, 1], not {self.repeat_fraction!r}")


class PhantomDataset(Dataset):
    """SIMULATED chest-radiograph-like images with a 'pneumonia' opacity label. Not clinical data.

    No files are needed: every image is rendered on the fly, deterministically from
    ``options.seed``. A phantom shows a thorax outline, two lung fields cut by the diaphragm
    domes, the heart, mediastinum and spine, posterior ribs, breast shadows on female
    phantoms, an "L" or "R" side marker (sometimes an "AP" tag) drawn as text, and varies in
    anatomy (sex and age), position, exposure (contrast, gamma) and noise. A *positive* image
    has an opacity: one or two blurred blobs inside one lung whose contrast ranges from faint
    (hard to see under the noise and ribs) to obvious, so the task is learnable but not trivial.

    - labels: ``("pneumonia",)``; masks: both lung fields (``read_mask``);
    - metadata: ``sex`` ("F"/"M"), ``age`` (years), ``view`` ("PA" or "AP");
    - patients: about ``repeat_fraction`` of the patients have two images (same anatomy and
      label, new position / exposure / noise); patient ids are unique per split, so the splits
      are patient-disjoint by construction.

    Rendering 1,000 images at 128 px takes about a second with numpy.
    Citation: none (synthetic; part of cxrbench).
    """

    name = "phantom"
    version = RENDER_VERSION
    label_names = ("pneumonia",)
    metadata_fields = ("sex", "age", "view")
    #: the classes of its masks (segmentation)
    mask_classes = ("lungs",)
    needs_root = False
    Options = PhantomOptions

    def describe_layout(self) -> str:
        return "no files: the phantom dataset is rendered in memory from options.seed"

    def fingerprint_extra(self) -> str:
        return f"phantom-render-{RENDER_VERSION}"

    # ------------------------------------------------------------------ records

    def records(self) -> list[ImageRecord]:
        o = self.options
        out: list[ImageRecord] = []
        counts = {"train": int(o.n_train), "val": int(o.n_val), "test": int(o.n_test)}
        for s_idx, split in enumerate(SPLITS):
            rng = np.random.default_rng([int(o.seed), 101, s_idx])
            n_images, i, p = counts[split], 0, 0
            while i < n_images:
                patient_seed = int(rng.integers(2**31))
                label = float(rng.random() < o.prevalence)
                sex = "F" if rng.random() < 0.5 else "M"
                age = int(rng.integers(18, 91))
                views = 2 if rng.random() < o.repeat_fraction else 1
                for v in range(min(views, n_images - i)):
                    image_seed = int(rng.integers(2**31))
                    view = "AP" if rng.random() < 0.3 else "PA"
                    meta = {"sex": sex, "age": age, "view": view}
                    # the source is what render_phantom draws from: the seeds, the label and the metadata
                    source = {"patient_seed": patient_seed, "image_seed": image_seed, "label": label, **meta}
                    out.append(ImageRecord(key=f"{split}/{i:05d}", split=split, labels=(label,),
                                           patient_id=f"phantom-{split}-{p:05d}", source=source, metadata=meta,
                                           has_mask=True))
                    i += 1
                p += 1
        self.split_notes = {"source": "SIMULATED phantom images (not clinical data)",
                            "val": "rendered as its own split (no carve)"}
        return out

    # ------------------------------------------------------------------ rendering

    def read_image(self, record: ImageRecord) -> np.ndarray:
        img, _ = render_phantom(record.source, int(self.options.render_size))
        return img

    def read_mask(self, record: ImageRecord) -> np.ndarray:
        _, mask = render_phantom(record.source, int(self.options.render_size), image=False)
        return mask


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
    yy, xx = np.meshgrid(c, c, indexing="ij")
    return yy, xx


@lru_cache(maxsize=8)
def _font(px: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=px)
    except TypeError:  # Pillow without FreeType: fixed-size bitmap font
        return ImageFont.load_default()


def _soft(d: np.ndarray, edge: float) -> np.ndarray:
    """~1 inside (d < 1), ~0 outside, with a smooth edge of width ``edge`` (in d units)."""
    return 1.0 / (1.0 + np.exp(np.clip((d - 1.0) / edge, -30, 30)))


def _anatomy(src: dict) -> dict:
    r = np.random.default_rng(int(src["patient_seed"]))
    male = src["sex"] == "M"
    age = float(src["age"])
    tw = 0.80 + (0.05 if male else -0.02) + r.normal(0, 0.03)
    return {
        "tw": tw,
        "th": 0.95 + r.normal(0, 0.03),
        "lung_x": 0.37 * tw / 0.8 + r.normal(0, 0.01),
        "lung_y": -0.10 + r.normal(0, 0.03),
        "lung_ax": 0.26 * tw / 0.8 + r.normal(0, 0.012),
        "lung_ay": 0.55 + r.normal(0, 0.03),
        "dome": 0.36 + r.normal(0, 0.04),
        "heart_x": 0.10 + r.normal(0, 0.02),
        "heart_y": 0.16 + r.normal(0, 0.02),
        "heart_r": 0.21 + 0.0012 * (age - 50) + (0.015 if male else 0.0) + r.normal(0, 0.015),
        "rib_space": 0.135 + r.normal(0, 0.006),
        "rib_phase": r.uniform(0, 1),
        "rib_curve": 0.55 + r.normal(0, 0.05),
        "rib_contrast": max(0.02, 0.10 - 0.0008 * (age - 18) + r.normal(0, 0.01)),
        "breast": (not male) * (0.10 + r.uniform(0, 0.08)),
        "tissue": 0.50 + r.normal(0, 0.03),
    }


def render_phantom(src: dict, size: int, *, image: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
    """Render one phantom: (uint8 image (size, size) or None, uint8 lung mask 0/1)."""
    a = _anatomy(src)
    ri = np.random.default_rng(int(src["image_seed"]))
    yy0, xx0 = _grid(size)
    # per-image position / scale jitter
    sc = 1.0 + ri.normal(0, 0.03)
    dx, dy = ri.normal(0, 0.03), ri.normal(0, 0.03)
    xx = (xx0 - dx) / sc
    yy = (yy0 - dy) / sc

    ax = np.abs(xx)
    # lungs: two ellipses cut by the diaphragm domes (the image-left dome sits a bit higher)
    dome_shift = np.where(xx < 0, -0.04, 0.0)
    dome = a["dome"] + dome_shift - 0.9 * (ax - a["lung_x"]) ** 2
    lung_d = ((ax - a["lung_x"]) / a["lung_ax"]) ** 2 + ((yy - a["lung_y"]) / a["lung_ay"]) ** 2
    lung = _soft(lung_d, 0.06) * _soft((yy - dome) / 0.012 + 1.0, 1.0)
    mask = (lung > 0.5).astype(np.uint8)
    if not image:
        return None, mask

    body_d = (xx / a["tw"]) ** 2 + ((yy - 0.05) / a["th"]) ** 2
    body = _soft(body_d, 0.02)
    img = 0.06 + a["tissue"] * body
    # shoulders / upper arms: brighter lateral bands at the top
    img += 0.12 * body * _soft(((ax - a["tw"] * 0.95) / 0.12) ** 2 + ((yy + 0.75) / 0.35) ** 2, 0.3)
    # ribs: curved bands over the thorax, fainter with age
    phase = (yy + a["rib_curve"] * (ax - 0.1) ** 2) / a["rib_space"] + a["rib_phase"]
    rib = np.exp(-(((phase - np.floor(phase)) - 0.5) / 0.16) ** 2)
    rib_zone = _soft((ax / (a["tw"] * 0.92)) ** 2 + ((yy + 0.15) / 0.62) ** 2, 0.08) * (ax > 0.07)
    img -= 0.36 * lung
    img += a["rib_contrast"] * rib * rib_zone
    # heart (patient's left = image right), mediastinum and spine
    heart_d = ((xx - a["heart_x"]) / (a["heart_r"] * 1.25)) ** 2 + ((yy - a["heart_y"]) / a["heart_r"]) ** 2
    img += 0.20 * _soft(heart_d, 0.10) * body
    img += 0.14 * _soft((xx / 0.09) ** 2, 0.3) * (yy < a["dome"] + 0.1) * body
    img += 0.08 * _soft((xx / 0.04) ** 2, 0.3) * body
    # breast shadows (female phantoms)
    if a["breast"] > 0:
        bd = ((ax - a["lung_x"] - 0.05) / 0.25) ** 2 + ((yy - a["dome"] + 0.05) / 0.16) ** 2
        img += a["breast"] * _soft(bd, 0.2) * body
    # the label: an opacity (one or two blurred blobs inside one lung), contrast from faint to strong
    if src["label"] >= 0.5:
        side = 1.0 if ri.random() < 0.5 else -1.0
        for _ in range(1 if ri.random() < 0.7 else 2):
            ang, rad = ri.uniform(0, 2 * np.pi), np.sqrt(ri.uniform(0, 0.55))
            cx = side * a["lung_x"] + rad * a["lung_ax"] * np.cos(ang)
            cy = a["lung_y"] + 0.2 + rad * a["lung_ay"] * 0.6 * np.sin(ang)
            sig = ri.uniform(0.08, 0.20)
            amp = ri.uniform(0.10, 0.50)
            blob = np.exp(-(((xx - cx) ** 2 + ((yy - cy) / 1.2) ** 2) / (2 * sig**2)))
            img += amp * blob * lung
    # exposure: contrast, gamma, brightness, then quantum-like noise and a soft vignette
    img = np.clip(img, 0.0, 1.0)
    gamma = float(np.exp(ri.normal(0, 0.18)))
    contrast = ri.uniform(0.8, 1.15)
    bright = ri.normal(0, 0.04)
    img = np.clip(contrast * img**gamma + bright, 0.0, 1.0)
    img += ri.normal(0, ri.uniform(0.01, 0.035), size=img.shape).astype(np.float32)
    img = np.clip(img, 0.0, 1.0)
    out = np.round(img * 255.0).astype(np.uint8)
    out = _draw_markers(out, ri, src)
    return out, mask


def _draw_markers(out: np.ndarray, ri: np.random.Generator, src: dict) -> np.ndarray:
    from PIL import Image, ImageDraw

    size = out.shape[0]
    im = Image.fromarray(out, "L")
    draw = ImageDraw.Draw(im)
    px = max(8, int(round(size * ri.uniform(0.08, 0.12))))
    font = _font(px)
    letter = "R" if ri.random() < 0.5 else "L"
    left = letter == "R"  # the patient's right is on the image left (PA convention)
    x = int(size * ri.uniform(0.03, 0.10)) if left else int(size * ri.uniform(0.82, 0.90))
    y = int(size * ri.uniform(0.03, 0.12))
    draw.text((x, y), letter, fill=int(ri.integers(200, 256)), font=font)
    if src.get("view") == "AP":
        draw.text((int(size * 0.40), int(size * 0.88)), "AP", fill=230, font=_font(max(8, px * 3 // 4)))
    return np.asarray(im, dtype=np.uint8).copy()
