"""Cleartext AI credentials: formats, locations, AI endpoints, and no leak anywhere."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.detect.credentials import (
    CredentialDetector,
    CredentialSettings,
    from_toml,
    load_formats,
)
from sensor.detect.selfhosted import load_signatures
from sensor.errors import InputError
from tests.sensor.detect._http import exchange_obs, req, resp

KEY = b"unit-test-deployment-key"
R = random.Random(6)
A = string.ascii_letters + string.digits


def r(alpha: str, n: int) -> str:
    return "".join(R.choice(alpha) for _ in range(n))


SAMPLES = {
    "anthropic-api-key": "sk-ant-api03-" + r(A + "_-", 93) + "AA",
    "anthropic-admin-key": "sk-ant-admin01-" + r(A + "_-", 93) + "AA",
    "openai-project-key": "sk-proj-" + r(A + "_-", 120),
    "openai-legacy-key": "sk-" + r(A, 20) + "T3BlbkFJ" + r(A, 20),
    "openai-style-key": "sk-" + r("0123456789abcdef", 32),
    "openrouter-api-key": "sk-or-v1-" + r("0123456789abcdef", 64),
    "huggingface-token": "hf_" + r(string.ascii_letters, 34),
    "google-api-key": "AIza" + r(A + "_-", 35),
    "groq-api-key": "gsk_" + r(A, 52),
    "xai-api-key": "xai-" + r(A, 80),
    "perplexity-api-key": "pplx-" + r(A, 48),
    "replicate-api-token": "r8_" + r(A, 37),
    "langsmith-api-key": "lsv2_pt_" + r("0123456789abcdef", 32) + "_" + r("0123456789abcdef", 10),
}


FORMATS = load_formats()
SIGS = load_signatures()


def detector() -> CredentialDetector:
    return CredentialDetector(CredentialSettings(KEY), FORMATS, SIGS)


def run(*pairs: tuple[bytes, bytes | None], d: CredentialDetector | None = None
        ) -> list[dict[str, object]]:
    d = d or detector()
    for q, rs in pairs:
        for o in exchange_obs(q, rs):
            d.on_observation(o)
    return [f.to_dict() for f in d.findings()]


@pytest.mark.parametrize(("fmt", "token"), sorted(SAMPLES.items()))
def test_each_format_is_classified(fmt: str, token: str) -> None:
    d = detector()
    got = d.classify(token)
    assert got is not None and got.id == fmt
    (f,) = run((req("GET", "/anything", headers={"Authorization": f"Bearer {token}"}), None), d=d)
    c = f["credential"]
    assert c["format"] == fmt  # type: ignore[index]
    assert c["hmac_sha256"] == hmac.new(KEY, token.encode(), hashlib.sha256).hexdigest()  # type: ignore[index]
    prefix = c["prefix"]  # type: ignore[index]
    assert prefix.endswith("...") and token.startswith(prefix[:-3])
    assert len(prefix[:-3]) - len(got.prefix) <= 4  # at most 4 characters of secret
    assert token not in json.dumps(f) and token not in repr(d.findings())


def test_locations_header_query_basic_and_body() -> None:
    k = SAMPLES["anthropic-api-key"]
    g = SAMPLES["google-api-key"]
    h = SAMPLES["huggingface-token"]
    o = SAMPLES["openai-project-key"]
    basic = base64.b64encode(f"user:{o}".encode()).decode()
    fs = run(
        (req("POST", "/v1/messages", {"x": 1}, {"x-api-key": k}), resp(200, {})),
        (req("GET", f"/v1beta/models?key={g}&alt=sse"), None),
        (req("POST", "/upload", {"note": f"token {h} here"}), None),
        (req("GET", "/x", headers={"Proxy-Authorization": f"Basic {basic}"}), None),
    )
    locs = {f["credential"]["format"]: f["credential"]["locations"][0]["location"]  # type: ignore[index]
            for f in fs}
    assert locs == {"anthropic-api-key": "header:x-api-key", "google-api-key": "query:key",
                    "huggingface-token": "body",
                    "openai-project-key": "header:proxy-authorization:basic-password"}
    assert all(f["severity"] == "high" for f in fs)


def test_unknown_bearer_only_to_ai_endpoints() -> None:
    tok = "Zx9" + r(A, 29)
    ai = run((req("POST", "/v1/chat/completions", {"model": "m"},
                  {"Authorization": f"Bearer {tok}"}), None))
    assert [(f["credential"]["provider"], f["severity"]) for f in ai] == [  # type: ignore[index]
        ("unknown", "medium")]
    assert run((req("GET", "/index.html", headers={"Authorization": f"Bearer {tok}"}), None)) == []
    mcp = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    assert run((req("POST", "/custom", mcp, {"Authorization": f"Bearer {tok}"}), None))
    # short or placeholder values are not credentials
    assert run((req("POST", "/api/chat", {"m": 1}, {"Authorization": "Bearer null"}), None)) == []


def test_same_token_aggregates_and_different_clients_split() -> None:
    k = SAMPLES["groq-api-key"]
    d = detector()
    q = req("POST", "/openai/v1/chat/completions", {"model": "m"}, {"Authorization": f"Bearer {k}"})
    for o in [*exchange_obs(q, None), *exchange_obs(q, None),
              *exchange_obs(q, None, client="10.9.9.9")]:
        d.on_observation(o)
    fs = d.findings()
    assert sorted((f.client_ip, f.requests) for f in fs) == [("10.1.1.2", 2), ("10.9.9.9", 1)]
    assert len({f.id for f in fs}) == 2


def test_ephemeral_key_when_none_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHADOWAI_CREDENTIAL_KEY", raising=False)
    k = SAMPLES["xai-api-key"]
    (f,) = run((req("GET", "/", headers={"Authorization": f"Bearer {k}"}), None),
               d=CredentialDetector(None, FORMATS, SIGS))
    assert f["credential"]["hmac_key"] == "ephemeral"  # type: ignore[index]
    monkeypatch.setenv("SHADOWAI_CREDENTIAL_KEY", "from-the-environment")
    (f,) = run((req("GET", "/", headers={"Authorization": f"Bearer {k}"}), None),
               d=CredentialDetector(None, FORMATS, SIGS))
    assert f["credential"]["hmac_sha256"] == hmac.new(  # type: ignore[index]
        b"from-the-environment", k.encode(), hashlib.sha256).hexdigest()


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(SAMPLES.values())), st.sampled_from(
    ["authorization", "x-api-key", "api-key", "x-goog-api-key", "query", "body"]))
def test_the_token_never_leaks(token: str, where: str) -> None:
    headers: dict[str, str] = {}
    path, body = "/v1/chat/completions", {"model": "m"}
    if where == "authorization":
        headers["Authorization"] = f"Bearer {token}"
    elif where == "query":
        path += f"?api_key={token}"
    elif where == "body":
        body = {"model": "m", "api_key": token}
    else:
        headers[where] = token
    d = detector()
    obs = exchange_obs(req("POST", path, body, headers), resp(200, {}))
    for o in obs:
        d.on_observation(o)
    fs = d.findings()
    fmt = d.classify(token)
    assert fmt is not None
    assert len(fs) == (0 if where == "body" and not fmt.scan_body else 1)
    text = json.dumps([f.to_dict() for f in fs]) + repr(fs) + str(fs) + repr(obs[0].payload)
    assert token not in text and token[-12:] not in text


def test_from_toml() -> None:
    assert from_toml({"hmac_key": "0123456789abcdef"}).hmac_key == b"0123456789abcdef"
    assert "0123" not in repr(from_toml({"hmac_key": "0123456789abcdef"}))
    with pytest.raises(InputError, match="at least 16"):
        from_toml({"hmac_key": "short"})
    with pytest.raises(InputError, match="unknown"):
        from_toml({"key": "x"})
    with pytest.raises(InputError, match="cannot read"):
        from_toml({"hmac_key_file": "/nonexistent/key"})


def test_formats_file_is_sourced_and_bad_files_are_rejected(tmp_path: Path) -> None:
    fmts = load_formats()
    assert all(f.source.startswith("http") for f in fmts)
    assert {f.id for f in fmts} >= set(SAMPLES)
    bad = tmp_path / "c.yaml"
    bad.write_text("formats:\n  - {id: x, provider: P, prefix: x, regex: '(', source: s}\n")
    with pytest.raises(InputError, match="bad regex"):
        load_formats(bad)
    bad.write_text("formats: []\n")
    with pytest.raises(InputError, match="non-empty"):
        load_formats(bad)


def test_requests_without_any_token_source_are_skipped_but_tokens_are_not() -> None:
    k = SAMPLES["anthropic-api-key"]
    # cookies only, no query, no scannable body: nothing to find
    assert run((req("GET", "/v1/models", headers={"Cookie": f"s={k}"}), None)) == []
    assert run((req("POST", "/v1/messages", f"x {k}".encode(),
                    {"Content-Type": "application/octet-stream"}), None)) == []
    # each source alone still counts
    assert run((req("GET", f"/v1/models?api_key={k}"), None))
    assert run((req("POST", "/v1/messages", f"x {k}".encode(),
                    {"Content-Type": "text/plain"}), None))
    assert run((req("GET", "/v1/models", headers={"api-key": k}), None))
