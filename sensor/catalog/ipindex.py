"""Published provider address ranges, compiled to an MMDB file for fast look-ups.

The catalog's ``ip_ranges`` are written once into a MaxMind DB (one IPv6 tree,
IPv4 in its ``::/96`` subtree) by the pure-Python ``mmdb-writer``, cached in
the user cache dir under a name derived from the ranges' hash, and read with
``maxminddb`` (C extension when available: a look-up is a few hundred ns).
The writer is imported only on a cache miss because it is slow to import.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sensor.catalog.schema import IpRange, Service

CACHE_ENV = "SHADOWAI_CACHE_DIR"
_FORMAT = b"shadowai-ipranges-v1"


def user_cache_dir() -> Path:
    """``$SHADOWAI_CACHE_DIR``, else ``$XDG_CACHE_HOME/shadowai``, else ``~/.cache/shadowai``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / "shadowai"
    try:
        return Path.home() / ".cache" / "shadowai"
    except RuntimeError:  # no home directory (system service without HOME)
        return Path(tempfile.gettempdir()) / f"shadowai-cache-{os.getuid()}"


def ranges_digest(services: Sequence[Service]) -> str:
    h = hashlib.sha256(_FORMAT)
    for idx, svc in enumerate(services):
        for rng in svc.ip_ranges:
            role = rng.role.value if rng.role else ""
            h.update(f"{idx}\0{svc.id}\0{rng.cidr}\0{role}\n".encode())
    return h.hexdigest()[:24]


def _write_mmdb(services: Sequence[Service], dest: Path) -> None:
    from mmdb_writer import MMDBWriter  # slow import: cache miss only
    from netaddr import IPSet

    writer = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type="shadowai-ai-ranges",
        description="AI provider published serving ranges",
    )
    # widest first, so a more specific range (inserted later) wins inside it
    entries = [
        (ipaddress.ip_network(rng.cidr), idx, rng_idx)
        for idx, svc in enumerate(services)
        for rng_idx, rng in enumerate(svc.ip_ranges)
    ]
    entries.sort(key=lambda t: (t[0].version, t[0].prefixlen))
    for net, idx, rng_idx in entries:
        writer.insert_network(IPSet([str(net)]), {"s": idx, "r": rng_idx})
    writer.to_db_file(str(dest))


class IpIndex:
    """IP address -> (service, range) for the catalog's published ranges."""

    def __init__(self, services: Sequence[Service], cache_dir: Path | None = None) -> None:
        self._services = list(services)
        self.path: Path | None = None
        self._reader: Any = None
        if not any(s.ip_ranges for s in self._services):
            return
        self._reader, self.path = self._open(cache_dir or user_cache_dir())

    def _open(self, cache_dir: Path) -> tuple[Any, Path | None]:
        import maxminddb  # only when the catalog has ranges: keeps it out of other imports

        name = f"ipranges-{ranges_digest(self._services)}.mmdb"
        path = cache_dir / name
        if path.is_file():
            try:
                return maxminddb.open_database(str(path)), path
            except (OSError, ValueError, maxminddb.InvalidDatabaseError):
                pass  # truncated or foreign: rebuild below
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".ipranges-", suffix=".tmp", dir=cache_dir)
            os.close(fd)
            try:
                _write_mmdb(self._services, Path(tmp))
                os.replace(tmp, path)  # atomic: concurrent sensors never see half a file
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            return maxminddb.open_database(str(path)), path
        except OSError:
            # read-only cache dir: build in a temp dir and read it into memory
            with tempfile.TemporaryDirectory() as tdir:
                tpath = Path(tdir) / name
                _write_mmdb(self._services, tpath)
                with tpath.open("rb") as fh:
                    return maxminddb.open_database(fh, maxminddb.MODE_FD), None

    def __bool__(self) -> bool:
        return self._reader is not None

    def lookup(self, ip: str) -> tuple[Service, IpRange] | None:
        """The service whose published range holds ``ip`` (v4, v6 or v4-mapped v6)."""
        reader = self._reader
        if reader is None:
            return None
        text = ip.strip().strip("[]")
        if text[:7].lower() == "::ffff:":  # v4-mapped v6: the v4 tree holds it
            try:
                mapped = ipaddress.IPv6Address(text).ipv4_mapped
            except ValueError:
                return None
            if mapped is not None:
                text = str(mapped)
        try:
            rec = reader.get(text)  # the reader parses the string itself (inet_pton)
        except (ValueError, TypeError, _invalid_db()):
            return None
        if not isinstance(rec, dict):
            return None
        svc = self._services[int(rec["s"])]
        return svc, svc.ip_ranges[int(rec["r"])]

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def _invalid_db() -> type[Exception]:
    import maxminddb

    err: type[Exception] = maxminddb.InvalidDatabaseError
    return err
