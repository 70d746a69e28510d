"""`api`: a generator backed by a hosted image model (Gemini "Nano Banana", OpenAI images).

Nothing of the real dataset ever reaches the model: each condition becomes a text prompt
(templates per label vector and demographic value, in the spec), the provider's official SDK
sends it, and the reply's image is decoded, made grayscale and fitted to the requested size.

- **Providers** are one small file each (``api_gemini.py``, ``api_openai.py``): a client built
  from (key, base URL, timeout) whose ``request(model, prompt, seed, params)`` returns the
  image bytes, or raises :class:`Retryable` / :class:`Fatal`.
- **The key** is read from the environment variable *named* by ``api_key_env``; the key itself
  is never in options, records, the cache, progress output or error messages (every message
  from a provider is passed through :meth:`ApiGenerator._redact`). Without it, ``fit()`` and
  the first ``generate()`` that would send a request fail with one line naming the variable.
- **Retries**: 429 (honouring Retry-After), 5xx, timeouts, connection errors, malformed JSON
  and replies with no decodable image are retried with exponential backoff and full jitter, up
  to ``max_retries``; 401 / 403 and a quota that cannot recover (billing, daily limit) stop
  everything at once. A reply that does not decode to an image is never stored.
- **Cache**: one file per image under ``<cache>/api/<provider>/<model>/``, keyed by (provider,
  model, prompt, seed, params) and written atomically (temp file + rename), so a re-run, or a
  run resumed after ``kill -9``, never requests (nor pays for) a stored image again. The raw
  reply is stored, so another ``size`` reuses it.
- **Default conversion** (documented, the only one done here): the image is decoded with
  Pillow, made grayscale with ITU-R 601 luma and fitted to ``size`` x ``size`` aspect-preserving
  (``resize: pad``, centred zero padding; or ``stretch`` / ``center-crop``) by the dataset
  loaders' own code (:func:`cxrbench.kit.fit_image`, no equalization). Watermark
  cropping, grey-level normalisation and re-padding are post-processors (``crop-watermark``,
  ``grayscale``, ``resize-pad``).
- **Record**: :meth:`generation_stats` (requested, produced, cached, retried, failed,
  seconds per image, estimated cost from ``price_per_image``) lands in the cell's synthetic
  stats, and :meth:`prompt_for` puts the resolved prompt of every image in its manifest.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from cxrbench.contracts import Condition, Generator, GeneratorCapabilities, Split
from cxrbench.errors import ConfigError, CxrbenchError
from cxrbench.kit import RUNTIME, default_cache_dir

#: provider -> (module with its client, default model, default key variable)
PROVIDERS = {
    "gemini": ("cxrbench.plugins.generators.api_gemini", "gemini-2.5-flash-image", "GEMINI_API_KEY"),
    "openai": ("cxrbench.plugins.generators.api_openai", "gpt-image-1", "OPENAI_API_KEY"),
}
#: USD per image at list price (2025); override with ``price_per_image`` in the spec
DEFAULT_PRICES = {"gemini-2.5-flash-image": 0.039, "gpt-image-1": 0.042, "dall-e-3": 0.04}
#: study-like defaults (Kermany / RSNA: one label, pneumonia)
DEFAULT_FINDINGS = {"0": "clear lungs and no signs of pneumonia", "1": "bacterial pneumonia"}
RESIZE_MODES = ("pad", "stretch", "center-crop")


def import_sdk(module: str, install: str):
    """A provider's SDK, or Fatal with the line that says how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise Fatal(install) from None


