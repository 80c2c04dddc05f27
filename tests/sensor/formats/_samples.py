"""Sample findings of every type, built through sensor.findings where it can."""

from __future__ import annotations

from typing import Any

from sensor.findings import Finding, ServiceRef

TYPES = ("ai_service_use", "mcp_server_use", "self_hosted_llm", "mcp_server",
         "cleartext_credential", "extraction_volume", "bulk_upload", "encrypted_dns")


def sample(i: int = 0, ftype: str = "ai_service_use", **over: Any) -> dict[str, Any]:
    f = Finding(type=ftype, client_ip=f"10.0.{i // 250}.{i % 250 + 1}",
                service=ServiceRef("openai", "OpenAI API", "OpenAI", "llm_api"),
                first_ns=1_764_000_000_000_000_000 + i, last_ns=1_764_000_060_123_456_000 + i,
                client_mac="02:00:00:00:00:01", server_ip="104.18.7.192", server_port=443,
                server_name="api.openai.com", flows=3, packets=40,
                bytes_client_to_server=5000, bytes_server_to_client=90000)
    f.add_evidence("tls.sni", "api.openai.com", 20)
    f.add_evidence("dns.query", "api.openai.com", 20)
    d = f.to_dict()
    d["type_detail"] = {"n": i, "note": "x"}
    d.update(over)
    return d
