"""The `api` generator's OpenAI provider (openai SDK): images.generate with a base64 reply.

Wire format: ``POST {base}/images/generations`` (base default ``https://api.openai.com/v1``),
``Authorization: Bearer``; the image is ``data[0].b64_json``. OpenAI's image models take no
seed: the seed is still part of the prompt's variation and of the cache key, so every
condition keeps its own stored image. The SDK's retries are off (``max_retries=0``).
"""

from __future__ import annotations

import base64
import binascii

from cxrbench.plugins.generators.api import Fatal, Retryable, import_sdk

INSTALL = "the openai provider needs the openai SDK: pip install 'cxrbench[api]'"


class Client:
    def __init__(self, key: str, *, base_url: str | None, timeout_s: float):
        self.openai = openai = import_sdk("openai", INSTALL)
        self.client = openai.OpenAI(api_key=key, base_url=base_url, timeout=timeout_s, max_retries=0)

    def request(self, model: str, prompt: str, seed: int, params: dict) -> bytes:
        openai = self.openai
        if model.startswith("dall-e"):
            params = {"response_format": "b64_json", **params}  # gpt-image models always reply b64
        try:
            reply = self.client.images.generate(model=model, prompt=prompt, n=1, **params)
        except openai.APIStatusError as exc:
            raise classify(exc) from None
        except ValueError as exc:  # malformed JSON
            raise Retryable(f"malformed reply ({type(exc).__name__})") from None
        except openai.APIError as exc:  # timeouts, connection errors, unparseable replies
            raise Retryable(f"no reply ({type(exc).__name__})") from None
        data = reply.data[0].b64_json if reply.data else None
        if not data:
            raise Retryable("the reply held no image")
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise Retryable("the reply's image is not valid base64") from None


def classify(exc) -> Exception:
    code = int(exc.status_code)
    body = exc.body if isinstance(exc.body, dict) else {}
    err_code = str(getattr(exc, "code", None) or body.get("code") or "")
    text = f"HTTP {code}: {body.get('message') or exc.message}"
    if code in (401, 403):
        return Fatal(f"{text} (is the key valid for this model?)")
    if code == 429 and err_code in ("insufficient_quota", "billing_hard_limit_reached"):
        return Fatal(f"quota exhausted: {text}")
    if code in (408, 409, 429) or code >= 500:
        try:
            after = float(exc.response.headers.get("retry-after"))
        except (TypeError, ValueError):
            after = None
        return Retryable(text, after)
    return Fatal(text)  # 400, 404: a wrong model name or parameter does not heal
