"""Exceptions raised by the wRPC runtime."""

from __future__ import annotations


class WrpcError(Exception):
    """Base class of every wRPC error."""


class EncodeError(WrpcError, ValueError):
    """A Python value does not fit its WIT type."""


class DecodeError(WrpcError, ValueError):
    """Bytes that are not a valid encoding of the expected WIT type."""


class LimitExceeded(DecodeError):
    """A length, count or buffer size above the configured limit."""


class TransportError(WrpcError):
    """The connection or message exchange failed."""


class ProtocolError(TransportError):
    """The peer broke the framing or message protocol (bad version byte, unknown path, ...)."""


class IncompleteResults(TransportError):
    """The peer ended the result stream before a complete result value (see spec §4)."""


class UnknownFunction(ProtocolError):
    """The server has no handler for the requested instance and function."""


class NoResponders(TransportError):
    """NATS reported 503: nobody serves the invocation subject."""


class DeadlineExceeded(TransportError, TimeoutError):
    """The invocation did not complete before its deadline."""