class Retryable(Exception):
    """A failed request worth retrying (429, 5xx, timeout, malformed or image-less reply)."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


class Fatal(Exception):
    """A failure no retry can fix (401 / 403, exhausted quota): stop every request."""


@dataclass
class ApiOptions:
    #: ``gemini`` (google-genai SDK) or ``openai`` (openai SDK)
    provider: str = "gemini"
    #: the provider's model name; None: its default (gemini-2.5-flash-image, gpt-image-1)
    model: Optional[str] = None
    #: the NAME of the environment variable holding the key; None: GEMINI_API_KEY / OPENAI_API_KEY
    api_key_env: Optional[str] = None
    #: another endpoint (a local server, a proxy); None: the provider's
    base_url: Optional[str] = None
    #: the prompt; {subject}, {demographics} and {finding} are filled per image
    prompt_template: str = "a frontal chest X-ray of {subject}{demographics} with {finding}"
    subject: str = "a child"
    #: label vector ("1", "0", or "0110" for several labels) -> finding phrase
    findings: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_FINDINGS))
    #: for vectors not in ``findings``: the positive labels' names joined ("no finding" if none)
    label_names: list[str] = field(default_factory=list)
    #: demographic field -> value -> phrase, e.g. {sex: {F: female, M: male}} (joined after subject)
    demographic_phrases: dict[str, dict[str, str]] = field(default_factory=dict)
    #: phrases of which one, drawn from the image's seed, is appended (prompt diversity)
    prompt_variations: list[str] = field(default_factory=list)
    #: extra request parameters of the provider (part of the cache key), e.g. {size: 1024x1024}
    params: dict[str, Any] = field(default_factory=dict)
    #: how the reply is fitted to size x size: pad (aspect-preserving), stretch, center-crop
    resize: str = "pad"
    concurrency: int = field(default=4, metadata=RUNTIME)
    requests_per_minute: float = field(default=60.0, metadata=RUNTIME)
    timeout_s: float = field(default=120.0, metadata=RUNTIME)
    max_retries: int = field(default=6, metadata=RUNTIME)
    backoff_s: float = field(default=1.0, metadata=RUNTIME)
    max_backoff_s: float = field(default=60.0, metadata=RUNTIME)
    #: model -> USD per image, for the cost estimate in the record
    price_per_image: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_PRICES))


class ApiGenerator(Generator):
    """Images from a hosted model; no training, never sees the real dataset."""

    name = "api"
    version = "1"
    sampling_version = "1"
    capabilities = GeneratorCapabilities(labels=True, demographics=False, needs_training=False,
                                         sees_training_data=False)
    Options = ApiOptions

    def __init__(self, options: Any = None, *, size: int = 64, device: str = "cpu"):
        super().__init__(options, size=size, device=device)
        #: where images are cached; the harness sets it (<cache root>/api), else $CXRBENCH_CACHE/api
        self.cache_dir: Path | None = None
        self._client = None
        self._lock = threading.Lock()
        self._next_slot = 0.0
        self.counts = {"requested": 0, "produced": 0, "cached": 0, "retried": 0, "failed": 0, "merged": 0}
        self.request_seconds = 0.0

    # ------------------------------------------------------------------ options
    @classmethod
    def check_options(cls, options: ApiOptions, size: int) -> None:
        o = options
        if o.provider not in PROVIDERS:
            raise ConfigError(f"api: provider {o.provider!r} is not one of {', '.join(PROVIDERS)}")
        if o.resize not in RESIZE_MODES:
            raise ConfigError(f"api: resize {o.resize!r} is not one of {', '.join(RESIZE_MODES)}")
        env = o.api_key_env
        if env is not None and (not env or not env.replace("_", "").isalnum() or env[0].isdigit()):
            raise ConfigError(f"api: api_key_env must be the NAME of an environment variable (like "
                              f"GEMINI_API_KEY), not {'a key' if len(env) > 24 else repr(env)}")
        for k in o.findings:
            if not k or set(k) - {"0", "1"}:
                raise ConfigError(f"api: findings key {k!r} must be a label vector of 0/1 digits, e.g. '1' or '010'")
        if o.concurrency < 1 or o.requests_per_minute <= 0 or o.timeout_s <= 0 or o.max_retries < 0:
            raise ConfigError("api: concurrency >= 1, requests_per_minute > 0, timeout_s > 0 and max_retries >= 0")
        try:
            o.prompt_template.format(subject="", demographics="", finding="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"api: prompt_template may use only {{subject}}, {{demographics}}, "
                              f"{{finding}} ({type(exc).__name__}: {exc})") from None

    @property
    def model(self) -> str:
        return self.options.model or PROVIDERS[self.options.provider][1]

    @property
    def key_env(self) -> str:
        return self.options.api_key_env or PROVIDERS[self.options.provider][2]

    def effective_options(self) -> dict[str, Any]:
        out = super().effective_options()
        out.update(model=self.model, api_key_env=self.key_env)  # the name, never the key
        return out

    def _key(self) -> str:
        key = os.environ.get(self.key_env, "").strip()
        if not key:
            raise ConfigError(f"api: no API key: set the environment variable {self.key_env} "
                              f"(provider {self.options.provider}, model {self.model})")
        return key

    # ------------------------------------------------------------------ prompts
    def prompt_for(self, condition: Condition) -> str:
        """The resolved prompt of one image (recorded in the cell's manifest)."""
        if condition.prompt:
            return condition.prompt
        o = self.options
        vector = "".join("1" if v >= 0.5 else "0" for v in condition.labels)
        finding = o.findings.get(vector)
        if finding is None:
            names = [n for n, d in zip(o.label_names, vector) if d == "1"]
            if len(o.label_names) != len(vector):
                raise CxrbenchError(f"api: no finding phrase for label vector {vector!r}: add it under findings "
                                    f"(or give label_names, one per label)")
            finding = " and ".join(names) if names else "no finding"
        demo = []
        for fieldname, phrases in o.demographic_phrases.items():
            value = condition.demographics.get(fieldname)
            if value is not None and str(value) in phrases:
                demo.append(phrases[str(value)])
        prompt = o.prompt_template.format(subject=o.subject, finding=finding,
                                          demographics=(", " + ", ".join(demo)) if demo else "")
        if o.prompt_variations:
            prompt += ", " + random.Random(int(condition.seed)).choice(o.prompt_variations)
        return prompt

    # ------------------------------------------------------------------ cache
    def _cache_root(self) -> Path:
        root = Path(self.cache_dir) if self.cache_dir is not None else default_cache_dir() / "api"
        safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in self.model)
        return root / self.options.provider / safe

    def _cache_key(self, prompt: str, seed: int) -> str:
        ident = {"provider": self.options.provider, "model": self.model, "prompt": prompt, "seed": int(seed),
                 "params": self.options.params}
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]

    def _cache_path(self, prompt: str, seed: int) -> Path:
        key = self._cache_key(prompt, seed)
        return self._cache_root() / key[:2] / f"{key}.img"

    @staticmethod
    def _atomic_write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        from cxrbench.kit.cachefiles import write_checksum

        write_checksum(path)

    # ------------------------------------------------------------------ generation
    def fit(self, train: Split, *, progress: bool = True) -> dict:
        """Nothing to learn (the runner never calls it: ``sees_training_data=False``); checks the key."""
        self._key()
        return {}

    def generate(self, conditions: Sequence[Condition]):
        import torch

        out = torch.zeros((len(conditions), 1, self.size, self.size), dtype=torch.uint8)
        prompts = [self.prompt_for(c) for c in conditions]
        todo = []
        for i, (c, p) in enumerate(zip(conditions, prompts)):
            arr = self._read_cached(p, c.seed)
            if arr is None:
                todo.append(i)
            else:
                out[i, 0] = torch.from_numpy(arr)
                self.counts["cached"] += 1
        if todo:
            # One paid image per (prompt, seed): identical requests inside one call are fetched
            # once and copied (the run-time seed check asks for its base image twice).
            first: dict[tuple[str, int], int] = {}
            for i in todo:
                first.setdefault((prompts[i], int(conditions[i].seed)), i)
            self._fetch_all([(i, p, seed) for (p, seed), i in first.items()], out)
            for i in todo:
                j = first[(prompts[i], int(conditions[i].seed))]
                if j != i:
                    out[i] = out[j]
                    self.counts["merged"] += 1
        return out

    def _read_cached(self, prompt: str, seed: int):
        from cxrbench.kit.cachefiles import check_file, checksum_path, quarantine

        path = self._cache_path(prompt, seed)
        if not path.is_file():
            return None
        # a paid image stored before checksums existed is trusted once (re-buying it costs money)
        problem = check_file(path, missing_ok=True)
        if problem is None:
            try:
                return self._to_array(self._decode(path.read_bytes()))
            except Retryable as exc:  # cannot happen for a file we wrote, unless the disk changed it
                problem = f"cannot be decoded: {exc.reason}"
        quarantine(path, problem, also=(checksum_path(path),))
        return None

    def _fetch_all(self, jobs: list[tuple[int, str, int]], out) -> None:
        import torch

        key = self._key()  # before any request: a missing key is one line naming the variable
        client = self._get_client(key)
        stop = threading.Event()
        failures: list[tuple[int, str]] = []
        fatal: list[str] = []

        def one(job):
            i, prompt, seed = job
            if stop.is_set():
                return
            try:
                data = self._request_with_retries(client, prompt, seed, stop)
            except Fatal as exc:
                fatal.append(self._redact(str(exc), key))
                stop.set()
                return
            except Retryable as exc:
                with self._lock:
                    self.counts["failed"] += 1
                failures.append((i, self._redact(exc.reason, key)))
                return
            if data is None:
                return
            self._atomic_write(self._cache_path(prompt, seed), data)
            out[i, 0] = torch.from_numpy(self._to_array(self._decode(data)))

        workers = max(1, min(int(self.options.concurrency), len(jobs)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cxrbench-api") as pool:
            list(pool.map(one, jobs))
        c = self.counts
        counts = (f"requested {c['requested']}, produced {c['produced']}, cached {c['cached']}, "
                  f"retried {c['retried']}, failed {c['failed']}")
        where = f"api ({self.options.provider}, {self.model})"
        if fatal:
            raise CxrbenchError(f"{where}: stopped: {fatal[0]} ({counts}; stored images are kept for a re-run)")
        if failures:
            raise CxrbenchError(
                f"{where}: {len(failures)} of {len(jobs)} images failed after {self.options.max_retries} retries, "
                f"last cause: {failures[-1][1]} ({counts}; stored images are kept: re-run to resume)")

    def _get_client(self, key: str):
        if self._client is None:
            import importlib

            module = importlib.import_module(PROVIDERS[self.options.provider][0])
            self._client = module.Client(key, base_url=self.options.base_url, timeout_s=self.options.timeout_s)
        return self._client

    def _wait_for_slot(self, stop: threading.Event) -> None:
        """Requests per minute: request starts are spaced by 60 / rpm seconds across threads."""
        interval = 60.0 / float(self.options.requests_per_minute)
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + interval
        if slot > now:
            stop.wait(slot - now)

    def _request_with_retries(self, client, prompt: str, seed: int, stop: threading.Event) -> bytes | None:
        o = self.options
        attempt = 0
        while True:
            if stop.is_set():
                return None
            self._wait_for_slot(stop)
            with self._lock:
                self.counts["requested"] += 1
            start = time.perf_counter()
            try:
                data = client.request(self.model, prompt, seed, dict(o.params))
                self._decode(data)  # a reply that is not a decodable image is never stored
            except Retryable as exc:
                attempt += 1
                if attempt > o.max_retries:
                    raise
                with self._lock:
                    self.counts["retried"] += 1
                delay = min(o.max_backoff_s, o.backoff_s * 2 ** (attempt - 1)) * random.random()  # full jitter
                if exc.retry_after is not None:
                    delay = max(delay, min(float(exc.retry_after), max(o.max_backoff_s, 300.0)))  # honoured, sanely bounded
                stop.wait(delay)
                continue
            with self._lock:
                self.counts["produced"] += 1
                self.request_seconds += time.perf_counter() - start
            return data

    @staticmethod
    def _decode(data: bytes):
        """Bytes -> a fully decoded PIL image, or Retryable (truncated / not an image)."""
        from PIL import Image

        if not data:
            raise Retryable("the reply held no image")
        try:
            img = Image.open(io.BytesIO(data))
            img.load()  # decodes every pixel: a truncated file fails here
        except Exception as exc:  # noqa: BLE001 - any decoder error means "not an image"
            raise Retryable(f"the reply's image does not decode ({type(exc).__name__})") from None
        return img

    def _to_array(self, img):
        """The documented default conversion: luma grayscale, fitted to size by the loaders' code."""
        import numpy as np

        from cxrbench.kit import fit_image

        arr = np.asarray(img.convert("RGB") if img.mode not in ("L", "RGB") else img)
        return fit_image(arr, self.size, resize=self.options.resize, equalize=False)

    @staticmethod
    def _redact(text: str, key: str) -> str:
        text = " ".join(str(text).split())[:300]
        return text.replace(key, "***") if key else text

    # ------------------------------------------------------------------ record
    def generation_stats(self) -> dict[str, Any]:
        """Counts, time and cost so far (this instance), for the cell's record."""
        c = dict(self.counts)
        price = self.options.price_per_image.get(self.model)
        return {
            "provider": self.options.provider, "model": self.model, **c,
            "seconds_per_image": round(self.request_seconds / c["produced"], 4) if c["produced"] else None,
            "price_per_image_usd": price,
            # every request that may have produced an image is billed; failed replies usually are not
            "estimated_cost_usd": round(price * c["produced"], 4) if price is not None else None,
        }

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps(self.effective_options(), sort_keys=True))

    def load(self, directory: Path) -> None:
        pass  # nothing learned: the options are the whole state
