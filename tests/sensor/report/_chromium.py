"""Open a local HTML file in headless Chromium over the DevTools pipe (no network, no ports).

Returns the rendered DOM, every network request the page made, and every console
message / exception / log entry at warning level or above.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-extensions", "--no-first-run", "--disable-sync",
         "--disable-component-update", "--disable-default-apps", "--remote-debugging-pipe")


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


@dataclass
class PageResult:
    dom: str = ""
    requests: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)


class _Pipe:
    def __init__(self, proc: subprocess.Popen[bytes], wfd: int, rfd: int) -> None:
        self.proc, self.wfd, self.rfd = proc, wfd, rfd
        self.buf = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None) -> int:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.wfd, json.dumps(msg).encode() + b"\0")
        return self.next_id

    def read(self, deadline: float) -> dict[str, Any] | None:
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.rfd], [], [], left)
            if not r:
                return None
            chunk = os.read(self.rfd, 1 << 20)
            if not chunk:
                return None
            self.buf += chunk
        raw, _, self.buf = self.buf.partition(b"\0")
        msg: dict[str, Any] = json.loads(raw)
        return msg

    def call(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None, timeout: float = 20.0) -> dict[str, Any]:
        mid = self.send(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            msg = self.read(deadline)
            if msg is None:
                raise TimeoutError(method)
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                result: dict[str, Any] = msg.get("result", {})
                return result
            if "method" in msg:
                self.events.append(msg)


def _child_fds(r: int, w: int) -> None:
    # dup first so that r or w already being 3 or 4 cannot be clobbered; dup2 clears CLOEXEC
    r2, w2 = os.dup(r), os.dup(w)
    os.dup2(r2, 3)
    os.dup2(w2, 4)


def open_page(path: Path, settle_s: float = 1.0) -> PageResult:
    """Load ``path`` and collect requests and console errors until the page settles."""
    exe = chromium_binary()
    assert exe is not None
    to_chrome_r, to_chrome_w = os.pipe()
    from_chrome_r, from_chrome_w = os.pipe()
    profile = tempfile.mkdtemp(prefix="shadowai-chromium-")
    # Chromium reads commands on fd 3 and writes replies on fd 4
    proc = subprocess.Popen(
        [exe, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        close_fds=False, preexec_fn=lambda: _child_fds(to_chrome_r, from_chrome_w))
    os.close(to_chrome_r)
    os.close(from_chrome_w)
    pipe = _Pipe(proc, to_chrome_w, from_chrome_r)
    res = PageResult()
    try:
        target = pipe.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        sess = pipe.call("Target.attachToTarget", {"targetId": target,
                                                   "flatten": True})["sessionId"]
        for domain in ("Network", "Runtime", "Log", "Page"):
            pipe.call(f"{domain}.enable", session=sess)
        pipe.events.clear()
        pipe.call("Page.navigate", {"url": path.resolve().as_uri()}, session=sess)
        deadline = time.monotonic() + 20.0
        # the load event may already have arrived while navigate's reply was awaited
        loaded_at = time.monotonic() if any(
            e["method"] == "Page.loadEventFired" for e in pipe.events) else None
        while time.monotonic() < deadline:
            if loaded_at is not None and time.monotonic() - loaded_at > settle_s:
                break
            msg = pipe.read(min(deadline, time.monotonic() + 0.2))
            if msg is not None and "method" in msg:
                pipe.events.append(msg)
                if msg["method"] == "Page.loadEventFired":
                    loaded_at = time.monotonic()
        for ev in pipe.events:
            m, p = ev["method"], ev.get("params", {})
            if m == "Network.requestWillBeSent":
                res.requests.append(p["request"]["url"])
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning",
                                                                        "assert"):
                res.console.append(json.dumps(p.get("args")))
            elif m == "Runtime.exceptionThrown":
                res.console.append(json.dumps(p.get("exceptionDetails")))
            elif m == "Log.entryAdded" and p["entry"].get("level") in ("error", "warning"):
                res.console.append(p["entry"].get("text", ""))
        res.dom = pipe.call("Runtime.evaluate", {
            "expression": "document.documentElement.outerHTML", "returnByValue": True},
            session=sess)["result"]["value"]
        with contextlib.suppress(TimeoutError, RuntimeError):
            pipe.call("Browser.close", timeout=5.0)
    finally:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        os.close(to_chrome_w)
        os.close(from_chrome_r)
        shutil.rmtree(profile, ignore_errors=True)
    return res
