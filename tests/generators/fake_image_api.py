"""A local fake of two hosted image APIs, for the `api` generator's tests (stdlib only).

It speaks the REST wire format the official SDKs use:

* Gemini ``POST /v1beta/models/{model}:generateContent`` (key in ``x-goog-api-key``), replying
  ``candidates[0].content.parts[].inlineData {mimeType, data: base64 PNG}``;
* OpenAI ``POST /v1/images/generations`` (``Authorization: Bearer``), replying
  ``data[0].b64_json``.

Images are tiny RGB PNGs drawn from (prompt, seed): a chest-like field, a bright blob in the left
lung when the prompt mentions pneumonia, a light frame and a bright corner mark (the kind of
watermark hosted models add). Failures are injected by ``plan`` (mode names below), either as a
fixed script for the next requests or at a seeded rate; every request is counted per
(prompt, seed), so tests can prove a stored image is never requested again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAIL_MODES = ("429", "500", "503", "slow", "malformed", "noimage", "truncated", "hugetext")


def _png_rgb(width: int, height: int, pixels: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    raw = b"".join(b"\x00" + pixels[y * width * 3:(y + 1) * width * 3] for y in range(height))
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def draw_image(prompt: str, seed: int, size: int = 48) -> bytes:
    """A deterministic RGB PNG for (prompt, seed)."""
    rng = random.Random(hashlib.sha256(f"{prompt}|{seed}".encode()).hexdigest())
    sick = "pneumonia" in prompt.lower() and "no signs of pneumonia" not in prompt.lower()
    cx, cy = size * (0.3 + 0.05 * rng.random()), size * (0.5 + 0.1 * (rng.random() - 0.5))
    out = bytearray()
    for y in range(size):
        for x in range(size):
            u, v = 2 * x / size - 1, 2 * y / size - 1
            lung = 1.0 if (abs(abs(u) - 0.45) < 0.28 and abs(v) < 0.6) else 0.0
            val = 150 - 90 * lung + rng.gauss(0, 10)
            if sick:
                d2 = ((x - cx) ** 2 + (y - cy) ** 2) / (size * 0.14) ** 2
                val += 110 * (2.718 ** -d2)
            if x < 2 or y < 2 or x >= size - 2 or y >= size - 2:
                val = 235  # a frame
            if x >= size - 6 and y >= size - 6 and x < size - 2 and y < size - 2:
                val = 255  # a corner mark
            g = max(0, min(255, int(val)))
            out += bytes([g, g, max(0, g - 3), min(255, g + 2)][:3])
    return _png_rgb(size, size, bytes(out))


class FakeImageAPI:
    """Start with ``with FakeImageAPI(key) as api: api.url ...``."""

    def __init__(self, key: str, *, fail_rate: float = 0.0, modes=FAIL_MODES, seed: int = 0,
                 slow_s: float = 3.0, retry_after: str = "0", image_size: int = 48):
        self.key = key
        self.fail_rate, self.modes, self.rng = fail_rate, tuple(modes), random.Random(seed)
        self.slow_s, self.retry_after, self.image_size = slow_s, retry_after, image_size
        self.script: list[str] = []  # modes for the next requests, before fail_rate applies
        self.lock = threading.Lock()
        self.requests = 0
        self.by_image: dict[tuple[str, int], int] = {}
        self.served: dict[tuple[str, int], int] = {}
        self.by_mode: dict[str, int] = {}
        self.bodies: list[dict] = []
        self.fatal: str | None = None  # "401", "403", "quota": every request gets it

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):  # noqa: N802
                api._handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    # ------------------------------------------------------------------ requests
    def _mode(self) -> str:
        with self.lock:
            if self.fatal:
                return self.fatal
            if self.script:
                return self.script.pop(0)
            if self.fail_rate and self.rng.random() < self.fail_rate:
                return self.rng.choice(self.modes)
            return "ok"

    def _send(self, h, code: int, body: bytes, headers=None, ctype="application/json"):
        h.send_response(code)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        try:
            h.wfile.write(body)
        except OSError:
            pass

    def _handle(self, h) -> None:
        body = json.loads(h.rfile.read(int(h.headers.get("Content-Length") or 0)) or b"{}")
        gemini = ":generateContent" in h.path
        if gemini:
            given = h.headers.get("x-goog-api-key", "")
            prompt = "".join(p.get("text", "") for c in body.get("contents", []) for p in c.get("parts", []))
            seed = int((body.get("generationConfig") or {}).get("seed") or 0)
        elif h.path.rstrip("/").endswith("/images/generations"):
            given = h.headers.get("Authorization", "").removeprefix("Bearer ")
            prompt, seed = body.get("prompt", ""), 0
        else:
            return self._send(h, 404, b'{"error": {"message": "not found"}}')
        with self.lock:
            self.requests += 1
            self.bodies.append(body)
            self.by_image[(prompt, seed)] = self.by_image.get((prompt, seed), 0) + 1
        if given != self.key:
            return self._error(h, 401, gemini, "UNAUTHENTICATED", "API key not valid")
        mode = self._mode()
        with self.lock:
            self.by_mode[mode] = self.by_mode.get(mode, 0) + 1
        png = draw_image(prompt, seed, self.image_size)
        if mode == "ok" or mode == "slow":
            if mode == "slow":
                time.sleep(self.slow_s)
            with self.lock:
                self.served[(prompt, seed)] = self.served.get((prompt, seed), 0) + 1
            return self._send(h, 200, json.dumps(self._image_reply(png, gemini)).encode())
        if mode == "429":
            return self._error(h, 429, gemini, "RESOURCE_EXHAUSTED", "rate limit, slow down",
                               headers={"Retry-After": self.retry_after})
        if mode in ("500", "503"):
            return self._error(h, int(mode), gemini, "UNAVAILABLE", "the model is overloaded")
        if mode in ("401", "403"):
            return self._error(h, int(mode), gemini, "PERMISSION_DENIED", "no access")
        if mode == "quota":
            return self._error(h, 429, gemini, "RESOURCE_EXHAUSTED",
                               "You exceeded your current quota, please check your plan and billing details",
                               err_code="insufficient_quota")
        if mode == "malformed":
            return self._send(h, 200, b'{"candidates": [{"content": {"parts": [{"inlineData": ')
        if mode == "noimage":
            return self._send(h, 200, json.dumps(self._text_reply("I cannot draw that.", gemini)).encode())
        if mode == "hugetext":
            return self._send(h, 200, json.dumps(self._text_reply("lorem ipsum " * 200_000, gemini)).encode())
        if mode == "truncated":
            return self._send(h, 200, json.dumps(self._image_reply(png[: len(png) // 2], gemini)).encode())
        raise AssertionError(mode)

    @staticmethod
    def _image_reply(png: bytes, gemini: bool) -> dict:
        b64 = base64.b64encode(png).decode()
        if gemini:
            return {"candidates": [{"content": {"role": "model", "parts": [
                {"text": "Here is the image."}, {"inlineData": {"mimeType": "image/png", "data": b64}}]},
                "finishReason": "STOP"}], "modelVersion": "fake"}
        return {"created": 0, "data": [{"b64_json": b64}]}

    @staticmethod
    def _text_reply(text: str, gemini: bool) -> dict:
        if gemini:
            return {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}]}
        return {"created": 0, "data": [{"revised_prompt": text}]}

    def _error(self, h, code: int, gemini: bool, status: str, message: str, headers=None, err_code=None):
        if gemini:
            body = {"error": {"code": code, "message": message, "status": status}}
        else:
            body = {"error": {"message": message, "type": status.lower(), "code": err_code}}
        self._send(h, code, json.dumps(body).encode(), headers=headers)
