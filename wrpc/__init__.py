"""wRPC for Python: the WIT value codec and the TCP and NATS transports (spec: docs/wrpc.md).

Quick use::

    import wrpc
    data = wrpc.encode("list<tuple<u8, string>>", [(1, "a")])
    assert wrpc.decode("list<tuple<u8, string>>", data) == [(1, "a")]
    wrpc.decode("result<_, string>", b"\\x01\\x04boom")   # Err('boom')
"""

from wrpc import wit
from wrpc.codec import DEFAULT_LIMITS, IncrementalDecoder, Limits, decode, encode, encode_async
from wrpc.errors import (
    DeadlineExceeded,
    DecodeError,
    EncodeError,
    IncompleteResults,
    LimitExceeded,
    NoResponders,
    ProtocolError,
    TransportError,
    UnknownFunction,
    WrpcError,
)
from wrpc.types import Type, WitTypeError, parse_type
from wrpc.values import Err, Future, Ok, Some, Stream, Variant

__all__ = [
    "DEFAULT_LIMITS",
    "DeadlineExceeded",
    "DecodeError",
    "EncodeError",
    "Err",
    "Future",
    "IncompleteResults",
    "IncrementalDecoder",
    "LimitExceeded",
    "Limits",
    "NoResponders",
    "Ok",
    "ProtocolError",
    "Some",
    "Stream",
    "TransportError",
    "Type",
    "UnknownFunction",
    "Variant",
    "WitTypeError",
    "WrpcError",
    "decode",
    "encode",
    "encode_async",
    "parse_type",
    "wit",
]
