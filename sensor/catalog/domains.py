"""Registered domains (Public Suffix List) and the shared-platform apex list.

tldextract runs on its bundled PSL snapshot only: no network fetch, no disk
cache, so results do not change between runs or machines. ICANN section only:
private suffixes (``s3.amazonaws.com``) would turn a shared cloud into many
small "registered domains".
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from sensor.catalog.schema import Location, Problem, is_hostname

if TYPE_CHECKING:
    import tldextract

SHARED_APEXES_FILE = "shared-apexes.yaml"


@lru_cache(maxsize=1)
def _extractor() -> tldextract.TLDExtract:
    # imported here: tldextract pulls in requests/urllib3 (~80 ms), and only
    # lint and the first vendor-domain look-up need it
    import tldextract

    # suffix_list_urls=() -> bundled snapshot; cache_dir=None -> no disk cache
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


@lru_cache(maxsize=65536)
def registered_domain(hostname: str) -> str:
    """``a.b.example.co.uk`` -> ``example.co.uk``; ``""`` for a bare public suffix.

    A name under a TLD the PSL does not list (``.example``, ``.internal``) is
    treated as if its last label were a public suffix.
    """
    ext = _extractor()(hostname)
    if not ext.suffix:
        labels = hostname.split(".")
        return ".".join(labels[-2:]) if len(labels) >= 2 and all(labels[-2:]) else ""
    if not ext.domain:
        return ""
    return f"{ext.domain}.{ext.suffix}"


def public_suffix(hostname: str) -> str:
    return str(_extractor()(hostname).suffix)


def shared_apexes_path(signature_paths: list[Path] | tuple[Path, ...] = ()) -> Path | None:
    """The shared-apex list beside the given catalog paths, else the repo default.

    ``signatures/`` or ``signatures/services`` both find
    ``signatures/shared-apexes.yaml``; a fixture directory without one falls
    back to the shipped list (google.com is shared whatever catalog is loaded).
    """
    from sensor.catalog.index import default_signature_dir  # import cycle

    for path in signature_paths:
        for cand in (path / SHARED_APEXES_FILE, path.parent / SHARED_APEXES_FILE):
            if cand.is_file():
                return cand
    default = default_signature_dir() / SHARED_APEXES_FILE
    return default if default.is_file() else None


def load_shared_apexes(path: Path | None) -> tuple[dict[str, str], list[Problem]]:
    """``{registered domain: vendor}`` from the YAML file, plus problems found."""
    if path is None:
        return {}, []
    name = str(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return {}, [Problem(Location(name, 0), f"cannot read shared apexes: {exc}")]
    apexes = data.get("apexes") if isinstance(data, dict) else None
    if not isinstance(apexes, dict):
        return {}, [Problem(Location(name, 1), "expected 'apexes:' mapping vendor -> [domains]")]
    out: dict[str, str] = {}
    problems: list[Problem] = []
    for vendor, domains in apexes.items():
        if not isinstance(domains, list):
            problems.append(Problem(Location(name, 0), f"'{vendor}': expected a list of domains"))
            continue
        for dom in domains:
            if not isinstance(dom, str) or not is_hostname(dom):
                problems.append(Problem(Location(name, 0), f"'{vendor}': bad domain {dom!r}"))
            elif registered_domain(dom) != dom:
                problems.append(
                    Problem(
                        Location(name, 0),
                        f"'{vendor}': '{dom}' is not a registered domain "
                        f"(that is '{registered_domain(dom)}')",
                    )
                )
            else:
                out[dom] = str(vendor)
    return out, problems
