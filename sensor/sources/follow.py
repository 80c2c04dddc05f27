"""Follow live logs as they grow and rotate: a Zeek log directory or an eve.json.

Each followed log keeps a position: (inode, byte offset after the last line
processed, hash of the file's head). The position of every log is written
atomically (temp file + rename) to a small JSON state file after each poll
that moved it and when the follower stops, so a restart resumes where the
last run stopped, neither repeating nor skipping a record:

* rotation while running: the old file is read to its end (a last line without
  a newline counts, the writer has let go of it) before the new one is opened;
* rotation while stopped: the saved head hash finds the rotated file (renamed,
  moved to a ``YYYY-MM-DD/`` folder, gzip-compressed: offsets count
  decompressed bytes); it is read from the saved offset, then the live file;
* copy-truncate: a file shorter than the offset starts again at 0.

The head is the first line, or for Zeek TSV everything through ``#open``
(the lines above it are the same in every file). Only complete lines are read.

Delivery: a record counts as processed when the consumer asks for the next one
(or stops). A graceful stop (the stop event, checked between lines) is exactly
once; closing the generator in the middle of a line's records re-delivers that
line's earlier records, and a hard kill re-delivers what came since the last
save (at least once).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import click

from sensor.sources.eve import EveConverter, eve_line
from sensor.sources.logs import LogRecord, ReadStats
from sensor.sources.zeek import LOGS, RowConverter, ZeekLineParser, log_name, open_bytes

STATE_VERSION = 1
HEAD_BYTES = 64 * 1024
MAX_READ = 4 * 1024 * 1024  # bytes read from one file per poll: bounds memory
MAX_CANDIDATES = 200  # rotated files examined when looking for a saved head

LineParser = Callable[[str], list[LogRecord]]


def head_hash(data: bytes) -> str | None:
    """Hash of a log's identifying head, None until that head is complete."""
    end = -1
    if data.startswith(b"#"):
        pos = 0
        while True:
            nl = data.find(b"\n", pos)
            if nl < 0:
                return None
            line = data[pos:nl]
            if line.startswith(b"#open") or not line.startswith(b"#"):
                end = nl
                break
            pos = nl + 1
    else:
        end = data.find(b"\n")
        if end < 0:
            return None
    return hashlib.blake2b(data[:end + 1], digest_size=16).hexdigest()


def file_head(path: Path) -> str | None:
    try:
        with open_bytes(path) as f:
            return head_hash(f.read(HEAD_BYTES))
    except (OSError, EOFError):
        return None


