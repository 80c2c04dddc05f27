"""The ``shadowai`` command line. Each command is a thin layer over pipeline.py.

Exit codes (also in docs/cli.md):
  0  every input was read completely
  1  nothing could be done: no readable input, bad signatures or config
  2  usage error (bad option or argument)
  3  findings were made and written, but an input was damaged or unreadable
     (the damage is reported on stderr with its byte offset)
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import click

from sensor import __version__
from sensor.app import FlowWriter, RunContext, build_context, make_pipeline, tuned_gc
from sensor.catalog.commands import signatures as signatures_group
from sensor.config import Settings
from sensor.errors import InputError
from sensor.findings import Finding
from sensor.inventory.store import default_db_path
from sensor.observations import observation_dict, pseudonymize_observation
from sensor.pipeline import Pipeline
from sensor.records import Observation
from sensor.sinks.cli import output_url, sink_options
from sensor.sinks.jsonl import JsonlSink
from sensor.sinks.sinkset import open_sinks
from sensor.sources.capture import open_capture
from sensor.sources.detect import detect_input
from sensor.sources.feed import feed_log_records
from sensor.sources.logs import ReadStats, iter_log_paths

EXIT_OK, EXIT_FATAL, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3


class _LazyGroup(click.Group):
    """Commands other than ``hunt`` are imported when used: a hunt starts faster."""

    LAZY = {
        "assets": ("sensor.inventory.commands", "assets"),
        "identity": ("sensor.identity.cli", "identity"),
        "model": ("sensor.volume.commands", "model"),
        "status": ("sensor.live.commands", "status"),
        "watch": ("sensor.live.commands", "watch"),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.LAZY})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.LAZY and cmd_name not in self.commands:
            import importlib

            mod, attr = self.LAZY[cmd_name]
            cmd = getattr(importlib.import_module(mod), attr)
            assert isinstance(cmd, click.Command)
            self.add_command(cmd, cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="shadowai")
def main() -> None:
    """shadowai-sensor: find shadow AI (AI services, agents, model servers) on the wire."""


main.add_command(signatures_group)


def _expand(paths: tuple[str, ...]) -> Iterator[tuple[Path, bool]]:
    """Files to read: (path, given explicitly). Directories are walked in sorted order."""
    for p in paths:
        path = Path(p)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for f in sorted(files):
                    if not f.startswith("."):
                        yield Path(root) / f, False
        else:
            yield path, True


class _Progress:
    """A one-line progress display on a terminal; silent on a pipe."""

    def __init__(self, enabled: bool, stream: IO[str]) -> None:
        self.enabled = enabled
        self.stream = stream
        self.t0 = time.monotonic()
        self.last = 0.0

    def update(self, name: str, done: int, total: int | None, packets: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < 0.25:
            return
        self.last = now
        rate = packets / max(now - self.t0, 1e-9)
        pct = f"{100 * done / total:5.1f}% " if total else ""
        self.stream.write(f"\r{pct}{done / 1e6:9.1f} MB  {packets:>11,} pkts  "
                          f"{rate / 1e3:8.1f} kpkt/s  {name[-40:]:<40}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 100 + "\r")
            self.stream.flush()


def _human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n:.1f} PB"


def summary_table(all_findings: list[Any]) -> str:
    """The short human summary printed on stderr at the end of a hunt."""
    findings: list[Finding] = [f for f in all_findings if isinstance(f, Finding)]
    others: dict[str, int] = {}
    for f in all_findings:
        if not isinstance(f, Finding):
            others[f.type] = others.get(f.type, 0) + 1
    other_line = ", ".join(f"{n} {t}" for t, n in sorted(others.items()))
    if not findings:
        return "no AI service use found" + (f"; other findings: {other_line}" if others else "")
    users = any(f.identity is not None and f.identity.user for f in findings)
    head = ("SERVICE", "CATEGORY", "CLIENTS", *(("USERS",) if users else ()), "FLOWS",
            "BYTES UP", "BYTES DOWN", "DNS-ONLY")
    rows = [head]
    by_service: dict[str, list[Finding]] = {}
    for f in findings:
        by_service.setdefault(f.service.name, []).append(f)
    for name, fs in sorted(by_service.items(), key=lambda kv: -sum(f.flows for f in kv[1])):
        who = sorted({f.identity.user for f in fs if f.identity is not None and f.identity.user})
        rows.append((
            name, fs[0].service.category, str(len({f.client_ip for f in fs})),
            *((", ".join(who[:3]) + (" ..." if len(who) > 3 else "") or "-",) if users else ()),
            str(sum(f.flows for f in fs)),
            _human_bytes(sum(f.bytes_client_to_server for f in fs)),
            _human_bytes(sum(f.bytes_server_to_client for f in fs)),
            str(sum(1 for f in fs if f.flows == 0)),
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    clients = len({f.client_ip for f in findings})
    lines.append(f"{len(by_service)} AI services, {clients} clients, "
                 f"{sum(f.flows for f in findings)} flows")
    if users:
        by_user: dict[str, list[Finding]] = {}
        for f in findings:
            u = f.identity.user if f.identity is not None and f.identity.user else "(unknown)"
            by_user.setdefault(u, []).append(f)
        urows = [("USER", "DEVICES", "AI SERVICES")]
        for u, fs in sorted(by_user.items()):
            devs = sorted({f.identity.hostname or f.identity.mac or f.client_ip
                           if f.identity is not None else f.client_ip for f in fs})
            urows.append((u, ", ".join(devs[:3]), ", ".join(sorted({f.service.name
                                                                    for f in fs}))))
        uw = [max(len(r[i]) for r in urows) for i in range(3)]
        lines.append("")
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, uw, strict=True)).rstrip()
                  for r in urows]
    if others:
        lines.append(f"other findings: {other_line}")
    return "\n".join(lines)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True),
              default=None,
              help="Write findings as JSON Lines to this file ('-' = stdout; the default "
                   "when no --sink is given).")
@click.option("--observations", type=click.Path(dir_okay=False, allow_dash=True),
              help="Also write every decoded observation (TLS ClientHello, DNS, HTTP, DHCP, "
                   "Kerberos) as JSON Lines to this file.")
@click.option("-s", "--signatures", "sig_dirs", multiple=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Signature directory (repeatable; default: the bundled signatures/).")
@click.option("-c", "--config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TOML config file (see docs/config.md).")
@click.option("--batch-packets", type=click.IntRange(1024, 4_000_000), default=None,
              help="Packets per batch (default 32768).")
@click.option("--progress/--no-progress", default=None,
              help="Progress line on stderr (default: only when stderr is a terminal).")
@click.option("--identity", "identity_files", multiple=True, metavar="[FORMAT:]PATH",
              help="Identity source for attribution (repeatable): Zeek dhcp/kerberos logs, "
                   "dhcpd.leases, dnsmasq leases, Windows logon JSON lines, CSV/JSONL feed. "
                   "The format is detected unless given, e.g. csv:/path/feed.csv.")
@click.option("--pseudonymize", is_flag=True,
              help="Replace user names, host names and MACs in every output with keyed "
                   "hashes (key: identity.key_file in the config, or $SHADOWAI_PSEUDONYM_KEY).")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Inventory database to record the hunt in (default: the user's state "
                   "directory, $SHADOWAI_STATE_DIR; see `shadowai assets`).")
@click.option("--no-db", is_flag=True, help="Do not record this hunt in any inventory.")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a self-contained HTML report of the hunt to this file.")
@click.option("--flows", "flows_out", type=click.Path(dir_okay=False, allow_dash=True),
              default=None,
              help="Write every flow attributed to an AI service (the input of `shadowai model "
                   "train`) as JSON Lines to this file.")
@sink_options
@click.option("-q", "--quiet", is_flag=True, help="No summary table on stderr.")
def hunt(paths: tuple[str, ...], output: str | None, observations: str | None,
         sig_dirs: tuple[Path, ...], config: Path | None, batch_packets: int | None,
         progress: bool | None, identity_files: tuple[str, ...], pseudonymize: bool,
         db: Path | None, no_db: bool, report: Path | None, flows_out: str | None,
         sinks: tuple[str, ...], sink_format: str | None, spool_dir: str | None,
         quiet: bool) -> None:
    """Hunt captures and logs for AI use: pcap, pcapng (plain or gzip), Zeek logs (TSV or
    JSON) and Suricata eve.json, recognised by content.

    PATHS are files or directories (walked recursively). Findings go to stdout,
    --output or the --sink URLs; a summary table goes to stderr. Damaged captures
    keep the findings made before the damage; the exit code is then 3.
    """
    err = sys.stderr

    def on_obs(o: Observation) -> None:
        assert obs_sink is not None
        d = observation_dict(o)
        if pseudo is not None:
            d = pseudonymize_observation(d, pseudo)
        obs_sink.write(d)

    try:
        ctx = build_context(config, sig_dirs, identity_files, pseudonymize,
                            batch_packets=batch_packets)
        pseudo = ctx.pseudonymizer
        urls = list(sinks) + list(ctx.sinks.urls)
        if output is not None or not urls:
            urls.append(output_url(output or "-"))
        sink_set = open_sinks(urls, sink_format or ctx.sinks.format,
                              Path(spool_dir) if spool_dir else _spool_dir(ctx),
                              spool_max_bytes=ctx.sinks.spool_max_bytes, fsync=ctx.sinks.fsync)
        obs_sink = JsonlSink(observations) if observations else None
        flow_sink = JsonlSink(flows_out) if flows_out else None
        if flow_sink is not None:
            ctx.extra_detectors.append(FlowWriter(flow_sink.write))
        pipe = make_pipeline(ctx, on_obs if obs_sink else None)
    except InputError as e:
        click.echo(f"shadowai: {e}", err=True)
        sys.exit(EXIT_FATAL)
    show = err.isatty() if progress is None else progress
    bar = _Progress(show, err)
    problems = 0
    read_ok = 0
    kinds: dict[str, str] = {}
    try:
        with tuned_gc():
            problems, read_ok = _run_inputs(pipe, paths, ctx.settings, bar, err, kinds, quiet)
    except KeyboardInterrupt:
        click.echo("shadowai: interrupted; writing the findings made so far", err=True)
        problems += 1
    finally:
        bar.close()
        findings = pipe.finish()
        dicts = pipe.finding_dicts(findings)
        for d in dicts:
            sink_set.emit(d)
        delivered = sink_set.close(timeout=30.0)
        for closing in (obs_sink, flow_sink):
            if closing is not None:
                closing.close()
    if not delivered:
        pending = sum(st.pending for st in sink_set.stats().values())
        click.echo(f"shadowai: {pending} finding(s) not yet delivered stay in the spool and "
                   "go out on the next run", err=True)
    try:
        _record(ctx, dicts, [str(p) for p in paths], kinds, pipe,
                None if no_db else (db or default_db_path()), report)
    except InputError as e:
        click.echo(f"shadowai: {e}", err=True)
        problems += 1
    if not quiet:
        click.echo(summary_table(findings), err=True)
        s = pipe.stats
        click.echo(f"{s.packets:,} packets, {pipe.flows.stats.flows_created:,} flows, "
                   f"{_human_bytes(s.bytes_captured)} read; "
                   f"{pipe.dissector.stats.observations:,} observations; "
                   f"{pipe.flows.stats.flows_evicted:,} flows evicted", err=True)
    if read_ok == 0:
        sys.exit(EXIT_FATAL)
    sys.exit(EXIT_PARTIAL if problems else EXIT_OK)


def _spool_dir(ctx: RunContext) -> Path:
    """The config's spool dir, or a per-user one when that is not writable (a hunt as a user)."""
    d = Path(ctx.sinks.spool_dir)
    if os.access(d if d.exists() else d.parent, os.W_OK):
        return d
    return default_db_path().parent / "spool"


