"""Run-time settings: one frozen object built from defaults, a TOML file and the CLI.

It is passed explicitly to every stage; nothing reads global state.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from sensor.errors import InputError
from sensor.flows import FlowTimeouts


@dataclass(frozen=True, slots=True)
class Settings:
    batch_packets: int = 32768
    max_flows: int = 500_000
    timeouts: FlowTimeouts = field(default_factory=FlowTimeouts)
    signature_dirs: tuple[Path, ...] = ()  # empty: the bundled signatures/
    # a flow is attributed to a name the client resolved at most this long before it
    dns_max_age_s: float = 86400.0
    max_dns_bindings: int = 1_000_000
    stream_bytes: int = 16384  # per-direction bytes kept to finish a handshake or HTTP head
    stream_segments: int = 32
    max_pending_streams: int = 100_000
    max_evidence_values: int = 20  # distinct evidence values kept per finding


def load_settings(path: Path | None, **overrides: Any) -> Settings:
    """Settings from an optional TOML file (``[sensor]`` table) plus overrides."""
    base = Settings()
    values: dict[str, Any] = {}
    if path is not None:
        table = _read_toml(path).get("sensor", {})
        if not isinstance(table, dict):
            raise InputError(f"{path}: [sensor] must be a table")
        known = {f.name for f in fields(Settings)}
        for k, v in table.items():
            if k not in known:
                raise InputError(f"{path}: unknown setting sensor.{k}")
            if k == "timeouts":
                if not isinstance(v, dict):
                    raise InputError(f"{path}: sensor.timeouts must be a table")
                try:
                    v = FlowTimeouts(**{n: _positive(path, f"timeouts.{n}", x, float)
                                        for n, x in v.items()})
                except TypeError as e:
                    raise InputError(f"{path}: sensor.timeouts: {e}") from e
            elif k == "signature_dirs":
                if not isinstance(v, list) or not all(isinstance(p, str) for p in v):
                    raise InputError(f"{path}: sensor.signature_dirs must be a list of paths")
                v = tuple(Path(p) for p in v)
            else:
                v = _positive(path, k, v, type(getattr(base, k)))
            values[k] = v
    values.update({k: v for k, v in overrides.items() if v is not None})
    return replace(base, **values)


def load_tables(path: Path | None) -> dict[str, Any]:
    """Every table of the TOML config (``[policy]``, ``[identity]``, ``[sinks]``...)."""
    if path is None:
        return {}
    data = _read_toml(path)
    known = {"sensor", "policy", "identity", "sinks", "model", "watch", "credentials"}
    for k in data:
        if k not in known:
            raise InputError(f"{path}: unknown table [{k}] (known: {', '.join(sorted(known))})")
    return data


def _positive(path: Path, name: str, v: Any, kind: type) -> Any:
    """A count (int) or a duration/limit (float): a number above zero, else InputError."""
    ok = (isinstance(v, int) if kind is int else isinstance(v, int | float)) \
        and not isinstance(v, bool) and v > 0
    if not ok:
        what = "a whole number" if kind is int else "a number"
        raise InputError(f"{path}: sensor.{name} must be {what} above 0, not {v!r}")
    return kind(v)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise InputError(f"{path}: cannot read config: {e}") from e
