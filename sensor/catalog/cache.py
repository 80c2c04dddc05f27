"""On-disk cache of the validated catalog (msgpack; never pickle).

Parsing and validating a few hundred YAML files takes tens of milliseconds and
the vendor-domain map needs the PSL (tldextract import + snapshot parse, about
100 ms). Both depend only on the files, so the result is stored under the user
cache dir keyed by a hash of every file's path, size, mtime and inode (plus the
shared-apex list's content and this format's version): an edit, an added or
removed file, or a new cache format means a different key, so a stale entry is
not used. A corrupt entry is ignored.
"""

from __future__ import annotations

import gc
import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from sensor.catalog.loader import expand_paths
from sensor.catalog.schema import (
    Category,
    HostPattern,
    IpRange,
    Location,
    Problem,
    Risk,
    Role,
    Service,
)

FORMAT = 1
NO_CACHE_ENV = "SHADOWAI_NO_CATALOG_CACHE"
KEEP = 8  # cache entries kept per directory (several checkouts/branches)

VendorDomains = dict[str, tuple[str, tuple[str, ...]]]


@dataclass(frozen=True, slots=True)
class Cached:
    services: list[Service]
    files: list[Path]
    digest: str
    warnings: list[Problem]
    vendor_domains: VendorDomains


def cache_key(paths: Sequence[Path], apex_file: Path | None) -> tuple[str, list[Path]] | None:
    """Key for the files a load would read; None when a path is missing/unreadable.

    Built from each file's path, size, mtime (ns) and inode (a stat, no read),
    the working directory (locations are written relative to it) and the
    shared-apex list's content; any edit, added or removed file changes it.
    """
    problems: list[Problem] = []
    files = expand_paths(paths, problems)
    if problems:
        return None  # let the real loader report it
    h = hashlib.sha256(f"shadowai-catalog-v{FORMAT}\0{os.getcwd()}\0".encode())
    try:
        for path in sorted(files, key=lambda p: (p.name, str(p))):
            st = path.stat()
            h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\n".encode())
        if apex_file is not None:
            h.update(b"apexes\0" + apex_file.read_bytes())
    except OSError:
        return None
    return h.hexdigest()[:32], files


def _loc(loc: Location | None) -> list[Any]:
    return [loc.file, loc.line] if loc is not None else []


def _unloc(raw: list[Any]) -> Location | None:
    return Location(str(raw[0]), int(raw[1])) if raw else None


def _pack_service(s: Service) -> list[Any]:
    return [
        s.id,
        s.name,
        s.vendor,
        s.category.value,
        s.risk.value if s.risk else None,
        s.notes,
        _loc(s.location),
        list(s.references),
        list(s.examples_match),
        list(s.examples_nomatch),
        [
            [p.kind, p.value, p.role.value if p.role else None, p.shared, _loc(p.location),
             list(p.paths)]
            for p in s.hosts
        ],
        [
            [r.cidr, r.role.value if r.role else None, r.source, _loc(r.location)]
            for r in s.ip_ranges
        ],
    ]


def _unpack_service(raw: list[Any]) -> Service:
    (sid, name, vendor, cat, risk, notes, loc, refs, exm, exn, hosts, ranges) = raw
    return Service(
        id=sid,
        name=name,
        vendor=vendor,
        category=Category(cat),
        hosts=tuple(
            HostPattern(kind, value, Role(role) if role else None, bool(shared), _unloc(hl),
                        tuple(paths))
            for kind, value, role, shared, hl, paths in hosts
        ),
        references=tuple(refs),
        examples_match=tuple(exm),
        examples_nomatch=tuple(exn),
        risk=Risk(risk) if risk else None,
        notes=notes,
        location=_unloc(loc),
        ip_ranges=tuple(
            IpRange(cidr, Role(role) if role else None, source, _unloc(rl))
            for cidr, role, source, rl in ranges
        ),
    )


def _path(cache_dir: Path, key: str) -> Path:
    return cache_dir / f"catalog-{key}.msgpack"


def read(cache_dir: Path, key: str) -> Cached | None:
    try:
        data = _path(cache_dir, key).read_bytes()
    except OSError:
        return None
    gc_on = gc.isenabled()
    gc.disable()  # thousands of small acyclic objects: collections here are pure cost
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=True)
        if obj["format"] != FORMAT:
            return None
        return Cached(
            services=[_unpack_service(r) for r in obj["services"]],
            files=[Path(f) for f in obj["files"]],
            digest=str(obj["digest"]),
            warnings=[
                Problem(Location(f, ln), msg, "warning") for f, ln, msg in obj["warnings"]
            ],
            vendor_domains={d: (v, tuple(ids)) for d, (v, ids) in obj["vendor_domains"].items()},
        )
    except (ValueError, TypeError, KeyError, msgpack.UnpackException):
        return None  # corrupt or from another version: rebuild
    finally:
        if gc_on:
            gc.enable()


def write(cache_dir: Path, key: str, entry: Cached) -> None:
    """Best effort: an unwritable cache dir only costs the next load its speed."""
    obj = {
        "format": FORMAT,
        "digest": entry.digest,
        "files": [str(f) for f in entry.files],
        "warnings": [[w.location.file, w.location.line, w.message] for w in entry.warnings],
        "services": [_pack_service(s) for s in entry.services],
        "vendor_domains": {d: [v, list(ids)] for d, (v, ids) in entry.vendor_domains.items()},
    }
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".catalog-", suffix=".tmp", dir=cache_dir)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(msgpack.packb(obj, use_bin_type=True))
            os.replace(tmp, _path(cache_dir, key))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        _prune(cache_dir)
    except OSError:
        pass


def _prune(cache_dir: Path) -> None:
    entries = sorted(
        cache_dir.glob("catalog-*.msgpack"), key=lambda p: p.stat().st_mtime, reverse=True
    )
    for old in entries[KEEP:]:
        old.unlink(missing_ok=True)


def enabled() -> bool:
    return os.environ.get(NO_CACHE_ENV, "") in ("", "0")
