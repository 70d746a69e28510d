"""The `api` generator with the REAL google-genai and openai SDKs against a local fake server
(tests/generators/fake_image_api.py) that speaks their REST wire formats and fails on purpose."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("google.genai")
pytest.importorskip("openai")

from cxrbench.contracts import Condition  # noqa: E402
from cxrbench.errors import ConfigError, CxrbenchError  # noqa: E402
from cxrbench.plugins.generators.api import ApiGenerator, ApiOptions  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from fake_image_api import FakeImageAPI  # noqa: E402

KEY = "sk-cxrbench-FAKE-KEY-7f3a9c21d4e8"
ENV = "CXRBENCH_TEST_API_KEY"
FAST = dict(timeout_s=0.6, backoff_s=0.01, max_backoff_s=0.05, requests_per_minute=60000.0, max_retries=8)


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv(ENV, KEY)
    return KEY


def make(api, provider="gemini", cache=None, size=16, **kw):
    url = api.url if provider == "gemini" else api.url + "/v1"
    g = ApiGenerator(ApiOptions(provider=provider, api_key_env=ENV, base_url=url, **{**FAST, **kw}), size=size)
    g.cache_dir = cache
    return g


def conds(n, start=100):
    return [Condition(labels=(float(i % 2),), seed=start + i) for i in range(n)]


def assert_no_key(root: Path, *texts: str) -> None:
    for t in texts:
        assert KEY not in t
    for p in root.rglob("*"):
        if p.is_file():
            assert KEY.encode() not in p.read_bytes(), p


@pytest.mark.parametrize("provider", ["gemini", "openai"])
def test_every_image_produced_with_30_percent_failures(provider, key, tmp_path, capfd):
    with FakeImageAPI(KEY, fail_rate=0.3, seed=2, slow_s=1.2) as api:
        g = make(api, provider, tmp_path / "cache")
        c = conds(16)
        images = g.generate(c)
        assert images.shape == (16, 1, 16, 16) and str(images.dtype) == "torch.uint8"
        s = g.generation_stats()
        assert s["produced"] == 16 and s["failed"] == 0 and s["retried"] > 0
        assert s["requested"] == s["produced"] + s["retried"] == api.requests
        assert sum(v for m, v in api.by_mode.items() if m != "ok") > 0
        assert s["estimated_cost_usd"] == pytest.approx(16 * s["price_per_image_usd"])
        before = api.requests
        again = make(api, provider, tmp_path / "cache").generate(c)  # a fresh instance: the cache
        assert api.requests == before and bool((again == images).all())
        # the label reaches the prompt, and the prompt the image (the fake draws a blob for pneumonia)
        assert "bacterial pneumonia" in g.prompt_for(c[1]) and "no signs of pneumonia" in g.prompt_for(c[0])
    out, err = capfd.readouterr()
    assert_no_key(tmp_path, out, err, repr(s), repr(g.effective_options()))


def test_retries_exhausted_fail_with_cause_and_counts(key, tmp_path):
    with FakeImageAPI(KEY, fail_rate=1.0, modes=("503",)) as api:
        g = make(api, cache=tmp_path, max_retries=2)
        with pytest.raises(CxrbenchError) as info:
            g.generate(conds(3))
    msg = str(info.value)
    assert "3 of 3 images failed after 2 retries" in msg and "HTTP 503" in msg
    assert "requested 9, produced 0" in msg and "failed 3" in msg and "\n" not in msg and KEY not in msg
    assert not list(tmp_path.rglob("*.img"))  # nothing stored


@pytest.mark.parametrize("provider", ["gemini", "openai"])
@pytest.mark.parametrize("fatal,words", [("401", "HTTP 401"), ("403", "HTTP 403"), ("quota", "quota exhausted")])
def test_auth_and_quota_fail_at_once(provider, fatal, words, key, tmp_path):
    with FakeImageAPI(KEY) as api:
        api.fatal = fatal
        g = make(api, provider, tmp_path, concurrency=1)
        start = time.perf_counter()
        with pytest.raises(CxrbenchError) as info:
            g.generate(conds(20))
    assert time.perf_counter() - start < 5 and api.requests == 1
    assert words in str(info.value) and "stopped" in str(info.value) and KEY not in str(info.value)


def test_wrong_key_is_401_and_never_echoed(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV, "sk-some-other-key-123456")
    with FakeImageAPI(KEY) as api:
        with pytest.raises(CxrbenchError, match="HTTP 401") as info:
            make(api, cache=tmp_path).generate(conds(2))
    assert "sk-some-other-key" not in str(info.value)


def test_missing_key_names_the_variable_before_any_request(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV, raising=False)
    with FakeImageAPI(KEY) as api:
        g = make(api, cache=tmp_path)
        with pytest.raises(ConfigError) as info:
            g.generate(conds(2))
        with pytest.raises(ConfigError):
            g.fit(None)
        assert api.requests == 0
    assert ENV in str(info.value) and "\n" not in str(info.value)


def test_retry_after_is_honoured(key, tmp_path):
    with FakeImageAPI(KEY, retry_after="0.6") as api:
        api.script = ["429"]
        g = make(api, cache=tmp_path, concurrency=1)
        start = time.perf_counter()
        g.generate(conds(1))
        assert time.perf_counter() - start >= 0.6 and api.requests == 2


def test_each_bad_reply_is_retried_and_never_stored(key, tmp_path):
    modes = ["429", "500", "503", "slow", "malformed", "noimage", "truncated", "hugetext"]
    with FakeImageAPI(KEY, slow_s=1.0) as api:
        api.script = list(modes)
        g = make(api, cache=tmp_path, concurrency=1, max_retries=len(modes))
        img = g.generate(conds(1))
        assert g.generation_stats()["retried"] == len(modes) and api.requests == len(modes) + 1
        stored = list(tmp_path.rglob("*.img"))
        assert len(stored) == 1 and stored[0].read_bytes().startswith(b"\x89PNG")
        assert bool((g.generate(conds(1)) == img).all()) and api.requests == len(modes) + 1


def test_options_checked_up_front():
    for bad in ({"provider": "midjourney"}, {"api_key_env": "sk-1234567890abcdef1234567890abcdef"},
                {"findings": {"yes": "x"}}, {"prompt_template": "{oops}"}, {"concurrency": 0}):
        with pytest.raises(ConfigError):
            ApiGenerator.check_options(ApiOptions(**bad), 32)
    o = ApiOptions(demographic_phrases={"sex": {"F": "a girl"}}, prompt_variations=["PA view", "AP view"])
    g = ApiGenerator(o, size=16)
    c = Condition(labels=(1.0,), seed=3, demographics={"sex": "F"})
    assert g.prompt_for(c) == g.prompt_for(c) and ", a girl with bacterial pneumonia, " in g.prompt_for(c)
    assert {g.prompt_for(Condition(labels=(0.0,), seed=s)).rsplit(", ", 1)[1] for s in range(20)} == {"PA view", "AP view"}


KILL_SCRIPT = """
import os, sys
from pathlib import Path
from cxrbench.contracts import Condition
from cxrbench.plugins.generators.api import ApiGenerator, ApiOptions
url, cache = sys.argv[1], Path(sys.argv[2])
g = ApiGenerator(ApiOptions(provider="gemini", api_key_env="{env}", base_url=url, requests_per_minute=1200.0,
                            concurrency=2, backoff_s=0.01, timeout_s=2.0), size=16)
