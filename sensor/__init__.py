"""shadowai-sensor: find shadow AI on the wire."""

__version__ = "0.1.0"
