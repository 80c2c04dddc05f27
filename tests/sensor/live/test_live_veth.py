"""`watch` on a veth pair in a private network namespace, fed by tcpreplay, finds
what `hunt` finds in the same capture (root only; skipped otherwise)."""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sensor.inventory.store import Inventory

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "pcaps" / "sample.pcap"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (netns, AF_PACKET)"),
    pytest.mark.skipif(not (shutil.which("tcpreplay") and shutil.which("ip")),
                       reason="needs tcpreplay and iproute2"),
    pytest.mark.slow,
]


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=20)


@pytest.fixture
def netns() -> Iterator[str]:
    ns = f"saiveth{os.getpid()}"
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "-n", ns, "link", "add", "va", "type", "veth", "peer", "name", "vb")
        for dev in ("va", "vb", "lo"):
            sh("ip", "-n", ns, "link", "set", dev, "up")
        # no IPv6 router solicitations or MLD reports on the capture side
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)


@functools.cache
def hunt_findings() -> dict[str, dict]:
    r = subprocess.run([sys.executable, "-m", "sensor.cli", "hunt", str(SAMPLE), "-q"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    return {d["id"]: d for d in map(json.loads, r.stdout.splitlines())}


def run_watch(ns: str, state: Path, *extra: str, hup: bool = False, run: str = "a",
              prefix: tuple[str, ...] = (), pcap: Path = SAMPLE) -> tuple[list[dict], str]:
    out = state / f"out-{run}.jsonl"  # file sinks append: one file per run
    state.mkdir(parents=True, exist_ok=True)
    err = state / f"err-{run}.log"
    cmd = ["ip", "netns", "exec", ns, *prefix, sys.executable, "-c",
           "from sensor.live.commands import watch; watch()", "-i", "vb", "-o", str(out),
           "--state-dir", str(state), "--emit-interval", "0.5", "--metrics", "127.0.0.1:0",
           "--block-timeout-ms", "20", *extra]
    (state / "status.json").unlink(missing_ok=True)  # a restart: wait for the new one
    with err.open("w") as fe:
        p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=fe)
        try:
            end = time.monotonic() + 30
            while not (state / "status.json").exists():
                assert p.poll() is None, err.read_text()
                assert time.monotonic() < end, "watch did not start"
                time.sleep(0.1)
            if hup:
                p.send_signal(signal.SIGHUP)
                while "event=reloaded" not in err.read_text():
                    assert time.monotonic() < end, "no reload"
                    time.sleep(0.1)
            sh("ip", "netns", "exec", ns, "tcpreplay", "-q", "-i", "va", "--topspeed",
               str(pcap))
            time.sleep(0.3)  # SIGTERM drains the ring: this only lets the veth deliver
            p.send_signal(signal.SIGTERM)
            assert p.wait(timeout=30) == 0, (state, err.read_text())
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    return [json.loads(x) for x in out.read_text().splitlines() if x], err.read_text()


def last_by_id(rows: list[dict]) -> dict[str, dict]:
    return {d["id"]: d for d in rows}


def same(a: dict, b: dict) -> None:
    assert a["client"] == b["client"] and a["service"] == b["service"]
    assert a["server"] == b["server"] and a["counts"] == b["counts"]
    assert sorted(map(json.dumps, a["evidence"])) == sorted(map(json.dumps, b["evidence"]))


def test_watch_finds_what_hunt_finds_and_remembers_it(netns, tmp_path):
    want = hunt_findings()
    assert len(want) >= 5
    s1 = tmp_path / "one"
    rows, log = run_watch(netns, s1, hup=True)
    got = last_by_id(rows)
    assert set(got) == set(want)
    for fid in want:
        same(got[fid], want[fid])
    st = json.loads((s1 / "status.json").read_text())
    assert st["stopped"] and st["reloads"] == 1
    vb = st["interfaces"]["vb"]
    assert vb["packets"] >= 287 and vb["kernel_drops"] == 0 and st["own_drops"] == 0
    assert log.count("event=new_finding") == len(want)

    # two workers (PACKET_FANOUT hash): the merged findings are the same
    s2 = tmp_path / "two"
    rows2, _ = run_watch(netns, s2, "--workers", "2")
    got2 = last_by_id(rows2)
    per_worker = json.loads((s2 / "status.json").read_text())["worker_packets"]
    assert len(per_worker) == 2 and min(per_worker) > 0  # the fanout spread the flows
    assert set(got2) == set(want)
    for fid in want:
        same(got2[fid], want[fid])

    # restart on the same state: nothing is new, nothing is re-sent, the inventory stays
    rows3, log3 = run_watch(netns, s2, "--workers", "2", run="b")
    assert rows3 == [] and "event=new_finding" not in log3
    assert json.loads((s2 / "status.json").read_text())["interfaces"]["vb"]["packets"] >= 287
    with Inventory(s2 / "inventory.db") as inv:
        assert {f["id"] for f in inv.findings()} == set(want)


def test_pcap_backend_and_filter_give_the_same_findings(netns, tmp_path):
    pytest.importorskip("pcapy")
    want = hunt_findings()
    rows, _ = run_watch(netns, tmp_path / "pcap", "--backend", "pcap")
    got = last_by_id(rows)
    assert set(got) == set(want)
    for fid in want:
        same(got[fid], want[fid])
    # a capture filter that drops DNS: DNS-only findings disappear, others keep their flows
    rows, _ = run_watch(netns, tmp_path / "bpf", "--filter", "not udp port 53")
    got = last_by_id(rows)
    dns_only = {i for i, f in want.items() if f["counts"].get("flows") == 0}
    assert dns_only and not (dns_only & set(got))
    assert {i for i, f in want.items() if f["counts"].get("flows")} <= set(got)


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_the_units_capabilities_suffice(netns):
    """As an unprivileged user with only the unit's three ambient capabilities and
    no-new-privileges, capture (with fanout and a filter) still works."""
    import pwd
    import tempfile
    nobody = pwd.getpwnam("nobody")
    state = Path(tempfile.mkdtemp(prefix="sai-caps-"))
    try:
        os.chmod(state, 0o755)
        os.chown(state, nobody.pw_uid, nobody.pw_gid)
        caps = "-all,+net_raw,+net_admin,+ipc_lock"
        # systemd's side of Type=notify and WatchdogSec=: a datagram socket
        import socket
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(state / "notify"))
        os.chmod(state / "notify", 0o777)
        notify.settimeout(0.1)
        prefix = ("env", f"HOME={state}", f"SHADOWAI_CACHE_DIR={state}/cache",
                  f"NOTIFY_SOCKET={state}/notify", "WATCHDOG_USEC=1000000", "setpriv",
                  f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups",
                  f"--inh-caps={caps}", f"--ambient-caps={caps}", f"--bounding-set={caps}",
                  "--no-new-privs")
        (state / "s").mkdir()
        os.chown(state / "s", nobody.pw_uid, nobody.pw_gid)
        rows, _ = run_watch(netns, state / "s", "--workers", "2", "--filter", "ip",
                            prefix=prefix)
        assert set(last_by_id(rows)) == set(hunt_findings())
        msgs = []
        while True:
            try:
                msgs.append(notify.recv(4096).decode())
            except TimeoutError:
                break
        notify.close()
        assert msgs[0].startswith("READY=1\nMAINPID=")
        assert "WATCHDOG=1" in msgs and any(m.startswith("STATUS=vb: ") for m in msgs)
        assert any(m.startswith("STOPPING=1") for m in msgs[1:])
    finally:
        shutil.rmtree(state, ignore_errors=True)