g.cache_dir = cache
print("generating", flush=True)
g.generate([Condition(labels=(float(i % 2),), seed=500 + i) for i in range(60)])
print("done", g.generation_stats(), flush=True)
"""


def test_kill_9_then_resume_never_requests_a_stored_image(key, tmp_path):
    cache = tmp_path / "cache"
    with FakeImageAPI(KEY, fail_rate=0.2, modes=("500", "truncated", "malformed"), seed=5) as api:
        proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT.format(env=ENV), api.url, str(cache)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
        deadline = time.time() + 30
        while len(list(cache.rglob("*.img"))) < 15 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        out, err = (b.decode() for b in proc.communicate())
        assert proc.returncode == -signal.SIGKILL, err
        stored = {p.name for p in cache.rglob("*.img")}
        assert 15 <= len(stored) < 60
        # images, their checksum sidecars and temporary files of the killed writes, nothing else
        assert not [p for p in cache.rglob("*") if p.is_file() and not p.name.endswith((".img", ".tmp", ".sha256.json"))]
        counts = dict(api.by_image)
        g = make(api, cache=cache)
        c = [Condition(labels=(float(i % 2),), seed=500 + i) for i in range(60)]
        g.generate(c)
        for cond in c:
            ident = (g.prompt_for(cond), cond.seed)
            if g._cache_path(*ident).name in stored:
                assert api.by_image[ident] == counts[ident], "a stored image was requested again"
        assert g.generation_stats()["cached"] == len(stored)
        assert g.generation_stats()["produced"] == 60 - len(stored)
    assert_no_key(tmp_path, out, err)


# --------------------------------------------------------------------------- the contract kit
# A module-level fake server: the kit's class attributes need its URL when the module is imported.
from cxrbench.testing import GeneratorContractTests  # noqa: E402

_KIT_API = FakeImageAPI(KEY).__enter__()
_KIT_ENV = "CXRBENCH_TEST_API_KEY_KIT"
os.environ[_KIT_ENV] = KEY


@pytest.fixture(scope="module", autouse=True)
def _kit_cache(tmp_path_factory):
    """The kit builds generators itself: their cache goes to $CXRBENCH_CACHE, here a temp dir."""
    old = os.environ.get("CXRBENCH_CACHE")
    os.environ["CXRBENCH_CACHE"] = str(tmp_path_factory.mktemp("api-kit-cache"))
    yield
    os.environ.pop("CXRBENCH_CACHE") if old is None else os.environ.__setitem__("CXRBENCH_CACHE", old)


class TestApiGeneratorContract(GeneratorContractTests):
    generator_class = ApiGenerator
    generator_options = {"provider": "gemini", "api_key_env": _KIT_ENV, "base_url": _KIT_API.url,
                         "requests_per_minute": 60000.0, "concurrency": 4, "timeout_s": 5.0}
    size = 16


@pytest.mark.parametrize("provider", ["gemini", "openai"])
def test_one_paid_image_per_prompt_and_seed_within_a_call(provider, key, tmp_path):
    """The run-time seed check asks for its base image twice in one call: the server must see
    (and bill) it once; the copies are identical (issue #28 point 4)."""
    with FakeImageAPI(KEY, fail_rate=0.0, seed=3) as api:
        g = make(api, provider, tmp_path / "cache")
        a, b = conds(2)
        images = g.generate([a, a, b, a])
        assert api.requests == 2 and g.generation_stats()["produced"] == 2 and g.counts["merged"] == 2
        assert bool((images[0] == images[1]).all()) and bool((images[0] == images[3]).all())


def test_the_seed_checks_other_seeds_are_not_its_base_seed():
    """Its two 'different' images must have seeds of their own, never the base image's."""
    import torch

    from cxrbench.contracts import Split
    from cxrbench.generation import seed_check

    asked = []

    class Spy:
        name = "spy"
        capabilities = type("Caps", (), {"mask": False})()

        def generate(self, conditions):
            asked.extend(c.seed for c in conditions)
            return torch.stack([torch.full((1, 8, 8), c.seed % 251, dtype=torch.uint8) for c in conditions])

    split = Split("train", torch.zeros((3, 1, 8, 8), dtype=torch.uint8), torch.tensor([[1.0], [0.0], [1.0]]),
                  ("y",), ["a", "b", "c"], ["k1", "k2", "k3"])
    for seed in range(20):
        asked.clear()
        assert seed_check(Spy(), split, seed=seed, size=8)["ok"]
        base, other1, other2, again = asked
        assert base == again and len({base, other1, other2}) == 3, (seed, asked)
