"""Reading the YAML data files beside the catalog (fingerprints, key formats, server
signatures) with one kind of error: a single line naming the file (and line)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sensor.errors import InputError

# libyaml's safe loader parses these files about 7x faster; same documents, same marks
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read: {getattr(e, 'strerror', None) or e}") from e
    try:
        return yaml.load(text, Loader=_LOADER)  # a safe loader (libyaml when built)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise InputError(f"{path}{where}: not valid YAML") from e
