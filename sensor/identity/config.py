"""The ``[identity]`` config table and building an :class:`IdentityStore` from it.

```toml
[identity]
wire = true                      # learn from DHCP / Kerberos packets
files = ["/var/lib/dhcp/dhcpd.leases",
         {path = "/var/log/winlogbeat/security.jsonl", format = "winlog"}]
open_ttl_s = 86400               # cap on open-ended bindings (logons); 0 = none
pseudonymize = false             # rewrite user/host/MAC in findings
key_file = "/etc/shadowai/pseudonym.key"   # >= 16 bytes; required with pseudonymize
```
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sensor.errors import InputError
from sensor.identity.pseudonymize import Pseudonymizer
from sensor.identity.readers import FORMATS, IdentityLoad, load_identity
from sensor.identity.store import NS, IdentityStore

PSEUDONYM_KEY_ENV = "SHADOWAI_PSEUDONYM_KEY"
_KEYS = frozenset({"wire", "files", "open_ttl_s", "pseudonymize", "key_file"})


@dataclass(frozen=True, slots=True)
class IdentityFile:
    path: str
    format: str | None = None


@dataclass(frozen=True, slots=True)
class IdentitySettings:
    wire: bool = True
    files: tuple[IdentityFile, ...] = ()
    open_ttl_s: int = 86400
    pseudonymize: bool = False
    key_file: str | None = None

    def build_store(self) -> tuple[IdentityStore, list[IdentityLoad]]:
        """A store holding every configured file's bindings (InputError on a bad file)."""
        store = IdentityStore(open_ttl_ns=self.open_ttl_s * NS if self.open_ttl_s else None)
        loads = []
        for f in self.files:
            load = load_identity(f.path, f.format)
            store.add_all(load)
            loads.append(load)
        return store, loads

    def pseudonymizer(self, requested: bool = False) -> Pseudonymizer | None:
        """The keyed hasher when the config (or ``requested``: --pseudonymize) asks for one;
        the key comes from identity.key_file, else $SHADOWAI_PSEUDONYM_KEY."""
        if not (self.pseudonymize or requested):
            return None
        if self.key_file is None:
            env = os.environ.get(PSEUDONYM_KEY_ENV)
            if env:
                return Pseudonymizer(env.encode())
            raise InputError("identity.pseudonymize needs identity.key_file" if not requested
                             else "--pseudonymize needs a key: identity.key_file in the config "
                             f"or ${PSEUDONYM_KEY_ENV}")
        try:
            key = Path(self.key_file).read_bytes().strip()
        except OSError as e:
            raise InputError(f"identity.key_file: cannot read {self.key_file}: {e}") from None
        return Pseudonymizer(key)


def from_toml(table: dict[str, Any]) -> IdentitySettings:
    """Validate the ``[identity]`` table; InputError (one line) on a bad value."""
    if not isinstance(table, dict):
        raise InputError("[identity] must be a table")
    unknown = set(table) - _KEYS
    if unknown:
        raise InputError(f"unknown setting identity.{sorted(unknown)[0]}")
    wire = table.get("wire", True)
    pseudo = table.get("pseudonymize", False)
    for name, v in (("wire", wire), ("pseudonymize", pseudo)):
        if not isinstance(v, bool):
            raise InputError(f"identity.{name} must be true or false")
    ttl = table.get("open_ttl_s", 86400)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0:
        raise InputError("identity.open_ttl_s must be an integer >= 0")
    key_file = table.get("key_file")
    if key_file is not None and not isinstance(key_file, str):
        raise InputError("identity.key_file must be a path string")
    if pseudo and key_file is None:
        raise InputError("identity.pseudonymize needs identity.key_file")
    raw_files = table.get("files", [])
    if not isinstance(raw_files, list):
        raise InputError("identity.files must be a list")
    files = []
    for item in raw_files:
        if isinstance(item, str):
            files.append(IdentityFile(item))
        elif isinstance(item, dict) and isinstance(item.get("path"), str) and set(item) <= {
                "path", "format"}:
            fmt = item.get("format")
            if fmt is not None and fmt not in FORMATS:
                raise InputError(f"identity.files: unknown format {fmt!r} "
                                 f"(one of {', '.join(FORMATS)})")
            files.append(IdentityFile(item["path"], fmt))
        else:
            raise InputError("identity.files entries are paths or {path, format} tables")
    return IdentitySettings(wire=wire, files=tuple(files), open_ttl_s=ttl,
                            pseudonymize=pseudo, key_file=key_file)


__all__ = ["IdentityFile", "IdentitySettings", "from_toml"]
