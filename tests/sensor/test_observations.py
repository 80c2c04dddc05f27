"""Observation records as JSON: secrets in URLs never reach the output."""

from __future__ import annotations

from sensor.observations import redact_query


def test_secret_query_values_are_redacted():
    assert redact_query("/v1/models?key=AIzaSyA-secret&alt=json") == \
        "/v1/models?key=<redacted>&alt=json"
    assert redact_query("/x?q=hello&t=sk-proj-abcdef") == "/x?q=hello&t=<redacted>"
    # other values stay as sent (Zeek-like pivoting, differential tests)
    assert redact_query("/x?access_token=abc&page=2") == "/x?access_token=abc&page=2"
    assert redact_query("/plain/path") == "/plain/path"
    assert redact_query("/search?q=openai+key") == "/search?q=openai+key"
    assert redact_query("/a?flag&key=") == "/a?flag&key="