@dataclass(slots=True)
class Position:
    inode: int
    offset: int
    head: str | None
    path: str  # the file read (the live path, or a rotated file being drained)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _Tail:
    """One followed log: the live path, and the file currently read."""

    def __init__(self, key: str, live: Path, make_parser: Callable[[], LineParser],
                 candidates: Callable[[], list[Path]], st: ReadStats) -> None:
        self.key = key
        self.live = live
        self.make_parser = make_parser
        self.candidates = candidates
        self.st = st
        self.fh: IO[bytes] | None = None
        self.cur: Path = live
        self.draining = False  # cur is a rotated file: after its end go to the live one
        self.replaced_seen = False  # the live path held another file at the last poll
        self.pending = b""
        self.inode = 0
        self.offset = 0
        self.head: str | None = None
        self.parser = make_parser()

    # -- opening ----------------------------------------------------------------------

    def _open_at(self, path: Path, offset: int, draining: bool) -> bool:
        try:
            fh = open_bytes(path)
            ino = os.fstat(fh.fileno()).st_ino
        except OSError:
            return False
        self.close()
        self.fh, self.cur, self.draining, self.inode = fh, path, draining, ino
        self.replaced_seen = False
        self.parser = self.make_parser()
        self.head = None
        if offset:
            self._prime_header(offset)
            fh.seek(offset)
        self.offset = offset
        self.pending = b""  # read after offset, not yet a complete line
        return True

    def _prime_header(self, offset: int) -> None:
        """A TSV reader resumed mid-file needs the ``#`` header lines at its top."""
        assert self.fh is not None
        self.fh.seek(0)
        data = self.fh.read(min(offset, HEAD_BYTES))
        for raw in data.split(b"\n")[:-1]:
            if not raw.startswith(b"#"):
                break
            self.parser(raw.decode("utf-8", "surrogateescape"))
            self.st.lines -= 1  # not a line of this run

    def resume(self, saved: Position | None) -> None:
        if saved is None:
            self._open_at(self.live, 0, False)
            return
        live_head = file_head(self.live) if self.live.exists() else None
        if saved.head is None or saved.head == live_head:
            if self.live.exists():
                size = self.live.stat().st_size
                self._open_at(self.live, saved.offset if saved.offset <= size or (
                    saved.head is not None) else 0, False)
            return
        for cand in self._candidates(saved):
            if file_head(cand) == saved.head:
                self._open_at(cand, saved.offset, True)
                return
        self.st.skip("follow: file of the saved position not found (records may be lost)")
        self._open_at(self.live, 0, False)

    def _candidates(self, saved: Position) -> list[Path]:
        out = [Path(saved.path)] if saved.path and Path(saved.path) != self.live else []
        out += [p for p in self.candidates() if p != self.live and p not in out]
        return [p for p in out if p.is_file()][:MAX_CANDIDATES]

    # -- reading -----------------------------------------------------------------------

    def poll(self) -> tuple[list[tuple[str, int]], bool]:
        """Complete lines after the offset (with their end offsets), and whether the
        file is done (replaced by a newer one and read to its end)."""
        if self.fh is None:
            if self.live.exists():
                self._open_at(self.live, 0, False)
            if self.fh is None:
                return [], False
        assert self.fh is not None
        try:
            chunk = self.fh.read(MAX_READ)  # on from the last read: no seek (gzip rewinds)
        except (OSError, EOFError):
            chunk = b""
        data = self.pending + chunk
        rep = self._replaced()
        # replaced: done once a later poll still finds no more than we read, so a
        # writer that appends to the renamed file until it reopens loses nothing
        done = (self.draining or (rep and self.replaced_seen)) and len(chunk) < MAX_READ
        self.replaced_seen = rep
        if not rep and not self.draining and not chunk and self._truncated():
            self.st.skip("follow: file truncated in place (copy-truncate)")
            self._open_at(self.cur, 0, False)
            return [], False
        last = data.rfind(b"\n")
        body = data[:last + 1] if last >= 0 else b""
        lines: list[tuple[str, int]] = []
        pos = self.offset
        for raw in body.split(b"\n")[:-1] if body else []:
            pos += len(raw) + 1
            lines.append((raw.decode("utf-8", "surrogateescape"), pos))
        rest = data[last + 1:]
        self.pending = rest
        if done and rest:  # the rotated file's last line had no newline: complete now
            lines.append((rest.decode("utf-8", "surrogateescape"), pos + len(rest)))
            self.pending = b""
        if self.head is None and (lines or self.offset):
            self.head = file_head(self.cur)
        return lines, done

    def _replaced(self) -> bool:
        try:
            return os.stat(self.live).st_ino != self.inode
        except FileNotFoundError:
            return False  # gone, nothing new yet: keep reading the open file

    def _truncated(self) -> bool:
        try:
            end = self.offset + len(self.pending)
            return os.fstat(self.fh.fileno()).st_size < end if self.fh else False
        except (OSError, ValueError):
            return False

    def next_file(self) -> None:
        """The current file is done: go on with the live file from its start."""
        self.close()
        self.cur, self.draining, self.inode, self.offset, self.head = (
            self.live, False, 0, 0, None)
        self.replaced_seen = False
        self.parser = self.make_parser()

    def position(self) -> Position | None:
        if self.fh is None and not self.offset:
            return None
        return Position(self.inode, self.offset, self.head, str(self.cur))

    def close(self) -> None:
        if self.fh is not None:
            with contextlib.suppress(OSError):
                self.fh.close()
            self.fh = None


