"""JSON Lines output to a file or stdout (observations, flows; findings go through sinks)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, Any

from sensor.formats.common import dumps


class JsonlSink:
    """One JSON object per line; ``path`` None or "-" means stdout."""

    def __init__(self, path: str | Path | None) -> None:
        self._own = path not in (None, "-")
        self._fh: IO[bytes] = (open(path, "wb", buffering=1 << 20)  # noqa: SIM115
                               if self._own and path is not None else sys.stdout.buffer)
        self.written = 0

    def write(self, obj: dict[str, Any]) -> None:
        self._fh.write(dumps(obj) + b"\n")
        self.written += 1

    def close(self) -> None:
        if self._own:
            self._fh.close()
        else:
            self._fh.flush()

    def __enter__(self) -> JsonlSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
