"""Pseudonymizer: stable keyed pseudonyms, finding rewrite."""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

import pytest

from sensor.errors import InputError
from sensor.identity import Pseudonymizer, pseudonymize_finding_dict

KEY = b"k" * 32


def test_stable_keyed_and_normalised() -> None:
    p = Pseudonymizer(KEY)
    u = p.user("alice")
    assert re.fullmatch(r"user-[0-9a-f]{12}", u)
    want = hmac.new(KEY, b"user\x00alice", hashlib.sha256).hexdigest()[:12]
    assert u == f"user-{want}"
    assert p.user("CORP\\Alice") == p.user("alice@CORP.EXAMPLE") == u
    assert Pseudonymizer(b"x" * 32).user("alice") != u  # another key, another pseudonym
    assert p.host("PC1.") == p.host("pc1") and p.host("pc1").startswith("host-")
    assert p.mac("00-11-22-33-44-55") == p.mac("00:11:22:33:44:55")
    assert p.mac("00:11:22:33:44:55").startswith("mac-")
    assert p.user("alice") != p.host("alice")  # kinds are separated
    assert p.user(u) == u  # idempotent


def test_short_key_rejected() -> None:
    with pytest.raises(InputError):
        Pseudonymizer(b"short")


def finding() -> dict[str, Any]:
    return {
        "schema": "shadowai.finding/v1", "id": "abc", "type": "ai.usage",
        "client": {"ip": "10.0.0.5", "mac": "00:11:22:33:44:55", "hostname": "alice-laptop",
                   "user": "CORP\\alice",
                   "attribution": [
                       {"source": "dhcp", "confidence": 0.9, "mac": "00:11:22:33:44:55",
                        "hostname": "alice-laptop"},
                       {"source": "kerberos", "confidence": 0.9, "user": "alice@CORP"}]},
        "server": {"ip": "1.2.3.4", "port": 443, "name": "api.openai.com"},
        "evidence": [{"kind": "sni", "value": "api.openai.com", "count": 3},
                     {"kind": "http.path", "value": "/u/alice/chat?from=alice-laptop", "count": 1},
                     {"kind": "user", "value": "bob", "count": 1},
                     {"kind": "http.path", "value": "/malice/x", "count": 1}],
    }


def test_finding_rewrite() -> None:
    p = Pseudonymizer(KEY)
    d = finding()
    out = p.pseudonymize_finding_dict(d)
    assert d == finding()  # the input is not modified
    c = out["client"]
    assert c["ip"] == "10.0.0.5"
    assert c["user"] == p.user("alice") and c["hostname"] == p.host("alice-laptop")
    assert c["mac"] == p.mac("00:11:22:33:44:55")
    assert c["attribution"][0]["mac"] == c["mac"]
    assert c["attribution"][0]["hostname"] == c["hostname"]
    assert c["attribution"][1]["user"] == c["user"]
    assert c["attribution"][1]["source"] == "kerberos"
    ev = out["evidence"]
    assert ev[0]["value"] == "api.openai.com"
    assert ev[1]["value"] == f"/u/{p.user('alice')}/chat?from={p.host('alice-laptop')}"
    assert ev[2]["value"] == p.user("bob")
    assert ev[3]["value"] == "/malice/x"  # only whole names are replaced
    text = repr(out)
    assert "alice" not in text.replace("malice", "") and "bob" not in text
    assert pseudonymize_finding_dict(d, KEY) == out


def test_client_without_identity_untouched() -> None:
    d = {"client": {"ip": "10.0.0.1", "mac": None, "hostname": None, "user": None,
                    "attribution": []}, "evidence": []}
    assert Pseudonymizer(KEY).pseudonymize_finding_dict(d) == d
    assert Pseudonymizer(KEY).pseudonymize_finding_dict({"client": None}) == {"client": None}