class LogFollower:
    """Follow a Zeek log directory (``kind="zeek-dir"``) or an EVE file (``"eve"``).

    ``records()`` yields LogRecords until ``stop`` is set; it sleeps at most
    ``poll_s`` between polls that found nothing (the stop event wakes it).
    """

    def __init__(self, target: str | Path, kind: str, state_path: str | Path | None = None,
                 stop: threading.Event | None = None, poll_s: float = 1.0,
                 stats: ReadStats | None = None,
                 on_idle: Callable[[], None] | None = None) -> None:
        if kind not in ("zeek-dir", "eve"):
            raise ValueError(f"kind must be 'zeek-dir' or 'eve', not {kind!r}")
        self.target = Path(target)
        self.kind = kind
        self.state_path = Path(state_path) if state_path else None
        self.stop = stop or threading.Event()
        self.poll_s = max(0.01, min(poll_s, 60.0))
        self.st = stats or ReadStats()
        self.on_idle = on_idle  # called in the consumer's thread after a poll found nothing
        self._tails: dict[str, _Tail] = {}
        self._saved: dict[str, Position] = {}
        self._zeek_conv = RowConverter(self.st)
        self._eve_conv = EveConverter(self.st)

    # -- state --------------------------------------------------------------------------

    def _load(self) -> None:
        if self.state_path is None or not self.state_path.exists():
            return
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
            for key, v in data.get("files", {}).items():
                self._saved[key] = Position(int(v["inode"]), int(v["offset"]),
                                            v.get("head"), str(v.get("path", "")))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            self.st.skip("follow: state file unreadable, starting from the beginning")
            self._saved.clear()

    def save(self) -> None:
        """Write every position atomically (temp file in the same folder + rename)."""
        if self.state_path is None:
            return
        files = dict(self._saved)
        for key, t in self._tails.items():
            pos = t.position()
            if pos is not None:
                files[key] = pos
        data = {"version": STATE_VERSION, "target": str(self.target),
                "files": {k: p.to_json() for k, p in sorted(files.items())}}
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.state_path)

    # -- tails --------------------------------------------------------------------------

    def _zeek_candidates(self, name: str) -> Callable[[], list[Path]]:
        def find() -> list[Path]:
            found = [p for p in self.target.rglob(f"{name}.*") if p.is_file()
                     and log_name(p) == name and not p.name.endswith(".tmp")]
            return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)
        return find

    def _eve_candidates(self) -> list[Path]:
        base = self.target.name
        found = [p for p in self.target.parent.glob(f"{base}*") if p.is_file()
                 and p != self.target and not p.name.endswith((".tmp", ".shadowai-pos"))
                 and (self.state_path is None or p != self.state_path)]
        return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)

    def _discover(self) -> None:
        if self.kind == "eve":
            if "eve" not in self._tails:
                conv = self._eve_conv
                self._add("eve", self.target,
                          lambda: (lambda line: eve_line(line, self.st, conv)),
                          self._eve_candidates)
            return
        for name in LOGS:
            if name in self._tails:
                continue
            live = self.target / f"{name}.log"
            if live.exists() or name in self._saved:
                self._add(name, live, self._zeek_parser(name), self._zeek_candidates(name))

    def _zeek_parser(self, name: str) -> Callable[[], LineParser]:
        def make() -> LineParser:
            return ZeekLineParser(name, self.st, self._zeek_conv).feed
        return make

    def _add(self, key: str, live: Path, make: Callable[[], LineParser],
             cands: Callable[[], list[Path]]) -> None:
        t = _Tail(key, live, make, cands, self.st)
        t.resume(self._saved.pop(key, None))
        self._tails[key] = t

    def _order(self) -> list[_Tail]:
        rank = {k: i for i, k in enumerate(LOGS)}
        return sorted(self._tails.values(), key=lambda t: rank.get(t.key, -1))

    # -- the loop -----------------------------------------------------------------------

    def records(self) -> Iterator[LogRecord]:
        self._load()
        try:
            while not self.stop.is_set():
                self._discover()
                moved = False
                for t in self._order():
                    while True:
                        lines, done = t.poll()
                        for line, end in lines:
                            yield from t.parser(line)
                            t.offset = end
                            moved = True
                            if self.stop.is_set():
                                return
                        if done:
                            t.next_file()
                            moved = True
                            continue
                        if len(lines) == 0 or sum(len(s) + 1 for s, _ in lines) < MAX_READ // 2:
                            break
                if moved:
                    self.save()
                else:
                    self.stop.wait(self.poll_s)
                    if self.on_idle is not None:
                        self.on_idle()
        finally:
            if self._tails:
                self.save()
            for key, t in self._tails.items():
                pos = t.position()
                if pos is not None:
                    self._saved[key] = pos  # a later records() resumes here
                t.close()
            self._tails.clear()


# -- CLI ----------------------------------------------------------------------------------


def record_dict(rec: LogRecord) -> dict[str, Any]:
    """A JSON-able dict of a record (observations in their documented form)."""
    from sensor.observations import observation_dict
    from sensor.records import Observation

    if isinstance(rec, Observation):
        return observation_dict(rec)
    d = asdict(rec)
    d["record"] = type(rec).__name__
    return d


@click.command("watch-logs")
@click.option("--zeek-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Zeek log directory (live *.log, rotated YYYY-MM-DD/ folders)")
@click.option("--eve", type=click.Path(dir_okay=False, path_type=Path),
              help="Suricata eve.json")
@click.option("--state", "state", type=click.Path(dir_okay=False, path_type=Path),
              help="position file (default: <dir>/.shadowai-follow.json or <eve>.shadowai-pos)")
@click.option("--poll", "poll_s", type=float, default=1.0, show_default=True,
              help="seconds between polls when nothing new")
def watch_logs(zeek_dir: Path | None, eve: Path | None, state: Path | None,
               poll_s: float) -> None:
    """Follow live Zeek logs or EVE and print each record as a JSON line."""
    if (zeek_dir is None) == (eve is None):
        raise click.UsageError("give exactly one of --zeek-dir and --eve")
    target = zeek_dir if zeek_dir is not None else eve
    assert target is not None
    kind = "zeek-dir" if zeek_dir is not None else "eve"
    if state is None:
        state = (target / ".shadowai-follow.json" if kind == "zeek-dir"
                 else target.with_name(target.name + ".shadowai-pos"))
    follower = LogFollower(target, kind, state, poll_s=poll_s)
    click.echo(f"following {target} as {kind}; positions in {state}", err=True)
    try:
        for rec in follower.records():
            click.echo(json.dumps(record_dict(rec), default=str))
    except KeyboardInterrupt:
        follower.stop.set()
