#!/usr/bin/env python3
"""Record the exact inputs the DNS/TLS/HTTP decoders get while hunting a capture.

    python bench/dump_decoder_inputs.py CAPTURE.pcap OUT.msgpack [--max N]

Runs ``shadowai hunt CAPTURE -q --no-db -o /dev/null`` with the decoder entry
points wrapped, and writes a msgpack dict of lists of bytes (at most ``--max``
per key): ``dns`` (``parse_dns``), ``tls_stream`` (``client_hello_from_stream``),
``client_hello`` (``parse_client_hello``'s, plus the handshake message of each
ClientHello decoded from TCP), ``http_request_head`` and
``http_response_head``. ``bench/decoders_bench.py OUT.msgpack`` times them.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import msgpack

import sensor.decoders.dns as dns
import sensor.decoders.http as http
import sensor.decoders.tls as tls
from sensor.cli import main as cli_main


def _handshake(stream: bytes) -> bytes:
    """The ClientHello handshake message at the start of a TLS record stream."""
    hs = b""
    p = 0
    while p + 5 <= len(stream):
        n = int.from_bytes(stream[p + 3 : p + 5], "big")
        hs += stream[p + 5 : p + 5 + n]
        p += 5 + n
        if len(hs) >= 4 and len(hs) >= 4 + int.from_bytes(hs[1:4], "big"):
            break
    return hs[: 4 + int.from_bytes(hs[1:4], "big")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("capture")
    ap.add_argument("out")
    ap.add_argument("--max", type=int, default=40000, help="inputs kept per decoder")
    args = ap.parse_args()
    rec: dict[str, list[bytes]] = defaultdict(list)

    def spy(mod: ModuleType, name: str, key: str) -> None:
        f: Callable[..., Any] = getattr(mod, name)

        def wrapped(data: bytes, *a: Any, **k: Any) -> Any:
            if len(rec[key]) < args.max:
                rec[key].append(bytes(data))
            return f(data, *a, **k)

        setattr(mod, name, wrapped)

    spy(dns, "parse_dns", "dns")
    spy(tls, "parse_client_hello", "client_hello")  # QUIC's CRYPTO data
    spy(tls, "client_hello_from_stream", "tls_stream")
    stream_fn = tls.client_hello_from_stream

    def stream_and_hello(data: bytes) -> Any:
        out = stream_fn(data)  # a hello decoded from TCP is a parse_client_hello input too
        if len(rec["client_hello"]) < args.max:
            rec["client_hello"].append(_handshake(data))
        return out

    tls.client_hello_from_stream = stream_and_hello
    spy(http, "parse_request_head", "http_request_head")
    spy(http, "parse_response_head", "http_response_head")
    sys.argv = ["shadowai", "hunt", args.capture, "-q", "--no-db", "-o", "/dev/null"]
    with contextlib.suppress(SystemExit):  # click exits when the command is done
        cli_main()
    for key, items in rec.items():
        print(key, len(items))
    with open(args.out, "wb") as f:
        msgpack.pack(dict(rec), f)


if __name__ == "__main__":
    main()
