"""Reading a capture back in tests: every record as plain values, and the damage."""

from __future__ import annotations

from pathlib import Path

from sensor.sources.batch import Damage
from sensor.sources.capture import open_capture

Row = tuple[int, int, int, int, bytes]  # ts_ns, caplen, origlen, linktype, packet bytes


def read_records(path: Path, batch: int = 65536,
                 fmt: str | None = None) -> tuple[list[Row], Damage | None]:
    """All records in file order (``batch`` packets per batch); ``fmt``: the format the
    reader must have taken the file for."""
    with open_capture(path) as r:
        if fmt is not None:
            assert r.format == fmt
        rows = [
            (int(b.ts_ns[i]), int(b.caplens[i]), int(b.origlens[i]), int(b.linktypes[i]),
             b.packet(i))
            for b in r.batches(batch)
            for i in range(len(b))
        ]
        return rows, r.damage
