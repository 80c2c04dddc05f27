"""Client-family fingerprints (JA4) and encrypted-DNS / ECH data, from signatures/fingerprints/.

Both are small lookup tables loaded once; bad files stop the load with one
line naming the file and the entry.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sensor.datafiles import read_yaml
from sensor.errors import InputError

JA4_FILE = "ja4-clients.yaml"
EDNS_FILE = "encrypted-dns.yaml"


@dataclass(frozen=True, slots=True)
class ClientFamily:
    family: str
    label: str
    browser: bool
    source: str


@dataclass(frozen=True, slots=True)
class DohResolver:
    name: str
    source: str


def _load_yaml(path: Path) -> dict[str, Any]:
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping at the top level")
    return data


def _strs(v: Any, where: str) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise InputError(f"{where}: expected a list of strings")
    return [x.lower() for x in v]


class ClientFingerprints:
    """JA4 -> client family; full fingerprints win over the JA4_b+c hash pair."""

    def __init__(self, full: dict[str, ClientFamily], bc: dict[str, ClientFamily]) -> None:
        self._full = full
        self._bc = bc

    @classmethod
    def load(cls, directory: Path) -> ClientFingerprints:
        path = directory / JA4_FILE
        if not path.exists():
            return cls({}, {})
        data = _load_yaml(path)
        fams = data.get("families")
        if not isinstance(fams, list):
            raise InputError(f"{path}: 'families' must be a list")
        full: dict[str, ClientFamily] = {}
        bc: dict[str, ClientFamily] = {}
        for i, e in enumerate(fams):
            where = f"{path}: families[{i}]"
            if not isinstance(e, dict) or not isinstance(e.get("family"), str):
                raise InputError(f"{where}: needs a 'family' name")
            if not isinstance(e.get("source"), str) or not e["source"].strip():
                raise InputError(f"{where} ({e['family']}): needs a 'source'")
            fam = ClientFamily(e["family"], str(e.get("label", e["family"])),
                               bool(e.get("browser", False)), e["source"])
            for v in _strs(e.get("ja4", []), f"{where}.ja4"):
                full[v] = fam
            for v in _strs(e.get("ja4_bc", []), f"{where}.ja4_bc"):
                if v.count("_") != 1:
                    raise InputError(f"{where}.ja4_bc: {v!r} is not 'b_c'")
                bc[v] = fam
            for ex in _strs(e.get("examples", []), f"{where}.examples"):
                got = cls(full, bc).lookup(ex)
                if got is None or got.family != fam.family:
                    raise InputError(f"{where}: example {ex} does not map to {fam.family}")
        return cls(full, bc)

    def lookup(self, ja4: str) -> ClientFamily | None:
        hit = self._full.get(ja4)
        if hit is not None:
            return hit
        _, sep, rest = ja4.partition("_")
        return self._bc.get(rest) if sep else None


class EncryptedDns:
    """Public DoH resolvers (names, addresses), DoT/DoQ ports, ECH outer names."""

    def __init__(self, hosts: dict[str, DohResolver], ips: dict[str, DohResolver],
                 ports: dict[tuple[int, int], str], ech_fronts: frozenset[str]) -> None:
        self.hosts = hosts
        self.ips = ips
        self.ports = ports  # (port, ip proto number) -> "dot" | "doq"
        self.ech_fronts = ech_fronts

    @classmethod
    def load(cls, directory: Path) -> EncryptedDns:
        path = directory / EDNS_FILE
        if not path.exists():
            return cls({}, {}, {}, frozenset())
        data = _load_yaml(path)
        hosts: dict[str, DohResolver] = {}
        ips: dict[str, DohResolver] = {}
        for i, e in enumerate(data.get("doh_resolvers") or []):
            where = f"{path}: doh_resolvers[{i}]"
            if not isinstance(e, dict) or not isinstance(e.get("name"), str):
                raise InputError(f"{where}: needs a 'name'")
            if not isinstance(e.get("source"), str):
                raise InputError(f"{where} ({e['name']}): needs a 'source'")
            r = DohResolver(e["name"], e["source"])
            for h in _strs(e.get("hosts", []), f"{where}.hosts"):
                hosts[h] = r
            for ip in _strs(e.get("ips", []), f"{where}.ips"):
                try:
                    ips[str(ipaddress.ip_address(ip))] = r
                except ValueError as ex:
                    raise InputError(f"{where}.ips: {ip!r} is not an IP address") from ex
        ports: dict[tuple[int, int], str] = {}
        for i, e in enumerate(data.get("encrypted_ports") or []):
            where = f"{path}: encrypted_ports[{i}]"
            try:
                proto = {"tcp": 6, "udp": 17}[e["transport"]]
                ports[(int(e["port"]), proto)] = str(e["protocol"])
            except (KeyError, TypeError, ValueError) as ex:
                raise InputError(f"{where}: needs port, transport (tcp|udp), protocol") from ex
        fronts = []
        for i, e in enumerate(data.get("ech_fronts") or []):
            if not isinstance(e, dict) or not isinstance(e.get("host"), str):
                raise InputError(f"{path}: ech_fronts[{i}]: needs a 'host'")
            fronts.append(e["host"].lower())
        return cls(hosts, ips, ports, frozenset(fronts))

    def doh_host(self, name: str) -> DohResolver | None:
        return self.hosts.get(name)
