"""sensor/sources/feed.py: identity facts from logs bind as the wire's do."""

from __future__ import annotations

import pytest

from sensor.catalog.index import Catalog, default_signature_dir
from sensor.config import Settings
from sensor.pipeline import Pipeline
from sensor.sources.feed import feed_log_records
from sensor.sources.logs import IdentityEvent

NS = 1_000_000_000


def _pipe() -> Pipeline:
    return Pipeline(Settings(), Catalog.load([default_signature_dir()]))


@pytest.mark.parametrize(("principal", "user", "host"), [
    ("alice", "alice@CORP.EXAMPLE", None),
    ("PC1$", None, "pc1"),  # machine account: the device, not a user
    ("host/pc2.corp.example", None, "pc2"),
])
def test_kerberos_principal_binds_user_or_device(principal: str, user: str | None,
                                                 host: str | None) -> None:
    pipe = _pipe()
    feed_log_records(pipe, [IdentityEvent("kerberos", 10 * NS, "10.0.0.5", None, None,
                                          principal, "CORP.EXAMPLE", 1)])
    a = pipe.identity.lookup("10.0.0.5", 11 * NS)
    assert a is not None
    assert (a.user, a.hostname) == (user, host)


def test_anonymous_principal_binds_nobody() -> None:
    pipe = _pipe()
    feed_log_records(pipe, [IdentityEvent("kerberos", 10 * NS, "10.0.0.6", None, None,
                                          "WELLKNOWN/ANONYMOUS", "CORP.EXAMPLE", 1)])
    assert pipe.identity.lookup("10.0.0.6", 11 * NS) is None


def test_dhcp_event_binds_mac_and_host_name() -> None:
    pipe = _pipe()
    feed_log_records(pipe, [IdentityEvent("dhcp", 10 * NS, "10.0.0.7", "aa:bb:cc:00:00:07",
                                          "laptop7", None, None, 2)])
    a = pipe.identity.lookup("10.0.0.7", 11 * NS)
    assert a is not None
    assert (a.mac, a.hostname, a.user) == ("aa:bb:cc:00:00:07", "laptop7", None)
