"""The `api` generator's Gemini provider (google-genai SDK): generateContent with an image reply.

Wire format: ``POST {base}/v1beta/models/{model}:generateContent``, key in ``x-goog-api-key``;
the image is the first ``inline_data`` part of the first candidate. The SDK's own retries are
off (``attempts=1``): the generator retries with its own backoff, counts and Retry-After.
"""

from __future__ import annotations

from cxrbench.plugins.generators.api import Fatal, Retryable, import_sdk

INSTALL = "the gemini provider needs the google-genai SDK: pip install 'cxrbench[api]'"
#: 429 bodies that no waiting fixes (the daily / billing quota, not the per-minute rate)
UNRECOVERABLE_QUOTA = ("check your plan and billing", "per day", "perday", "limit: 0", "billing details")


class Client:
    def __init__(self, key: str, *, base_url: str | None, timeout_s: float):
        genai = import_sdk("google.genai", INSTALL)
        self.types = types = import_sdk("google.genai.types", INSTALL)
        http = types.HttpOptions(base_url=base_url, timeout=int(timeout_s * 1000),
                                 retry_options=types.HttpRetryOptions(attempts=1))
        self.client = genai.Client(api_key=key, http_options=http)

    def request(self, model: str, prompt: str, seed: int, params: dict) -> bytes:
        from google.genai import errors

        config = self.types.GenerateContentConfig(
            response_modalities=["IMAGE"], candidate_count=1, seed=int(seed) % (2**31), **params)
        try:
            reply = self.client.models.generate_content(model=model, contents=prompt, config=config)
        except errors.APIError as exc:
            raise classify(exc.code, str(exc.status or ""), str(exc.message or ""), _retry_after(exc)) from None
        except ValueError as exc:  # json.JSONDecodeError and the SDK's parsing errors
            raise Retryable(f"malformed reply ({type(exc).__name__})") from None
        except Exception as exc:  # noqa: BLE001 - timeouts and connection errors of httpx / aiohttp
            raise Retryable(f"no reply ({type(exc).__name__})") from None
        for cand in reply.candidates or []:
            for part in (cand.content.parts if cand.content else None) or []:
                if part.inline_data is not None and part.inline_data.data:
                    return bytes(part.inline_data.data)
        reason = ""
        if reply.candidates and reply.candidates[0].finish_reason:
            reason = f", finish reason {reply.candidates[0].finish_reason}"
        raise Retryable(f"the reply held no image{reason}")


def classify(code: int, status: str, message: str, retry_after: float | None) -> Exception:
    text = f"HTTP {code} {status}: {message}".strip()
    if code in (401, 403):
        return Fatal(f"{text} (is the key valid for this model?)")
    if code == 429:
        if any(m in message.lower() for m in UNRECOVERABLE_QUOTA):
            return Fatal(f"quota exhausted: {text}")
        return Retryable(text, retry_after)
    if code in (408, 409) or code >= 500:
        return Retryable(text, retry_after)
    return Fatal(text)  # 400, 404: a wrong model name or parameter does not heal


def _retry_after(exc) -> float | None:
    headers = getattr(getattr(exc, "response", None), "headers", None)
    try:
        value = headers.get("retry-after") if headers is not None else None
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