def _record(ctx: RunContext, dicts: list[dict[str, Any]], inputs: list[str],
            kinds: dict[str, str], pipe: Pipeline, db: Path | None,
            report: Path | None) -> None:
    if db is None and report is None:
        return
    versions = ctx.versions()
    stats = {"packets": pipe.stats.packets, "flows": pipe.flows.stats.flows_created,
             "findings": len(dicts), "inputs": kinds}
    from sensor.inventory.store import Inventory, assets_of
    from sensor.report.html import write_report

    if db is not None:
        with Inventory(db) as inv:
            inv.record(dicts, time.time_ns())
            inv.record_run(inputs, versions, stats)
            if report is not None:
                write_report(report, dicts, inv.assets(), inv.meta())
        return
    assert report is not None
    write_report(report, dicts, assets_of(dicts), {"inputs": inputs, "versions": versions})


def _run_inputs(pipe: Pipeline, paths: tuple[str, ...], settings: Settings, bar: _Progress,
                err: IO[str], kinds: dict[str, str], quiet: bool) -> tuple[int, int]:
    """Captures go through the packet path; Zeek/EVE logs are read together afterwards
    (a Zeek uid's records are spread over several files)."""
    problems = 0
    read_ok = 0
    logs: list[str | Path] = []
    for path, explicit in _expand(paths):
        kind = detect_input(path)
        kinds[str(path)] = kind
        if kind in ("zeek-tsv", "zeek-json", "eve"):
            if not quiet:
                click.echo(f"shadowai: {path}: reading as {kind}", err=True)
            logs.append(path)
            continue
        try:
            reader = open_capture(path)
        except InputError as e:
            if explicit:
                click.echo(f"shadowai: {e}", err=True)
                problems += 1
            else:
                click.echo(f"shadowai: skipped {path}: not a capture or log file", err=True)
            continue
        with reader:
            read_ok += 1
            for batch in reader.batches(settings.batch_packets):
                pipe.feed(batch)
                bar.update(str(path), batch.bytes_consumed, reader.bytes_total, pipe.stats.packets)
            if reader.damage is not None:
                bar.close()
                click.echo(f"shadowai: {reader.damage}", err=True)
                problems += 1
    if logs:
        read_ok += 1
        stats = ReadStats()
        try:
            feed_log_records(pipe, iter_log_paths(logs, stats))
        except InputError as e:
            click.echo(f"shadowai: {e}", err=True)
            problems += 1
        skipped = sum(stats.skipped.values())
        if skipped:
            why = ", ".join(f"{n} {r}" for r, n in sorted(stats.skipped.items()))
            click.echo(f"shadowai: skipped {skipped} log line(s): {why}", err=True)
    return problems, read_ok


if __name__ == "__main__":  # pragma: no cover
    main()
