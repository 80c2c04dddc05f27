"""Local sinks: a file (one record per line, rotated by size and/or age) and stdout.

Rotation renames ``findings.jsonl`` to ``findings.jsonl.1`` (shifting older ones up to
``keep``) when the file would pass ``max_bytes`` or is older than ``rotate_s``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import IO

from sensor.errors import InputError


class RotatingFileSink:
    def __init__(self, path: str | Path, max_bytes: int = 0, rotate_s: int = 0,
                 keep: int = 5, truncate: bool = False) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.rotate_s = rotate_s
        self.keep = max(keep, 1)
        self.rotations = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh: IO[bytes] = open(  # noqa: SIM115
                self.path, "wb" if truncate else "ab", buffering=1 << 16)
        except OSError as e:
            raise InputError(f"cannot open output file {self.path}: {e.strerror}") from None
        self._size = self._fh.tell()
        self._opened = time.time()

    def write(self, line: bytes) -> None:
        n = len(line) + 1
        if self._size and ((self.max_bytes and self._size + n > self.max_bytes)
                           or (self.rotate_s and time.time() - self._opened >= self.rotate_s)):
            self._rotate()
        self._fh.write(line + b"\n")  # one call: this runs per observation with --observations
        self._size += n

    def _rotate(self) -> None:
        self._fh.close()
        for i in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{i + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._fh = open(self.path, "ab", buffering=1 << 16)  # noqa: SIM115
        self._size = 0
        self._opened = time.time()
        self.rotations += 1

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


class StdoutSink:
    def __init__(self) -> None:
        self._out = sys.stdout.buffer

    def write(self, line: bytes) -> None:
        self._out.write(line + b"\n")

    def flush(self) -> None:
        self._out.flush()

    def close(self) -> None:
        self._out.flush()
