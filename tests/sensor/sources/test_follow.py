"""Follow mode: growth, rotation (running and stopped), restart: each record exactly once."""

from __future__ import annotations

import gzip
import json
import os
import threading
import time
from collections import Counter
from pathlib import Path

from sensor.flows import FlowRecord
from sensor.records import DnsMessage, Observation
from sensor.sources.follow import LogFollower, head_hash
from sensor.sources.logs import LogRecord, ReadStats, flow_id_of


def eve_line(i: int) -> str:
    return json.dumps({"timestamp": "2026-11-26T10:00:00.000000+0000", "flow_id": i,
                       "event_type": "dns", "src_ip": "10.0.0.5", "src_port": 40000,
                       "dest_ip": "10.0.0.1", "dest_port": 53, "proto": "UDP",
                       "dns": {"type": "query", "id": i, "rrname": f"q{i}.example",
                               "rrtype": "A"}}) + "\n"


def eve_ids(recs: list[LogRecord]) -> list[int]:
    out = []
    for r in recs:
        assert isinstance(r, Observation) and isinstance(r.payload, DnsMessage)
        out.append(int(r.payload.questions[0].name[1:].split(".")[0]))
    return out


def consume(f: LogFollower, n: int, timeout_s: float = 10.0) -> list[LogRecord]:
    """Take n records, then stop the follower gracefully (a watchdog bounds the wait)."""
    got: list[LogRecord] = []
    watchdog = threading.Timer(timeout_s, f.stop.set)
    watchdog.start()
    try:
        if n == 0:
            f.stop.set()
        for rec in f.records():
            got.append(rec)
            if len(got) >= n:
                f.stop.set()
    finally:
        watchdog.cancel()
    return got


def test_head_hash() -> None:
    assert head_hash(b"partial") is None
    assert head_hash(b'{"a":1}\n{"b":2}\n') == head_hash(b'{"a":1}\n')
    tsv_a = b"#separator \\x09\n#path\tconn\n#open\t2026-11-26-10-00-00\n#fields\tts\n"
    tsv_b = tsv_a.replace(b"10-00-00", b"11-00-00")
    assert head_hash(tsv_a) != head_hash(tsv_b) and head_hash(tsv_a[:30]) is None


def test_eve_restart_and_rotation_while_stopped(tmp_path: Path) -> None:
    eve, state = tmp_path / "eve.json", tmp_path / "state.json"
    eve.write_text("".join(eve_line(i) for i in range(10)) + eve_line(10)[:20])  # partial
    a = consume(LogFollower(eve, "eve", state, poll_s=0.01), 4)
    assert eve_ids(a) == [0, 1, 2, 3]
    pos = json.loads(state.read_text())["files"]["eve"]
    assert pos["offset"] == sum(len(eve_line(i)) for i in range(4))
    assert pos["inode"] == os.stat(eve).st_ino
    # complete the partial line, rotate (compressed), write a new file: all while stopped
    with eve.open("a") as fh:
        fh.write(eve_line(10)[20:] + eve_line(11))
    (tmp_path / "eve.json.1.gz").write_bytes(gzip.compress(eve.read_bytes()))
    eve.unlink()
    eve.write_text("".join(eve_line(i) for i in range(12, 15)))
    st = ReadStats()
    b = consume(LogFollower(eve, "eve", state, poll_s=0.01, stats=st), 11)
    assert eve_ids(b) == list(range(4, 15))
    assert not st.skipped


def test_partial_line_waits_for_its_newline(tmp_path: Path) -> None:
    eve, state = tmp_path / "eve.json", tmp_path / "s.json"
    eve.write_text(eve_line(0) + eve_line(1)[:30])
    f = LogFollower(eve, "eve", state, poll_s=0.01)
    gen = f.records()
    assert eve_ids([next(gen)]) == [0]

    def finish() -> None:
        time.sleep(0.1)
        with eve.open("a") as fh:
            fh.write(eve_line(1)[30:])
    t = threading.Thread(target=finish)
    t.start()
    assert eve_ids([next(gen)]) == [1]
    t.join()
    f.stop.set()
    assert list(gen) == []


def test_copy_truncate_starts_over(tmp_path: Path) -> None:
    eve, state = tmp_path / "eve.json", tmp_path / "s.json"
    eve.write_text("".join(eve_line(i) for i in range(5)))
    assert eve_ids(consume(LogFollower(eve, "eve", state, poll_s=0.01), 5)) == list(range(5))
    with eve.open("r+") as fh:  # copy-truncate: same inode, shorter
        fh.truncate(0)
        fh.write(eve_line(5))
    st = ReadStats()
    assert eve_ids(consume(LogFollower(eve, "eve", state, poll_s=0.01, stats=st), 1)) == [5]


