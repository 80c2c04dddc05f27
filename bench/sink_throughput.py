"""Findings per second through the syslog TCP sink (format, spool, delivery thread) on
one core, into a loopback receiver running in another process.

    python bench/sink_throughput.py [--n 100000] [--format native|ecs|ocsf|cef]

The figure counts from the first emit() until the receiver holds every message and the
spool has acknowledged them all (end to end, at-least-once path included).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sensor.findings import Finding, ServiceRef
from sensor.sinks.sinkset import open_sinks


def receiver(port_q: mp.Queue, count_q: mp.Queue, n: int) -> None:  # type: ignore[type-arg]
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(4)
    port_q.put(s.getsockname()[1])
    got = 0
    buf = bytearray()
    reported = False
    while True:   # keep reading until the sender closes: it confirms only a live link
        c, _ = s.accept()
        while True:
            data = c.recv(1 << 20)
            if not data:
                break
            buf += data
            pos = 0
            while True:   # count octet-counted frames
                sp = buf.find(b" ", pos)
                if sp < 0:
                    break
                ln = int(buf[pos:sp])
                if len(buf) < sp + 1 + ln:
                    break
                pos = sp + 1 + ln
                got += 1
            del buf[:pos]
            if got >= n and not reported:
                count_q.put((got, time.perf_counter()))
                reported = True
        c.close()


def findings(n: int) -> list[dict[str, object]]:
    out = []
    svc = ServiceRef("openai", "OpenAI API", "OpenAI", "llm_api")
    for i in range(n):
        f = Finding(type="ai_service_use", client_ip=f"10.{i >> 16 & 255}.{i >> 8 & 255}."
                    f"{i & 255}", service=svc, first_ns=1_764_000_000_000_000_000 + i,
                    last_ns=1_764_000_060_000_000_000 + i, client_mac="02:00:00:00:00:01",
                    server_ip="104.18.7.192", server_port=443, server_name="api.openai.com",
                    flows=3, packets=40, bytes_client_to_server=5000,
                    bytes_server_to_client=90000)
        f.add_evidence("tls.sni", "api.openai.com", 20)
        out.append(f.to_dict())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--format", default="native")
    args = ap.parse_args()
    port_q: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    count_q: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    rx = mp.Process(target=receiver, args=(port_q, count_q, args.n), daemon=True)
    rx.start()
    port = port_q.get(timeout=10)
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[0]})       # the sensor side gets one core
        os.sched_setaffinity(rx.pid, {cpus[-1]})  # type: ignore[arg-type]
    data = findings(args.n)
    with tempfile.TemporaryDirectory() as spool:
        sinks = open_sinks([f"syslog+tcp://127.0.0.1:{port}?format={args.format}"], "native",
                           Path(spool))
        c0 = time.process_time()
        t0 = time.perf_counter()
        for f in data:
            sinks.emit(f)
        t_emit = time.perf_counter() - t0
        got, t_rx = count_q.get(timeout=120)   # perf_counter is system-wide on Linux
        t_all = t_rx - t0
        cpu = time.process_time() - c0   # emit + delivery thread, this process only
        ok = sinks.close(timeout=120)
    rx.terminate()
    assert ok and got >= args.n, (ok, got)
    print(f"syslog+tcp format={args.format}: {args.n} findings, emit {args.n / t_emit:,.0f}/s, "
          f"end-to-end {args.n / t_all:,.0f} findings/s wall on one core, "
          f"{args.n / cpu:,.0f} findings per CPU-second (load-independent)")


if __name__ == "__main__":
    main()
