"""The native JSON form: the finding dict as Finding.to_dict() made it."""

from __future__ import annotations

from typing import Any

from sensor.formats.common import dumps


def finding_to_native(f: dict[str, Any]) -> dict[str, Any]:
    return f


def encode(doc: dict[str, Any]) -> bytes:
    return dumps(doc)
