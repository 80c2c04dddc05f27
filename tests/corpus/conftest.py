"""Shared fixtures of the corpus acceptance tests (tests/corpus/).

Every capture is hunted in-process, at most once per test session: the
``hunt`` fixture caches the result, so the tshark diff, the Zeek ssl.log
comparison and the damaged-capture sweep all read the same run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sensor.catalog.index import Catalog, default_signature_dir
from sensor.config import Settings
from sensor.errors import InputError
from sensor.observations import observation_dict
from sensor.pipeline import Pipeline
from sensor.sources.batch import Damage
from sensor.sources.capture import open_capture

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO.parent / "shared" / "corpus"
TSHARK_DIR = CORPUS / "_generated" / "tshark-4.0.17"
DISAGREEMENTS = REPO / "tests" / "data" / "corpus_disagreements.yaml"


@dataclass(slots=True)
class HuntResult:
    """What one in-process hunt of one capture produced."""

    path: str  # relative to the corpus root
    observations: list[dict[str, Any]] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    damage: Damage | None = None
    input_error: str | None = None  # the documented InputError at open

    def of_kind(self, kind: str) -> Iterator[dict[str, Any]]:
        return (o for o in self.observations if o["kind"] == kind)


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not (CORPUS / "MANIFEST.json").is_file():
        pytest.skip(f"shared corpus not present at {CORPUS}")
    return CORPUS


@pytest.fixture(scope="session")
def manifest(corpus: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((corpus / "MANIFEST.json").read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="session")
def captures(manifest: dict[str, Any]) -> list[str]:
    """Every capture of the corpus, as a path relative to the corpus root."""
    return sorted(r["file"] for r in manifest["files"] if r["role"] == "capture")


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return Catalog.load([default_signature_dir()])


def run_hunt(path: Path, rel: str, catalog: Catalog) -> HuntResult:
    """Hunt one capture as ``shadowai hunt`` does, keeping observations and findings.

    Anything but the documented InputError at open propagates: that is a bug.
    """
    res = HuntResult(rel)
    pipe = Pipeline(Settings(), catalog, lambda o: res.observations.append(observation_dict(o)))
    try:
        reader = open_capture(path)
    except InputError as e:
        res.input_error = str(e)
        return res
    with reader:
        for batch in reader.batches():
            pipe.feed(batch)
        res.damage = reader.damage
    res.findings = [f.to_dict() for f in pipe.finish()]
    return res


@pytest.fixture(scope="session")
def hunt(corpus: Path, catalog: Catalog) -> Callable[[str], HuntResult]:
    """``hunt(rel_path)``: the (cached) hunt of one corpus capture."""
    cache: dict[str, HuntResult] = {}

    def get(rel: str) -> HuntResult:
        r = cache.get(rel)
        if r is None:
            r = cache[rel] = run_hunt(corpus / rel, rel, catalog)
        return r

    return get
