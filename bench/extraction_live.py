#!/usr/bin/env python3
"""A real client against a fake OpenAI server, captured and hunted (needs root).

    python bench/extraction_live.py [--seconds 90] [--workers 4] [--keep DIR]

In a network namespace of its own (loopback only, MTU 1500 so segments look
like Ethernet), it starts a fake OpenAI-compatible server (HTTP/1.1
keep-alive, chat completions of ~1-3 KB after 20-60 ms) on 10.9.0.1:8080 and
captures lo with tcpdump while:

* 10.9.0.66 runs an extraction loop with the ``openai`` SDK: ``--workers``
  threads sending short prompts back to back for ``--seconds``;
* 10.9.0.10 chats normally: a request every 5-15 s.

Both send ``Host: api.openai.com`` so the hunt attributes the flows to the
OpenAI API from the HTTP request. The capture then goes through the real
pipeline with the volume detector; the findings are printed. Needs: root
(``ip netns``), tcpdump, ``pip install openai``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SERVER, SUSPECT, NORMAL = "10.9.0.1", "10.9.0.66", "10.9.0.10"
WORDS = ("model", "token", "answer", "vector", "layer", "weight", "prompt", "logit", "the", "a")


class FakeOpenAI(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # http.server names it so
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        req = json.loads(body or b"{}")
        time.sleep(random.uniform(0.02, 0.06))
        text = " ".join(random.choice(WORDS) for _ in range(random.randint(150, 450)))
        out = json.dumps({
            "id": "chatcmpl-x", "object": "chat.completion", "created": int(time.time()),
            "model": req.get("model", "gpt-4o-mini"),
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 300, "total_tokens": 320},
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: object) -> None:
        pass


def client(local: str):  # type: ignore[no-untyped-def]
    import httpx
    import openai

    http = httpx.Client(transport=httpx.HTTPTransport(local_address=local),
                        headers={"Host": "api.openai.com"})
    return openai.OpenAI(base_url=f"http://{SERVER}:8080/v1", api_key="sk-test",
                         http_client=http, max_retries=0)


def inner(pcap: Path, seconds: float, workers: int) -> None:
    """Runs inside the namespace."""
    srv = ThreadingHTTPServer((SERVER, 8080), FakeOpenAI)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    dump = subprocess.Popen(["tcpdump", "-i", "lo", "-w", str(pcap), "-U", "-s", "0",
                             "tcp port 8080"], stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    stop = time.monotonic() + seconds
    counts = {"extraction": 0, "normal": 0}

    def extract(i: int) -> None:
        c = client(SUSPECT)
        r = random.Random(i)
        while time.monotonic() < stop:
            c.chat.completions.create(model="gpt-4o-mini", max_tokens=64, messages=[
                {"role": "user", "content": f"Classify: {r.getrandbits(64):x} "
                                            + " ".join(r.choice(WORDS) for _ in range(40))}])
            counts["extraction"] += 1

    def normal() -> None:
        c = client(NORMAL)
        while time.monotonic() < stop:
            c.chat.completions.create(model="gpt-4o", messages=[
                {"role": "user", "content": "Summarise this paragraph for me: "
                                            + " ".join(random.choice(WORDS) for _ in range(200))}])
            counts["normal"] += 1
            time.sleep(random.uniform(5, 15))

    threads = [threading.Thread(target=extract, args=(i,)) for i in range(workers)]
    threads.append(threading.Thread(target=normal))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(1.0)
    dump.terminate()
    dump.wait()
    srv.shutdown()
    print(json.dumps(counts))


def hunt(pcap: Path) -> list[dict[str, object]]:
    from sensor.catalog.index import Catalog, default_signature_dir
    from sensor.config import Settings
    from sensor.pipeline import Pipeline
    from sensor.sources.capture import open_capture
    from sensor.volume.detector import VolumeDetector
    from sensor.volume.model import default_model_dir, load_model

    det = VolumeDetector(load_model(default_model_dir()))
    pipe = Pipeline(Settings(), Catalog.load([default_signature_dir()]), detectors=[det])
    with open_capture(pcap) as r:
        for b in r.batches(8192):
            pipe.feed(b)
    return [f.to_dict() for f in pipe.finish()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=90.0)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--keep", type=Path, default=None, help="Keep the capture in this dir.")
    ap.add_argument("--inner", type=Path, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.inner:
        inner(a.inner, a.seconds, a.workers)
        return
    ns = f"xvol{os.getpid()}"
    tmp = Path(tempfile.mkdtemp(prefix="xvol"))
    pcap = (a.keep or tmp) / "live.pcap"
    pcap.parent.mkdir(parents=True, exist_ok=True)
    sh = ["ip", "netns", "exec", ns]
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run([*sh, "ip", "link", "set", "lo", "mtu", "1500", "up"], check=True)
        for ip in (SERVER, SUSPECT, NORMAL):
            subprocess.run([*sh, "ip", "addr", "add", f"{ip}/32", "dev", "lo"], check=True)
        out = subprocess.run([*sh, sys.executable, __file__, "--inner", str(pcap),
                              "--seconds", str(a.seconds), "--workers", str(a.workers)],
                             check=True, capture_output=True, text=True, cwd=ROOT)
        print("requests:", out.stdout.strip())
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=False)
    found = hunt(pcap)
    if a.keep is None:
        shutil.rmtree(tmp, ignore_errors=True)
    for f in found:
        v = f.get("volume") or {}
        print(f"{f['type']:<18} {f['severity']:<7} {f['client']['ip']:<11} "  # type: ignore[index]
              f"{f['service']['id']:<12} {v.get('score', '')}")  # type: ignore[index,union-attr]
        for c in v.get("top_contributions", [])[:3]:  # type: ignore[union-attr]
            print("     ", c["text"])
    flagged = {f["client"]["ip"] for f in found if f["type"] == "extraction_volume"}  # type: ignore[index]
    print(f"extraction flagged: {sorted(flagged)}; expected [{SUSPECT!r}]")
    sys.exit(0 if flagged == {SUSPECT} else 1)


if __name__ == "__main__":
    main()
