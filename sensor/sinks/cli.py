"""Click options for ``hunt``/``watch``: ``--sink URL`` (repeatable), ``--format``,
``--spool-dir``; and the ``--output FILE`` shorthand for a file sink."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

import click

from sensor.formats import FORMATS

F = TypeVar("F", bound=Callable[..., Any])


def sink_options(fn: F) -> F:
    """Decorate a click command with --sink, --format and --spool-dir."""
    fn = click.option("--spool-dir", type=click.Path(file_okay=False), default=None,
                      help="Where network sinks keep undelivered findings "
                           "(default: [sinks] spool_dir, /var/lib/shadowai/spool).")(fn)
    fn = click.option("--format", "sink_format", type=click.Choice(FORMATS), default=None,
                      help="Default output format of every sink (native, ecs, ocsf, cef).")(fn)
    fn = click.option("--sink", "sinks", multiple=True, metavar="URL",
                      help="Send findings to URL (repeatable): file:///path, -, "
                           "syslog+udp|tcp|tls://host:port, splunk+https://host:8088?"
                           "token_env=VAR, elastic+https://host:9200/<data stream>, "
                           "kafka://host:9092/topic, https://host/path; ?format= per sink. "
                           "See docs/sinks.md.")(fn)
    return fn


def output_url(path: str, truncate: bool = True) -> str:
    """``--output FILE`` as a sink URL (``-`` is stdout); a one-shot hunt starts the file
    empty, as the JSON Lines writer always did."""
    if path == "-":
        return "-"
    url = "file://" + quote(os.path.abspath(path), safe="/")
    return url + "?truncate=1" if truncate else url
