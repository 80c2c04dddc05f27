"""End-to-end lab: real SDK clients and servers in network namespaces, captured with tcpdump,
then hunted with ``shadowai hunt``.

Root only (ip netns, tcpdump); skipped otherwise, or when the ``ollama``, ``openai`` or
``mcp`` packages are missing. Layout: two namespaces joined by one veth pair,
server 10.66.0.1 (Ollama imitation :11434, MCP Streamable HTTP :8000/mcp, MCP HTTP+SSE
:8001/sse), client 10.66.0.2. Nothing leaves the namespaces (no routes, no DNS). Every
process is bounded by ``timeout``; the namespaces are deleted whatever happens.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import importlib.util
import json
import os
import random
import shutil
import signal
import string
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PY = sys.executable
SHADOWAI = Path(PY).parent / "shadowai"
SRV, CLI = "10.66.0.1", "10.66.0.2"
HMAC_KEY = "lab-deployment-key-0123456789"

pytestmark = pytest.mark.slow


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (ip netns, tcpdump)"
    for tool in ("ip", "tcpdump", "timeout"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    for mod in ("ollama", "openai", "mcp", "httpx"):
        if importlib.util.find_spec(mod) is None:
            return f"python package {mod} not installed"
    if not SHADOWAI.exists():
        return f"{SHADOWAI} not installed"
    return None


def _rand(alphabet: str, n: int, rnd: random.Random) -> str:
    return "".join(rnd.choice(alphabet) for _ in range(n))


@dataclass
class Lab:
    findings: list[dict[str, Any]]
    outputs: dict[str, str]  # name -> text of every output the run produced
    keys: dict[str, str]
    client_log: str


def _run(*cmd: str, timeout: float = 20) -> None:
    subprocess.run(cmd, check=True, timeout=timeout, capture_output=True)


def _kill(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGINT)
            p.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=5)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    why = _missing()
    if why:
        pytest.skip(why)
    work = tmp_path_factory.mktemp("lab")
    tag = f"{os.getpid() % 100000}"
    ns_s, ns_c = f"sai6s{tag}", f"sai6c{tag}"
    rnd = random.Random()
    alnum = string.ascii_letters + string.digits
    keys = {
        # formats of signatures/credentials.yaml, random per run
        "openai": "sk-proj-" + _rand(alnum + "_-", 156, rnd),
        "hf": "hf_" + _rand(string.ascii_letters, 34, rnd),
    }
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(LAB_OPENAI_KEY=keys["openai"], LAB_HF_KEY=keys["hf"], NO_PROXY="*",
               PYTHONPATH=str(REPO))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for ns in (ns_s, ns_c):
            _run("ip", "netns", "add", ns)
            _run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        _run("ip", "-n", ns_s, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
             "netns", ns_c)
        for ns, addr in ((ns_s, SRV), (ns_c, CLI)):
            _run("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
            _run("ip", "-n", ns, "link", "set", "eth0", "up")
        ready = work / "ready"
        srv = subprocess.Popen(
            ["ip", "netns", "exec", ns_s, "timeout", "150", PY, str(HERE / "lab_servers.py"),
             SRV, str(work), "140"], env=env, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=open(work / "servers.log", "wb"))  # noqa: SIM115
        procs.append(srv)
        deadline = time.monotonic() + 40
        while not ready.exists() and time.monotonic() < deadline and srv.poll() is None:
            time.sleep(0.1)
        assert ready.exists(), (work / "servers.log").read_text()
        pcap = work / "lab.pcap"
        dump = subprocess.Popen(
            ["ip", "netns", "exec", ns_s, "timeout", "120", "tcpdump", "-i", "eth0",
             "--immediate-mode", "-n", "-s", "0", "-U", "-w", str(pcap)], start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=open(work / "tcpdump.log", "wb"))  # noqa: SIM115
        procs.append(dump)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and "listening on" not in (
                work / "tcpdump.log").read_text():
            time.sleep(0.1)
        cl = subprocess.run(
            ["ip", "netns", "exec", ns_c, "timeout", "90", PY, str(HERE / "lab_clients.py"), SRV],
            env=env, capture_output=True, timeout=100)
        client_log = cl.stdout.decode() + cl.stderr.decode()
        assert cl.returncode == 0, client_log
        time.sleep(1.0)
        _kill(dump)
        if os.environ.get("SAI_LAB_KEEP"):  # keep the capture for a look (a directory)
            shutil.copy(pcap, os.environ["SAI_LAB_KEEP"])
        out, obs = work / "findings.jsonl", work / "observations.jsonl"
        hunt = subprocess.run(
            [str(SHADOWAI), "hunt", str(pcap), "-o", str(out), "--observations", str(obs)],
            env={**env, "SHADOWAI_CREDENTIAL_KEY": HMAC_KEY}, capture_output=True, timeout=120)
        assert hunt.returncode == 0, hunt.stderr.decode()
        outputs = {"findings": out.read_text(), "observations": obs.read_text(),
                   "stdout": hunt.stdout.decode(), "stderr": hunt.stderr.decode()}
        findings = [json.loads(x) for x in outputs["findings"].splitlines() if x]
        yield Lab(findings, outputs, keys, client_log)
    finally:
        for p in procs:
            _kill(p)
        for ns in (ns_s, ns_c):
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, timeout=10)
            for pid in pids.stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def _of(lab: Lab, type_: str) -> list[dict[str, Any]]:
    return [f for f in lab.findings if f["type"] == type_]


def test_ollama_server_is_found_with_models_pull_and_clients(lab: Lab) -> None:
    (f,) = _of(lab, "self_hosted_llm")
    assert (f["server"]["ip"], f["server"]["port"]) == (SRV, 11434)
    s = f["self_hosted_llm"]
    assert s["product"] == "Ollama"
    assert "OpenAI-compatible server" in s["products"]  # its /v1 routes answered too
    assert {"llama3.2:1b", "qwen2.5:0.5b"} <= set(s["models"])
    assert s["pulled_models"] == ["qwen2.5:0.5b"]
    assert s["authentication"] == "none" and f["severity"] == "high"
    assert [c["ip"] for c in s["clients"]] == [CLI]
    assert f["counts"]["requests_with_credentials"] >= 3  # the openai SDK and the bearer client


def test_mcp_streamable_http_server(lab: Lab) -> None:
    (f,) = [x for x in _of(lab, "mcp_server") if x["server"]["port"] == 8000]
    m = f["mcp"]
    assert f["server"]["ip"] == SRV and "/mcp" in m["paths"]
    assert "streamable-http" in m["transports"]
    assert m["protocol_version"]
    assert any(n.startswith("shadowai-lab-tools") for n in m["server_names"]), m
    assert m["client_names"], m
    assert {"add", "lookup_weather"} <= set(m["tools_listed"])
    assert [t["name"] for t in m["tools_called"]] == ["add"]
    assert [c["ip"] for c in m["clients"]] == [CLI]


def test_mcp_http_sse_server(lab: Lab) -> None:
    found = [x for x in _of(lab, "mcp_server") if x["server"]["port"] == 8001]
    if "mcp-sse tools" not in lab.client_log:
        pytest.skip("this mcp SDK has no HTTP+SSE transport")
    (f,) = found
    m = f["mcp"]
    assert "http+sse" in m["transports"] and "/sse" in m["paths"]
    assert any(n.startswith("shadowai-lab-tools") for n in m["server_names"]), m
    assert {"add", "lookup_weather"} <= set(m["tools_listed"])
    assert [t["name"] for t in m["tools_called"]] == ["lookup_weather"]


def test_cleartext_credentials_are_reported_by_provider_prefix_and_hmac(lab: Lab) -> None:
    creds = {f["credential"]["provider"]: f for f in _of(lab, "cleartext_credential")}
    assert set(creds) == {"OpenAI", "Hugging Face"}
    for provider, name in (("OpenAI", "openai"), ("Hugging Face", "hf")):
        c = creds[provider]["credential"]
        key = lab.keys[name]
        want = hmac.new(HMAC_KEY.encode(), key.encode(), hashlib.sha256).hexdigest()
        assert c["hmac_sha256"] == want and c["hmac_key"] == "configured"
        lit = "sk-proj-" if name == "openai" else "hf_"
        assert c["prefix"] == key[: len(lit) + 4] + "..."
        assert creds[provider]["client"]["ip"] == CLI
        assert creds[provider]["server"] == {"ip": SRV, "port": 11434, "name": SRV}


def test_raw_keys_appear_in_no_output(lab: Lab) -> None:
    for key in lab.keys.values():
        secret_part = key[-24:]
        for name, text in lab.outputs.items():
            assert key not in text and secret_part not in text, name
