"""Identity records: a binding of an IP address to a device and/or user over time."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from sensor.findings import rfc3339


@dataclass(frozen=True, slots=True)
class Binding:
    """``ip`` belonged to a device (``mac``/``hostname``) and/or ``user`` from ``start_ns``.

    ``end_ns`` is exclusive; ``None`` means open-ended: the binding lasts until
    the next binding of the same kind (device or user) with a different value
    on the same IP (see :class:`sensor.identity.store.IdentityStore`).
    ``confidence`` is in [0, 1]. ``source`` names where it came from
    (``dhcp``, ``kerberos``, ``zeek-dhcp``, ``winlog-4624``, ``feed``...).
    """

    ip: str
    start_ns: int
    end_ns: int | None
    mac: str | None = None
    hostname: str | None = None
    user: str | None = None
    source: str = "feed"
    confidence: float = 1.0

    @property
    def has_device(self) -> bool:
        return self.mac is not None or self.hostname is not None

    def entry(self, confidence: float, conflict: bool) -> dict[str, Any]:
        """The ``attribution`` list entry of this binding."""
        d: dict[str, Any] = {"source": self.source, "confidence": round(confidence, 3),
                             "since": rfc3339(self.start_ns) if self.start_ns > 0 else None,
                             "until": rfc3339(self.end_ns) if self.end_ns is not None else None}
        for k in ("mac", "hostname", "user"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        if conflict:
            d["conflict"] = True
        return d


@dataclass(frozen=True, slots=True)
class Attribution:
    """Who held an IP at one instant: the merged facts and every binding behind them."""

    ip: str
    mac: str | None
    hostname: str | None
    user: str | None
    bindings: tuple[Binding, ...] = ()
    confidences: tuple[float, ...] = ()  # per binding, lowered when in conflict
    conflicts: frozenset[str] = field(default_factory=frozenset)  # "mac" | "hostname" | "user"

    @property
    def attribution(self) -> list[dict[str, Any]]:
        out = []
        for b, c in zip(self.bindings, self.confidences, strict=True):
            clash = any(getattr(b, k) is not None for k in self.conflicts)
            out.append(b.entry(c, clash))
        return out

    def to_client_dict(self, ip: str | None = None) -> dict[str, Any]:
        """The finding's ``client`` object: {ip, mac, hostname, user, attribution}."""
        return {"ip": ip if ip is not None else self.ip, "mac": self.mac,
                "hostname": self.hostname, "user": self.user,
                "attribution": self.attribution}


def norm_ip(text: str) -> str:
    """Canonical IP text (``::ffff:a.b.c.d`` becomes ``a.b.c.d``); ValueError if not an IP."""
    a = ipaddress.ip_address(text.strip().split("%", 1)[0])
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
        return str(a.ipv4_mapped)
    return str(a)


def norm_mac(text: str) -> str | None:
    """``aa:bb:cc:dd:ee:ff`` from any of the usual spellings; None if not a 48-bit MAC."""
    hexd = "".join(c for c in text.lower() if c in "0123456789abcdef")
    if len(hexd) != 12 or len(text.strip()) > 17:
        return None
    return ":".join(hexd[i : i + 2] for i in range(0, 12, 2))


def user_key(user: str) -> str:
    """The account part of a user name, lower-case: ``DOM\\Bob``, ``bob@DOM.LOCAL`` -> ``bob``.

    Two logons are "the same user" when their keys are equal (Windows account
    names are case-insensitive; domains are spelled NetBIOS or DNS style).
    """
    u = user.rsplit("\\", 1)[-1]
    return u.split("@", 1)[0].lower()
