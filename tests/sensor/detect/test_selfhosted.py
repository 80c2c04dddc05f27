"""Self-hosted LLM server detection: signatures, products, models, auth, loader errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensor.detect.selfhosted import (
    SelfHostedDetector,
    is_internal,
    json_path,
    load_signatures,
    parse_signature,
    request_path,
)
from sensor.errors import InputError
from tests.sensor.detect._http import exchange_obs, req, resp

SIGS = load_signatures()


def run(*pairs: tuple[bytes, bytes | None], **kw: object) -> list[dict[str, object]]:
    d = SelfHostedDetector(SIGS)
    for q, r in pairs:
        for o in exchange_obs(q, r, **kw):  # type: ignore[arg-type]
            d.on_observation(o)
    return [f.to_dict() for f in d.findings()]


def test_every_bundled_signature_loads_and_ids_are_unique() -> None:
    assert {s.id for s in SIGS} >= {"ollama", "vllm", "llamacpp", "lmstudio", "localai", "tgi",
                                    "open-webui", "comfyui", "openai-compatible"}
    assert SIGS[0].priority >= SIGS[-1].priority


def test_ollama_banner_alone_is_enough_and_unauthenticated_is_high() -> None:
    (f,) = run((req("GET", "/"), resp(200, b"Ollama is running", "text/plain")))
    assert f["type"] == "self_hosted_llm" and f["severity"] == "high"
    assert f["self_hosted_llm"]["product"] == "Ollama"  # type: ignore[index]
    assert f["server"] == {"ip": "10.1.1.9", "port": 11434, "name": "10.1.1.9"}
    assert f["client"] is None


def test_models_version_pull_and_clients() -> None:
    tags = {"models": [{"name": "llama3.2:1b", "model": "llama3.2:1b"}]}
    (f,) = run(
        (req("GET", "/api/tags"), resp(200, tags)),
        (req("GET", "/api/version"), resp(200, {"version": "0.6.3"})),
        (req("POST", "/api/pull", {"model": "qwen2.5:0.5b", "stream": False}),
         resp(200, {"status": "success"})),
    )
    s = f["self_hosted_llm"]
    assert s["version"] == "0.6.3"  # type: ignore[index]
    assert s["models"] == ["llama3.2:1b", "qwen2.5:0.5b"]  # type: ignore[index]
    assert s["pulled_models"] == ["qwen2.5:0.5b"]  # type: ignore[index]
    assert s["clients"] == [{"ip": "10.1.1.2", "requests": 3}]  # type: ignore[index]


def test_credentials_and_refusals_make_it_medium() -> None:
    (f,) = run((req("GET", "/api/tags", headers={"Authorization": "Bearer abcdefghijkl"}),
                resp(200, {"models": []})),
               (req("POST", "/api/chat", {"model": "m"}), resp(401, {"error": "unauthorized"})))
    assert f["severity"] == "medium"
    assert f["self_hosted_llm"]["authentication"] == "required"  # type: ignore[index]
    assert f["counts"]["requests_with_credentials"] == 1  # type: ignore[index]


@pytest.mark.parametrize(("product", "pairs"), [
    ("vLLM", [(req("GET", "/metrics"),
               resp(200, b"# HELP vllm:num_requests_running x\nvllm:num_requests_running 0\n",
                    "text/plain"))]),
    ("vLLM", [(req("GET", "/v1/models"),
               resp(200, {"object": "list", "data": [{"id": "m", "owned_by": "vllm"}]}))]),
    ("llama.cpp server", [(req("GET", "/props"),
                           resp(200, {"default_generation_settings": {}, "total_slots": 1}))]),
    ("llama.cpp server", [(req("GET", "/slots"), resp(200, [{"id": 0, "n_ctx": 4096}]))]),
    ("Text Generation Inference", [(req("POST", "/generate", {"inputs": "hi"}),
                                    resp(200, {"generated_text": "yo"}))]),
    ("Text Generation Inference", [(req("GET", "/info"),
                                    resp(200, {"model_id": "m", "max_total_tokens": 8}))]),
    ("LM Studio", [(req("GET", "/api/v0/models"),
                    resp(200, {"data": [{"id": "m", "state": "loaded",
                                         "compatibility_type": "gguf"}]}))]),
    ("LocalAI", [(req("POST", "/models/apply", {"id": "x"}),
                  resp(200, {"uuid": "1", "status": "http://x/models/jobs/1"}))]),
    ("Open WebUI", [(req("GET", "/api/config"),
                     resp(200, {"name": "Open WebUI", "version": "0.5"}))]),
    ("ComfyUI", [(req("POST", "/prompt", {"prompt": {}}), resp(200, {"prompt_id": "abc"}))]),
    ("OpenAI-compatible server", [(req("POST", "/v1/chat/completions", {"model": "qwen"}),
                                   resp(200, {"object": "chat.completion", "model": "qwen"}))]),
])
def test_products(product: str, pairs: list[tuple[bytes, bytes]]) -> None:
    (f,) = run(*pairs)
    assert f["self_hosted_llm"]["product"] == product  # type: ignore[index]


def test_generic_openai_server_only_from_an_internal_address() -> None:
    pair = (req("POST", "/v1/chat/completions", {"model": "x"}),
            resp(200, {"object": "chat.completion"}))
    assert run(pair, server="10.2.3.4")
    assert run(pair, server="203.0.113.7") == []
    d = SelfHostedDetector(SIGS, internal=lambda ip: ip.startswith("203.0.113."))
    for o in exchange_obs(*pair, server="203.0.113.7"):
        d.on_observation(o)
    assert [f.product for f in d.findings()] == ["OpenAI-compatible server"]


@pytest.mark.parametrize("pairs", [
    [(req("GET", "/"), resp(200, b"<html>Welcome</html>", "text/html"))],
    [(req("GET", "/health"), resp(200, {"status": "ok"}))],  # one weak rule only
    [(req("GET", "/api/tags"), resp(404, b"not found", "text/plain"))],
    [(req("POST", "/prompt", {"a": 1}), resp(200, {"ok": True}))],
    [(req("GET", "/metrics"), resp(200, b"http_requests_total 5\n", "text/plain"))],
])
def test_ordinary_http_is_not_a_model_server(pairs: list[tuple[bytes, bytes]]) -> None:
    assert run(*pairs) == []


def test_two_weak_rules_of_one_product_confirm_it() -> None:
    (f,) = run((req("POST", "/api/generate", {"model": "m"}), None),
               (req("GET", "/api/ps"), None))
    assert f["self_hosted_llm"]["product"] == "Ollama"  # type: ignore[index]


def test_gzip_response_body_is_inflated() -> None:
    import gzip

    body = gzip.compress(b'{"models": [{"name": "gz:1b"}]}')
    (f,) = run((req("GET", "/api/tags"), resp(200, body, headers={"Content-Encoding": "gzip"})))
    assert f["self_hosted_llm"]["models"] == ["gz:1b"]  # type: ignore[index]


def test_helpers() -> None:
    assert request_path("http://h:1/a/b?x=1") == "/a/b" and request_path("/x?y") == "/x"
    assert json_path({"data": [{"id": "a"}, {"id": "b"}, {"id": 3}]}, "data.id") == ["a", "b"]
    for ip, want in (("10.0.0.1", True), ("172.31.2.3", True), ("172.32.0.1", False),
                     ("192.168.1.1", True), ("127.0.0.1", True), ("fd00::1", True),
                     ("::1", True), ("8.8.8.8", False), ("2001:db8::1", False),
                     ("::ffff:10.0.0.1", True), ("bogus", False)):
        assert is_internal(ip) is want, ip


BASE = {"id": "x", "product": "X", "vendor": "V", "references": ["https://x"]}


@pytest.mark.parametrize(("extra", "msg"), [
    ({}, "rules"),
    ({"rules": [{"id": "r", "strength": "meh", "request": {"path": "/"}}]}, "strength"),
    ({"rules": [{"id": "r", "request": {"path": "/"}, "response": {"body_regex": "("}}]},
     "regular expression"),
    ({"rules": [{"id": "r", "request": {"pth": "/"}}]}, "unknown key"),
    ({"rules": [{"id": "r", "request": {}}]}, "without a path"),
    ({"bogus": 1, "rules": []}, "unknown key"),
])
def test_loader_rejects_bad_signatures(extra: dict[str, object], msg: str) -> None:
    with pytest.raises(InputError, match=msg):
        parse_signature({**BASE, **extra}, "t.yaml")


def test_loader_requires_references() -> None:
    with pytest.raises(InputError, match="references"):
        parse_signature({"id": "x", "product": "X", "vendor": "V",
                         "rules": [{"id": "r", "request": {"path": "/"}}]}, "t.yaml")


def test_loader_reads_a_directory_and_rejects_duplicates(tmp_path: Path) -> None:
    text = ("id: a\nproduct: A\nvendor: V\nreferences: [https://a]\n"
            "rules:\n  - {id: r, request: {path: /x}}\n")
    (tmp_path / "a.yaml").write_text(text)
    assert [s.id for s in load_signatures([tmp_path])] == ["a"]
    (tmp_path / "b.yaml").write_text(text)
    with pytest.raises(InputError, match="duplicate"):
        load_signatures([tmp_path])
    with pytest.raises(InputError, match="no such"):
        load_signatures([tmp_path / "missing"])


def test_rule_index_keeps_every_rule_that_can_match() -> None:
    from sensor.detect.selfhosted import _RuleIndex

    index = _RuleIndex.build(SIGS)
    paths = {p for s in SIGS for r in s.rules for p in r.paths}
    paths |= {"/", "/x", "/api/v0/models/m", "/ollama/api/tags", "/api/v1/chats/1",
              "/proxy/v1/chat/completions", "/v1/models", "/v1/models/x"}
    methods = {m for s in SIGS for r in s.rules for m in r.methods} | {"PATCH", "get", ""}
    for method in methods:
        for path in paths:
            got = index.candidates(method, path)
            assert list(got) == sorted(set(got))  # evaluation order kept
            want = [i for i, (_s, r) in enumerate(index.pairs) if r.matches_request(method, path)]
            assert set(want) <= set(got), (method, path)


def test_request_match_memo_is_bounded_and_transparent() -> None:
    from sensor.detect import selfhosted as sh

    d = SelfHostedDetector(SIGS)
    for i in range(sh._REQ_CACHE + 10):
        d._request_matches("GET", f"/p{i}")
    assert len(d._req_cache) <= sh._REQ_CACHE
    (f,) = run((req("GET", "/api/tags"), resp(200, {"models": [{"name": "a:1b"}]})))
    assert f["self_hosted_llm"]["models"] == ["a:1b"]  # type: ignore[index]
