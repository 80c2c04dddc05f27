"""``shadowai identity``: check identity files and ask who held an IP at a time.

Register with ``cli.add_command(identity)`` in sensor/cli.py.
"""

from __future__ import annotations

import json

import click

from sensor.errors import InputError
from sensor.identity.readers import FORMATS, load_identity, parse_time_ns
from sensor.identity.store import IdentityStore


@click.group("identity")
def identity() -> None:
    """Device / user attribution sources."""


@identity.command("check")
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="Skip content sniffing and read every file as this format.")
def check(paths: tuple[str, ...], fmt: str | None) -> None:
    """Read identity files; print format, bindings and skipped lines per file."""
    for p in paths:
        try:
            res = load_identity(p, fmt)
        except InputError as e:
            raise click.ClickException(str(e)) from None
        click.echo(json.dumps({"file": p, "format": res.fmt, "bindings": len(res),
                               "skipped": res.skipped}))


@identity.command("lookup")
@click.argument("ip")
@click.argument("time")
@click.option("--file", "files", multiple=True, required=True,
              type=click.Path(dir_okay=False), help="Identity file (repeatable).")
def lookup(ip: str, time: str, files: tuple[str, ...]) -> None:
    """Who held IP at TIME (RFC 3339 or epoch seconds), per the given files."""
    store = IdentityStore()
    try:
        for p in files:
            store.add_all(load_identity(p))
        ts = parse_time_ns(time)
    except InputError as e:
        raise click.ClickException(str(e)) from None
    except ValueError as e:
        raise click.ClickException(f"bad time: {e}") from None
    a = store.lookup(ip, ts)
    click.echo(json.dumps(a.to_client_dict(ip) if a else None))


__all__ = ["identity"]