CONN_HEAD = ("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
             "#path\tconn\n#open\t{open}\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\t"
             "id.resp_p\tproto\tduration\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\n"
             "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tinterval\tcount\tcount\tcount"
             "\tcount\n")


def conn_line(i: int) -> str:
    return (f"1764151200.{i:06d}\tC{i}\t10.0.0.5\t{1024 + i}\t1.2.3.4\t443\ttcp\t0.5\t3\t300\t"
            f"2\t200\n")


def conn_ids(recs: list[LogRecord]) -> list[int]:
    back = {flow_id_of(f"C{i}"): i for i in range(1000)}
    return [back[r.key] for r in recs if isinstance(r, FlowRecord)]


def test_zeek_dir_resume_mid_file_and_after_archiving(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    live = tmp_path / "conn.log"
    live.write_text(CONN_HEAD.format(open="2026-11-26-10-00-00")
                    + "".join(conn_line(i) for i in range(6)))
    assert conn_ids(consume(LogFollower(tmp_path, "zeek-dir", state, poll_s=0.01), 2)) == [0, 1]
    # resume mid-file: the TSV header must be re-read for the remaining rows
    assert conn_ids(consume(LogFollower(tmp_path, "zeek-dir", state, poll_s=0.01), 2)) == [2, 3]
    # while stopped: Zeek rotates, the archiver gzips into a day folder, a new live log starts
    with live.open("a") as fh:
        fh.write(conn_line(6) + "#close\t2026-11-26-11-00-00\n")
    day = tmp_path / "2026-11-26"
    day.mkdir()
    (day / "conn.10:00:00-11:00:00.log.gz").write_bytes(gzip.compress(live.read_bytes()))
    live.unlink()
    live.write_text(CONN_HEAD.format(open="2026-11-26-11-00-00")
                    + "".join(conn_line(i) for i in range(7, 9)))
    st = ReadStats()
    rest = consume(LogFollower(tmp_path, "zeek-dir", state, poll_s=0.01, stats=st), 5)
    assert conn_ids(rest) == [4, 5, 6, 7, 8] and not st.skipped


def test_writer_rotates_while_running_and_follower_restarts(tmp_path: Path) -> None:
    """A writer appends and rotates; the follower is restarted half-way: all exactly once."""
    eve, state = tmp_path / "eve.json", tmp_path / "state.json"
    eve.write_text("")
    total, per_file = 240, 60
    done = threading.Event()

    def writer() -> None:
        fh = eve.open("a")
        for i in range(total):
            if i and i % per_file == 0:
                fh.close()
                os.rename(eve, tmp_path / f"eve.json.{i // per_file}")
                fh = eve.open("a")
            fh.write(eve_line(i))
            fh.flush()
            if i % 20 == 0:
                time.sleep(0.02)
        fh.close()
        done.set()

    t = threading.Thread(target=writer)
    t.start()
    first = consume(LogFollower(eve, "eve", state, poll_s=0.005), 100, timeout_s=20)
    second = consume(LogFollower(eve, "eve", state, poll_s=0.005), total - len(first),
                     timeout_s=20)
    t.join()
    ids = eve_ids(first) + eve_ids(second)
    assert done.is_set() and len(first) == 100
    dupes = [k for k, v in Counter(ids).items() if v > 1]
    assert not dupes and sorted(ids) == list(range(total))
    assert ids == list(range(total))  # and in order


def test_watch_logs_command_needs_one_source(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from sensor.sources.follow import watch_logs

    runner = CliRunner()
    assert runner.invoke(watch_logs, []).exit_code == 2
    both = runner.invoke(watch_logs, ["--zeek-dir", str(tmp_path), "--eve",
                                      str(tmp_path / "eve.json")])
    assert both.exit_code == 2 and "exactly one" in both.output


def test_record_dict_is_json(tmp_path: Path) -> None:
    from sensor.sources.follow import record_dict

    eve = tmp_path / "eve.json"
    eve.write_text(eve_line(1))
    (rec,) = consume(LogFollower(eve, "eve", None, poll_s=0.01), 1)
    d = record_dict(rec)
    assert d["kind"] == "dns" and d["query"] == "q1.example"
    json.dumps(d)


def test_records_again_resumes_without_a_state_file(tmp_path: Path) -> None:
    eve = tmp_path / "eve.json"
    eve.write_text("".join(eve_line(i) for i in range(6)))
    f = LogFollower(eve, "eve", None, poll_s=0.01)
    assert eve_ids(consume(f, 2)) == [0, 1]
    f.stop.clear()
    assert eve_ids(consume(f, 4)) == [2, 3, 4, 5]
