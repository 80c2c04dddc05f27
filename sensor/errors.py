"""The documented error types.

Decoders raise only :class:`DecodeError` (or its subclass :class:`NeedMoreData`
when the input is a valid prefix that more stream bytes could complete).
Sources raise :class:`InputError` for inputs they cannot open at all; damage
found part-way through a capture is *reported* (see ``sources.batch.Damage``),
not raised, so findings made before it are kept.
"""


class DecodeError(ValueError):
    """Bytes that do not decode as the expected protocol message."""


class NeedMoreData(DecodeError):
    """A valid prefix: the message continues in bytes not seen yet."""


class InputError(Exception):
    """An input (file, config, signature) that cannot be used at all."""
