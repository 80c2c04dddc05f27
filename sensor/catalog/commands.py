"""``shadowai signatures ...``: lint, list and explain the AI service catalog."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from sensor.catalog.index import Catalog, CatalogError, default_signature_dir, normalise_hostname
from sensor.catalog.lint import lint_paths
from sensor.catalog.schema import Category, Service

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
            }
            for p in svc.hosts
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
@click.argument("hostname")
def explain_cmd(directory: Path | None, hostname: str) -> None:
    """Show which entry matches HOSTNAME and why. Exit 1 when nothing matches."""
    catalog = _load(directory)
    name = normalise_hostname(hostname)
    found = catalog.match_uncached(hostname)
    if found is None:
        click.echo(f"{name}: no match")
        raise click.exceptions.Exit(1)
    svc, pat = found.service, found.pattern
    how = "equals" if pat.kind == "exact" or name == pat.value else "is a subdomain of"
    click.echo(f"{name}: {svc.id} ({svc.name}, {svc.vendor}, {svc.category.value})")
    click.echo(f"  pattern: {pat.kind} {pat.value} at {pat.location}")
    click.echo(f"  why: '{name}' {how} '{pat.value}'")
    extras = [f"role={pat.role.value}" if pat.role else "", "shared" if pat.shared else ""]
    if not pat.counts_as_use:
        extras.append("not counted as use")
    if svc.risk:
        extras.append(f"risk={svc.risk.value}")
    if any(extras):
        click.echo("  flags: " + ", ".join(e for e in extras if e))
    click.echo(f"  service defined at {svc.location}")
