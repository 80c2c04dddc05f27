"""Real HTTP/3 (aioquic client and server) in a network namespace, captured and hunted.

Needs root (network namespace), `ip`, `tcpdump` and the aioquic package;
skipped otherwise. Traffic stays on the namespace's own loopback.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from sensor.cli import main

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("tcpdump"),
    reason="needs root, ip and tcpdump")


def _cert(tmp: Path, name: str) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    subj = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subj).issuer_name(subj)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256()))
    c, k = tmp / "cert.pem", tmp / "key.pem"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    return c, k


def test_http3_to_an_ai_host_is_found_by_quic_sni(tmp_path):
    pytest.importorskip("aioquic")
    ns = f"sai-h3-{os.getpid()}"
    sni = "api.openai.com"
    cert, key = _cert(tmp_path, sni)
    pcap = tmp_path / "h3.pcap"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    dump = None
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        dump = subprocess.Popen(
            # immediate mode: packets still in the kernel ring when tcpdump is stopped
            # would be counted as received but never written
            ["ip", "netns", "exec", ns, "tcpdump", "-i", "lo", "--immediate-mode", "-U", "-n",
             "-w", str(pcap), "udp", "port", "4433"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert dump.stderr is not None
        deadline = time.monotonic() + 10
        while b"listening on" not in dump.stderr.readline():  # tcpdump is capturing
            assert time.monotonic() < deadline, "tcpdump did not start"
        r = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "tests.helpers.h3_lab",
             "127.0.0.1", "4433", sni, str(cert), str(key)],
            cwd=REPO, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr[-2000:]
        assert r.stdout.strip() == "200"
        time.sleep(0.5)
    finally:
        tail = b""
        if dump is not None:
            dump.terminate()
            dump.wait(10)
            assert dump.stderr is not None
            tail = dump.stderr.read()
        subprocess.run(["ip", "netns", "del", ns], check=False)
    out = tmp_path / "f.jsonl"
    obs = tmp_path / "o.jsonl"
    assert pcap.stat().st_size > 24, tail.decode(errors="replace")
    res = CliRunner().invoke(main, ["hunt", str(pcap), "-o", str(out), "--observations", str(obs),
                                    "-q"])
    assert res.exit_code == 0, res.output
    import json
    found = [json.loads(x) for x in out.read_text().splitlines()]
    [f] = [f for f in found if f["type"] == "ai_service_use"]
    assert f["service"]["id"] == "openai-api"
    assert f["attributed_by"] == ["quic.sni"]
    assert {"kind": "quic.sni", "value": sni, "count": 1} in f["evidence"]
    assert f["tls"]["ja4"][0].startswith("q13d")
    hellos = [json.loads(x) for x in obs.read_text().splitlines()]
    assert [h["sni"] for h in hellos if h["kind"] == "quic.client_hello"] == [sni]
