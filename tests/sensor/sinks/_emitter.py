"""Child process for the kill -9 test: ``emit N URL SPOOL`` writes the index of every
finding whose emit() returned, then idles until killed; ``replay URL SPOOL`` opens the
same spool, emits nothing, delivers the backlog and prints its stats as JSON."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

from sensor.sinks.sinkset import open_sinks
from tests.sensor.formats._samples import sample


def main(argv: list[str]) -> None:
    if argv[0] == "emit":
        n, url, spool = int(argv[1]), argv[2], Path(argv[3])
        sinks = open_sinks([url], "native", spool)
        for i in range(n):
            f = sample(i)
            f["id"] = f"x{i:06d}"
            sinks.emit(f)
            sys.stdout.write(f"{i}\n")
            sys.stdout.flush()
        time.sleep(3600)
    else:
        url, spool = argv[1], Path(argv[2])
        sinks = open_sinks([url], "native", spool)
        ok = sinks.close(timeout=30)
        st = next(iter(sinks.stats().values()))
        print(json.dumps({"ok": ok, **dataclasses.asdict(st)}))


if __name__ == "__main__":
    main(sys.argv[1:])
