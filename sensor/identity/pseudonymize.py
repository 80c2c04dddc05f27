"""Keyed pseudonyms for user names, host names and MACs in findings.

``Pseudonymizer(key)`` maps a value to ``<kind>-<12 hex>``, the first 48 bits
of HMAC-SHA256(key, kind || 0x00 || normalised value). The same key gives the
same pseudonym on every sensor and run, so findings still group by person or
device; without the key the mapping cannot be reversed or recomputed by
guessing names. Values are normalised first (user names: account part
lower-case, as :func:`sensor.identity.model.user_key`; host names: lower-case;
MACs: canonical ``aa:bb:..``) so spelling variants share a pseudonym.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import re
from typing import Any

from sensor.errors import InputError
from sensor.identity.model import norm_mac, user_key

DIGEST_HEX = 12
_PSEUDONYM = re.compile(rf"^(user|host|mac)-[0-9a-f]{{{DIGEST_HEX}}}$")
# evidence kinds whose value is a user / host name as a whole
_USER_KINDS = frozenset({"user", "username", "principal", "kerberos.cname", "account"})
_HOST_KINDS = frozenset({"hostname", "host_name", "dhcp.hostname", "device"})
_MIN_EMBEDDED = 3  # shorter names are not searched for inside other evidence text


class Pseudonymizer:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise InputError("pseudonymization key must be at least 16 bytes")
        self._key = key

    def _tag(self, kind: str, value: str) -> str:
        if _PSEUDONYM.match(value):
            return value  # already a pseudonym: idempotent
        mac = hmac.new(self._key, kind.encode() + b"\x00" + value.encode(), hashlib.sha256)
        return f"{kind}-{mac.hexdigest()[:DIGEST_HEX]}"

    def user(self, name: str) -> str:
        return self._tag("user", user_key(name))

    def host(self, name: str) -> str:
        return self._tag("host", name.strip().rstrip(".").lower())

    def mac(self, mac: str) -> str:
        return self._tag("mac", norm_mac(mac) or mac.lower())

    def pseudonymize_finding_dict(self, d: dict[str, Any]) -> dict[str, Any]:
        """A copy of finding ``d`` with user, host and MAC values replaced.

        Rewrites ``client.user/hostname/mac``, the same keys in every
        ``client.attribution`` entry, evidence values of user/host kinds, and
        any of the finding's own user/host names appearing inside other
        evidence values (e.g. ``bob@CORP`` inside a URL).
        """
        out = copy.deepcopy(d)
        names: dict[str, str] = {}  # original text -> pseudonym, for embedded search
        client = out.get("client")
        if isinstance(client, dict):
            self._rewrite(client, names)
            for entry in client.get("attribution") or ():
                if isinstance(entry, dict):
                    self._rewrite(entry, names)
        for ev in out.get("evidence") or ():
            if not isinstance(ev, dict) or not isinstance(ev.get("value"), str):
                continue
            kind = str(ev.get("kind", "")).lower()
            fn = self.user if kind in _USER_KINDS else self.host if kind in _HOST_KINDS else None
            if fn is not None:
                p = fn(ev["value"])
                names.setdefault(ev["value"], p)
                ev["value"] = p
        for ev in out.get("evidence") or ():
            if isinstance(ev, dict) and isinstance(ev.get("value"), str):
                ev["value"] = _replace_embedded(ev["value"], names)
        return out

    def _rewrite(self, obj: dict[str, Any], names: dict[str, str]) -> None:
        for key, fn in (("user", self.user), ("hostname", self.host), ("mac", self.mac)):
            v = obj.get(key)
            if isinstance(v, str) and v:
                p = fn(v)
                if key != "mac":
                    names.setdefault(v, p)
                    if key == "user":  # the bare account name may appear alone too
                        names.setdefault(v.rsplit("\\", 1)[-1].split("@", 1)[0], p)
                obj[key] = p


def _replace_embedded(text: str, names: dict[str, str]) -> str:
    if _PSEUDONYM.match(text):
        return text
    for orig in sorted(names, key=len, reverse=True):  # longest first: bob@X before bob
        if len(orig) >= _MIN_EMBEDDED and orig != names[orig]:
            pat = r"(?<![0-9A-Za-z])" + re.escape(orig) + r"(?![0-9A-Za-z])"
            text = re.sub(pat, names[orig], text, flags=re.IGNORECASE)
    return text


def pseudonymize_finding_dict(d: dict[str, Any], key: bytes) -> dict[str, Any]:
    """Module-level form of :meth:`Pseudonymizer.pseudonymize_finding_dict`."""
    return Pseudonymizer(key).pseudonymize_finding_dict(d)


__all__ = ["Pseudonymizer", "pseudonymize_finding_dict"]
