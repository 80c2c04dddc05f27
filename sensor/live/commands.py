"""``shadowai watch`` (live capture as a service) and ``shadowai status``.

Register in sensor/cli.py: ``main.add_command(watch)`` and ``main.add_command(status)``
(``from sensor.live.commands import status, watch``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from sensor.errors import InputError
from sensor.live.runner import LiveRunner, WatchSettings, default_state_dir, from_toml
from sensor.live.service import Logger
from sensor.live.status import STATUS_NAME, format_status, is_stale, read_status

EXIT_OK, EXIT_FATAL = 0, 1


@click.command()
@click.option("-i", "--interface", "interfaces", multiple=True,
              help="Interface to capture on (repeatable; default: [watch] interfaces).")
@click.option("--zeek-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None,
              help="Follow a live Zeek log directory (rotated YYYY-MM-DD/ folders too) "
                   "instead of capturing.")
@click.option("--eve", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Follow a Suricata eve.json as it grows and rotates, instead of capturing.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write findings as JSON Lines to this file ('-' = stdout).")
@click.option("--sink", "sinks", multiple=True,
              help="Sink URL (repeatable), as for hunt: file://, syslog+tcp://, https://...")
@click.option("--format", "fmt", default=None,
              help="Default output format of the sinks (native, ecs, ocsf, cef).")
@click.option("-s", "--signatures", "sig_dirs", multiple=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Signature directory (repeatable; default: the bundled signatures/).")
@click.option("-c", "--config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TOML config file (e.g. /etc/shadowai/sensor.toml).")
@click.option("-w", "--workers", type=click.IntRange(1, 64), default=None,
              help="Capture worker processes (PACKET_FANOUT hash across them).")
@click.option("--backend", type=click.Choice(["auto", "afpacket", "pcap"]), default=None,
              help="Capture backend (auto: AF_PACKET, libpcap if unavailable).")
@click.option("-f", "--filter", "bpf", default=None,
              help="Capture filter in tcpdump syntax (compiled with tcpdump -ddd).")
@click.option("--block-size", type=int, default=None, help="Ring block size in bytes.")
@click.option("--ring-size", type=int, default=None, help="Ring size in bytes per socket.")
@click.option("--block-timeout-ms", type=int, default=None,
              help="Hand over a partly filled block after this many ms.")
@click.option("--promisc/--no-promisc", default=None, help="Promiscuous mode (default on).")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Status file, spool and inventory (default $STATE_DIRECTORY or "
                   "/var/lib/shadowai).")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Inventory database (default <state-dir>/inventory.db).")
@click.option("--reemit-interval", type=float, default=None,
              help="Re-send a finding with updated counts at most this often (s, default 3600).")
@click.option("--emit-interval", type=float, default=None,
              help="How often findings are collected from the workers (s, default 5).")
@click.option("--metrics", default=None,
              help="Prometheus endpoint HOST:PORT (default 127.0.0.1:9108; 'off' for none).")
@click.option("--log-format", type=click.Choice(["kv", "json"]), default=None,
              help="Log lines on stderr: key=value or JSON.")
def watch(interfaces: tuple[str, ...], zeek_dir: Path | None, eve: Path | None,
          output: str | None, sinks: tuple[str, ...],
          fmt: str | None, sig_dirs: tuple[Path, ...], config: Path | None,
          workers: int | None, backend: str | None, bpf: str | None, block_size: int | None,
          ring_size: int | None, block_timeout_ms: int | None, promisc: bool | None,
          state_dir: Path | None, db: Path | None, reemit_interval: float | None,
          emit_interval: float | None, metrics: str | None, log_format: str | None) -> None:
    """Capture live on one or more interfaces and report findings until stopped.

    SIGHUP reloads signatures and config; SIGTERM drains and flushes. New findings
    are sent once (the inventory remembers them across restarts); findings whose
    counts grow are re-sent at most every --reemit-interval seconds.
    """
    log = Logger(log_format or "kv")
    try:
        tables: dict[str, Any] = {}
        if config is not None:
            from sensor.config import load_tables
            tables = load_tables(config)
        ws = from_toml(tables.get("watch", {}))
        over: dict[str, Any] = {
            "interfaces": tuple(interfaces) or None, "workers": workers, "backend": backend,
            "filter": bpf, "block_size": block_size, "ring_size": ring_size,
            "block_timeout_ms": block_timeout_ms, "promisc": promisc, "state_dir": state_dir,
            "db": db, "reemit_interval_s": reemit_interval, "emit_interval_s": emit_interval,
            "log_format": log_format,
        }
        ws = replace(ws, **{k: v for k, v in over.items() if v is not None})
        if metrics is not None:
            ws = replace(ws, metrics=None if metrics in ("off", "") else metrics)
        follow = [(k, t) for k, t in (("zeek-dir", zeek_dir), ("eve", eve)) if t is not None]
        if len(follow) > 1 or (follow and interfaces):
            raise InputError("give one of -i IFACE, --zeek-dir DIR or --eve FILE")
        # following logs: no capture, so the interface checks do not apply
        ws = (replace(ws, interfaces=("logs",)) if follow else ws).check()
        urls, sink_fmt, spool = _sink_urls(tables, output, sinks, fmt)
        log = Logger(ws.log_format)
        runner = LiveRunner(ws, urls, sink_fmt, spool, config, sig_dirs, log)
        if follow:
            from sensor.live.logwatch import run_logs
            rc = run_logs(runner, follow[0][0], follow[0][1])
        else:
            rc = runner.run()
    except (InputError, OSError) as e:  # OSError: e.g. an unwritable state or cache dir
        log.error("fatal", error=str(e))
        click.echo(f"shadowai: {e}", err=True)
        sys.exit(EXIT_FATAL)
    sys.exit(rc)


def _sink_urls(tables: dict[str, Any], output: str | None, sinks: tuple[str, ...],
               fmt: str | None) -> tuple[list[str], str, Path | None]:
    """The [sinks] table's URLs plus --sink and --output; stdout if there are none.

    (The unit adds a local rotating file with --sink; the config adds the SIEM.)"""
    from sensor.sinks.cli import output_url
    from sensor.sinks.sinkset import from_toml as sinks_from_toml
    st = sinks_from_toml(tables.get("sinks", {}))
    urls = list(st.urls)
    urls += [u for u in sinks if u not in urls]
    if output is not None:
        urls.append(output_url(output, truncate=False))
    if not urls:
        urls = ["stdout:"]
    spool = st.spool_dir if "sinks" in tables and "spool_dir" in tables["sinks"] else None
    return urls, fmt or st.format, spool


@click.command()
@click.option("-i", "--interface", default=None,
              help="The instance of shadowai-sensor@IFACE (state in /var/lib/shadowai/IFACE).")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The watch process's state directory (default: every instance under "
                   "$STATE_DIRECTORY or /var/lib/shadowai).")
@click.option("--json", "as_json", is_flag=True, help="Print the status document as JSON.")
@click.option("--max-age", type=float, default=30.0, show_default=True,
              help="A status older than this many seconds counts as stale (exit 1).")
def status(interface: str | None, state_dir: Path | None, as_json: bool,
           max_age: float) -> None:
    """Print capture, drop and finding counters of a running `shadowai watch`.

    Exit 0 if every watch process found is running, 1 if one is stopped, stale or
    none is found.
    """
    base = state_dir or default_state_dir()
    if interface:
        paths = [base / interface / STATUS_NAME]
    elif state_dir is not None or (base / STATUS_NAME).exists():
        paths = [base / STATUS_NAME]
    else:  # the unit's StateDirectory=shadowai/%i: one directory per instance
        paths = sorted(base.glob(f"*/{STATUS_NAME}")) or [base / STATUS_NAME]
    rc = EXIT_OK
    docs: dict[str, Any] = {}
    for path in paths:
        try:
            doc = read_status(path)
        except InputError as e:
            click.echo(f"shadowai: {e}", err=True)
            rc = EXIT_FATAL
            continue
        docs[str(path.parent)] = doc
        if is_stale(doc, max_age_s=max_age):
            rc = EXIT_FATAL
        if not as_json:
            if len(paths) > 1:
                click.echo(f"== {path.parent}")
            click.echo(format_status(doc))
    if as_json:
        out = next(iter(docs.values())) if len(paths) == 1 and docs else docs
        click.echo(json.dumps(out, indent=1, sort_keys=True))
    sys.exit(rc)


__all__ = ["WatchSettings", "status", "watch"]
