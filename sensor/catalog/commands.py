"""``shadowai signatures ...``: lint, list and explain the AI service catalog."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import click

from sensor.catalog.index import (
    Catalog,
    CatalogError,
    default_signature_dir,
    normalise_hostname,
    request_path,
)
from sensor.catalog.lint import lint_paths
from sensor.catalog.schema import Category, HostPattern, Service, path_has_prefix

_DIR_HELP = "Signature directory (default: $SHADOWAI_SIGNATURES or the repo's signatures/)."


def _dir_option(func: Any) -> Any:
    return click.option(
        "--dir",
        "directory",
        type=click.Path(path_type=Path),
        default=None,
        help=_DIR_HELP,
    )(func)


def _load(directory: Path | None) -> Catalog:
    try:
        return Catalog.load([directory or default_signature_dir()])
    except CatalogError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        raise click.exceptions.Exit(1) from exc


signatures = click.Group("signatures", help="Work with the AI service catalog.")


@signatures.command("lint")
@_dir_option
@click.option("--strict", is_flag=True, help="Warnings fail the lint too.")
def lint_cmd(directory: Path | None, strict: bool) -> None:
    """Check schema, duplicates and every entry's examples. Exit 1 on errors."""
    report = lint_paths([directory or default_signature_dir()])
    for problem in report.problems:
        click.echo(str(problem))
    n_err, n_warn = len(report.errors), len(report.warnings)
    summary = (
        f"{len(report.result.services)} services in {len(report.result.files)} files: "
        f"{n_err} error(s), {n_warn} warning(s)"
    )
    click.echo(summary, err=True)
    if n_err or (strict and n_warn):
        raise click.exceptions.Exit(1)


def service_json(svc: Service) -> dict[str, Any]:
    return {
        "id": svc.id,
        "name": svc.name,
        "vendor": svc.vendor,
        "category": svc.category.value,
        "risk": svc.risk.value if svc.risk else None,
        "hosts": [
            {
                "kind": p.kind,
                "value": p.value,
                "role": p.role.value if p.role else None,
                "shared": p.shared,
                "paths": list(p.paths),
            }
            for p in svc.hosts
        ],
        "ip_ranges": [
            {"cidr": r.cidr, "role": r.role.value if r.role else None, "source": r.source}
            for r in svc.ip_ranges
        ],
        "references": list(svc.references),
        "location": str(svc.location) if svc.location else None,
    }


@signatures.command("list")
@_dir_option
@click.option(
    "--category",
    type=click.Choice([c.value for c in Category]),
    default=None,
    help="Only this category.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    help="json: one object per service per line.",
)
def list_cmd(directory: Path | None, category: str | None, fmt: str) -> None:
    """List catalog services."""
    catalog = _load(directory)
    services = [s for s in catalog.services if category is None or s.category == category]
    services.sort(key=lambda s: (s.category.value, s.id))
    if fmt == "json":
        for svc in services:
            click.echo(json.dumps(service_json(svc), sort_keys=True))
        return
    rows = [("ID", "CATEGORY", "VENDOR", "NAME", "HOSTS")]
    rows += [(s.id, s.category.value, s.vendor, s.name, str(len(s.hosts))) for s in services]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[4]]))
    click.echo(f"{len(services)} services, catalog {catalog.version}", err=True)


@signatures.command("explain")
@_dir_option
@click.option("--path", "path", default=None, help="HTTP request path (path-restricted entries).")
@click.argument("hostname")
def explain_cmd(directory: Path | None, path: str | None, hostname: str) -> None:
    """Show which entry matches HOSTNAME (or an IP address) and why.

    Exit 1 when nothing matches.
    """
    catalog = _load(directory)
    if _is_ip(hostname):
        _explain_ip(catalog, hostname.strip().strip("[]"))
        return
    name = normalise_hostname(hostname)
    found = catalog.match_http(hostname, path) if path else catalog.match_uncached(hostname)
    if found is None:
        click.echo(f"{name}{path or ''}: no match")
        _explain_miss(catalog, name, path)
        raise click.exceptions.Exit(1)
    svc, pat = found.service, found.pattern
    how = "equals" if pat.kind == "exact" or name == pat.value else "is a subdomain of"
    click.echo(f"{name}: {svc.id} ({svc.name}, {svc.vendor}, {svc.category.value})")
    click.echo(f"  pattern: {pat.kind} {pat.value} at {pat.location}")
    click.echo(f"  why: '{name}' {how} '{pat.value}'")
    if pat.paths:
        req = request_path(path or "")
        prefix = next(p for p in pat.paths if path_has_prefix(req, p))
        click.echo(f"  path: '{req}' is under '{prefix}'")
    elif path:
        restricted = catalog.path_patterns(name)
        note = f" (path entries here: {', '.join(restricted)})" if restricted else ""
        click.echo(f"  path: '{path}' matches no path-restricted entry{note}")
    elif restricted := catalog.path_patterns(name):
        click.echo(f"  path-restricted entries for this name: {', '.join(restricted)} (use --path)")
    _flags(svc, pat)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return False
    return True


def _flags(svc: Service, pat: HostPattern) -> None:
    extras = [f"role={pat.role.value}" if pat.role else "", "shared" if pat.shared else ""]
    if not pat.counts_as_use:
        extras.append("not counted as use")
    if svc.risk:
        extras.append(f"risk={svc.risk.value}")
    if any(extras):
        click.echo("  flags: " + ", ".join(e for e in extras if e))
    click.echo(f"  service defined at {svc.location}")


def _explain_ip(catalog: Catalog, ip: str) -> None:
    found = catalog.match_ip(ip)
    if found is None or found.ip_range is None:
        click.echo(f"{ip}: no match (no published provider range holds it)")
        raise click.exceptions.Exit(1)
    svc, rng = found.service, found.ip_range
    click.echo(f"{ip}: {svc.id} ({svc.name}, {svc.vendor}, {svc.category.value})")
    click.echo(f"  ip range: {rng.cidr} at {rng.location}")
    click.echo(f"  why: {ip} is in {rng.cidr}")
    click.echo(f"  source: {rng.source}")
    _flags(svc, found.pattern)


def _explain_miss(catalog: Catalog, name: str, path: str | None) -> None:
    vendor = catalog.match_vendor_domain(name)
    if vendor is not None:
        ids = ", ".join(s.id for s in vendor.services)
        click.echo(
            f"  vendor domain: '{name}' is under {vendor.domain} ({vendor.vendor}; "
            f"known services: {ids}): reported as service 'unknown'"
        )
    restricted = catalog.path_patterns(name)
    if restricted and not path:
        click.echo(f"  path-restricted entries for this name: {', '.join(restricted)} (use --path)")