def test_a_vanished_interface_ends_watch_with_its_findings(netns, tmp_path):
    """The capture interface is deleted: watch reports what it found and exits 1
    (systemd restarts it once the device is back)."""
    state = tmp_path / "gone"
    state.mkdir()
    out, err = state / "out.jsonl", state / "err.log"
    cmd = ["ip", "netns", "exec", netns, sys.executable, "-c",
           "from sensor.live.commands import watch; watch()", "-i", "vb", "-o", str(out),
           "--state-dir", str(state), "--emit-interval", "0.5", "--metrics", "off"]
    with err.open("w") as fe:
        p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=fe)
        try:
            end = time.monotonic() + 30
            while not (state / "status.json").exists():
                assert p.poll() is None and time.monotonic() < end, err.read_text()
                time.sleep(0.1)
            sh("ip", "netns", "exec", netns, "tcpreplay", "-q", "-i", "va", "--topspeed",
               str(SAMPLE))
            time.sleep(0.5)
            sh("ip", "-n", netns, "link", "del", "va")  # takes vb with it
            assert p.wait(timeout=30) == 1
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert "the interface is gone" in err.read_text()
    got = last_by_id([json.loads(x) for x in out.read_text().splitlines() if x])
    assert set(got) == set(hunt_findings())


def test_two_workers_share_dns_answers(netns, tmp_path):
    """Flows with no name on the wire, named only by an earlier DNS answer: with the
    fanout the answer and the flow land on different workers about half the time;
    the shared bindings still attribute every flow (without them: 23 of 40 here)."""
    from tests.helpers.packets import Lab, client_hello_record
    lab = Lab()
    names = ["api.openai.com", "api.anthropic.com", "chatgpt.com", "claude.ai",
             "api.mistral.ai"]
    for i in range(40):
        ip = f"198.51.100.{i + 1}"
        lab.dns(f"10.20.0.{i + 10}", names[i % len(names)], [ip], txid=i)
        lab.tcp(f"10.20.0.{i + 10}", 40000 + i, ip, 443, [client_hello_record(None)],
                [b"\x16\x03\x03\x00\x02\x02\x00"])
    pcap = lab.write(tmp_path / "nosni.pcap")
    rows, _ = run_watch(netns, tmp_path / "w", "--workers", "2", pcap=pcap)
    got = last_by_id(rows)
    assert len(got) == 40
    assert sum(f["counts"]["flows"] for f in got.values()) == 40
    assert all("dns.answer" in f["attributed_by"] for f in got.values())
