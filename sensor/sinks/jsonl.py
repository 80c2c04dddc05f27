"""JSON Lines of plain dicts (observations, flows) to a file or stdout, through the same
file and stdout sinks the findings use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sensor.formats.common import dumps
from sensor.sinks.file import RotatingFileSink, StdoutSink


class JsonlSink:
    """One JSON object per line; ``path`` None or "-" means stdout; a file starts empty."""

    def __init__(self, path: str | Path | None) -> None:
        self._out: RotatingFileSink | StdoutSink = (
            StdoutSink() if path in (None, "-") else RotatingFileSink(str(path), truncate=True))
        self._write = self._out.write

    def write(self, obj: dict[str, Any]) -> None:
        self._write(dumps(obj))

    def close(self) -> None:
        self._out.close()

    def __enter__(self) -> JsonlSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
