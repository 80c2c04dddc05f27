"""Everything a run needs, built once from the config file and the command line.

``hunt`` and ``watch`` share this: the catalog and data files, the policy, the
identity store, the detectors and the output settings. Nothing here touches
packets; :func:`make_pipeline` hands the pieces to :class:`Pipeline` explicitly.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sensor.catalog.index import Catalog, default_signature_dir
from sensor.config import Settings, load_settings, load_tables
from sensor.detect.credentials import from_toml as credentials_from_toml
from sensor.detect.credentials import http_detectors
from sensor.enrich.fingerprints import ClientFingerprints, EncryptedDns
from sensor.errors import InputError
from sensor.findings import ServiceRef
from sensor.flows import FlowRecord
from sensor.identity.config import IdentitySettings
from sensor.identity.config import from_toml as identity_from_toml
from sensor.identity.pseudonymize import Pseudonymizer
from sensor.identity.readers import FORMATS, load_identity
from sensor.identity.store import IdentityStore
from sensor.pipeline import Pipeline
from sensor.policy import Policy
from sensor.records import Observation
from sensor.sinks.sinkset import SinksSettings
from sensor.sinks.sinkset import from_toml as sinks_from_toml
from sensor.volume.detector import VolumeDetector, VolumeSettings
from sensor.volume.detector import from_toml as volume_from_toml


@dataclass(slots=True)
class RunContext:
    settings: Settings
    catalog: Catalog
    fingerprints: ClientFingerprints
    encrypted_dns: EncryptedDns
    policy: Policy
    identity: IdentityStore
    identity_settings: IdentitySettings
    pseudonymizer: Pseudonymizer | None
    sinks: SinksSettings
    volume: VolumeSettings
    tables: dict[str, Any] = field(default_factory=dict)
    extra_detectors: list[object] = field(default_factory=list)

    def versions(self) -> dict[str, Any]:
        from sensor import __version__

        v: dict[str, Any] = {"sensor": __version__,
                             "signatures": getattr(self.catalog, "digest", None)
                             or getattr(self.catalog, "version", None)}
        if self.volume.enabled:
            import json

            from sensor.volume.model import MANIFEST_FILE, default_model_dir

            mdir = self.volume.model_dir or default_model_dir()
            try:
                m = json.loads((mdir / MANIFEST_FILE).read_text(encoding="utf-8"))
                v["volume_model"] = f"{m.get('name')} sha256:{str(m.get('model_sha256'))[:16]}"
            except (OSError, ValueError):
                v["volume_model"] = None
        return v


def fingerprint_dir(sig_dirs: Sequence[Path]) -> Path:
    for d in sig_dirs:
        if (d / "fingerprints").is_dir():
            return d / "fingerprints"
    return default_signature_dir() / "fingerprints"


def build_context(config: Path | None, sig_dirs: Sequence[Path] = (),
                  identity_files: Sequence[str] = (), pseudonymize: bool = False,
                  **overrides: Any) -> RunContext:
    """Load and check everything; InputError (one line) on the first problem."""
    settings = load_settings(config, **overrides)
    tables = load_tables(config)
    dirs = tuple(sig_dirs) or settings.signature_dirs
    catalog = Catalog.load(list(dirs) or [default_signature_dir()])
    fp_dir = fingerprint_dir(dirs)
    policy = Policy.from_toml(tables.get("policy", {}))
    unknown = policy.unknown_services(s.id for s in catalog.services)
    if unknown:
        raise InputError(f"{config}: [policy] names unknown service ids: {', '.join(unknown)}")
    id_settings = identity_from_toml(tables.get("identity", {}))
    store, _loads = id_settings.build_store()
    for spec in identity_files:
        head, sep, rest = spec.partition(":")
        fmt, path = (head, rest) if sep and head in FORMATS else (None, spec)
        store.add_all(load_identity(path, fmt))
    return RunContext(
        settings=settings, catalog=catalog,
        fingerprints=ClientFingerprints.load(fp_dir), encrypted_dns=EncryptedDns.load(fp_dir),
        policy=policy, identity=store, identity_settings=id_settings,
        pseudonymizer=id_settings.pseudonymizer(requested=pseudonymize),
        sinks=sinks_from_toml(tables.get("sinks", {})),
        volume=volume_from_toml(tables.get("model", {})),
        tables=tables,
    )


def make_detectors(ctx: RunContext) -> list[object]:
    creds = credentials_from_toml(ctx.tables.get("credentials", {}))
    dets: list[object] = list(http_detectors(creds, ctx.policy.is_internal))
    if ctx.volume.enabled:
        dets.append(VolumeDetector.from_settings(ctx.volume))
    return dets + ctx.extra_detectors


def make_pipeline(ctx: RunContext,
                  on_observation: Callable[[Observation], None] | None = None) -> Pipeline:
    return Pipeline(ctx.settings, ctx.catalog, on_observation, detectors=make_detectors(ctx),
                    fingerprints=ctx.fingerprints, encrypted_dns=ctx.encrypted_dns,
                    policy=ctx.policy, identity=ctx.identity,
                    identity_wire=ctx.identity_settings.wire, pseudonymizer=ctx.pseudonymizer)


# Collect the young generation every 50 k container allocations instead of 700: the hot
# path makes short-lived, acyclic records that reference counting frees anyway.
YOUNG_GC_THRESHOLD = 50_000


@contextlib.contextmanager
def tuned_gc(freeze: bool = True) -> Iterator[None]:
    """The cyclic collector set for a packet run, restored afterwards. ``freeze`` also
    moves what start-up built (catalog, tables, code) out of the collector's sight for the
    run: it lives until the end, and full collections would rescan it every time."""
    old = gc.get_threshold()
    if freeze:
        gc.freeze()
    gc.set_threshold(YOUNG_GC_THRESHOLD, old[1], old[2])
    try:
        yield
    finally:
        gc.set_threshold(*old)
        if freeze:
            gc.unfreeze()


class FlowWriter:
    """``hunt --flows FILE``: every attributed flow, the training input of ``model train``."""

    def __init__(self, write: Callable[[dict[str, Any]], None]) -> None:
        self._write = write

    def on_flow(self, rec: FlowRecord, service: ServiceRef, sanctioned: bool) -> None:
        from sensor.volume.features import flow_to_dict

        self._write(flow_to_dict(rec.client_ip, service.id, rec.first_ns, rec.last_ns,
                                 rec.packets_client_to_server, rec.packets_server_to_client,
                                 rec.bytes_client_to_server, rec.bytes_server_to_client,
                                 sanctioned))

    def findings(self) -> list[object]:
        return []
