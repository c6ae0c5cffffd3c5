"""Compression frames of the native protocol (LZ4, ZSTD, NONE), CityHash128 v1.0.2 checksums verified.

Frame = 16-byte checksum | UInt8 method | UInt32 compressed size (incl. the 9-byte header) |
UInt32 uncompressed size | payload (specs/proton.md §4.5). ``clickhouse-cityhash`` is the hash
clickhouse-driver and proton-driver use (ClickHouse's CityHash v1.0.2, which differs from later
CityHash versions); ``lz4`` and ``zstandard`` decode the payloads.
"""

from __future__ import annotations

import struct

import lz4.block
import zstandard
from clickhouse_cityhash.cityhash import CityHash128

from adapter.native import (
    CANNOT_DECOMPRESS,
    CHECKSUM_DOESNT_MATCH,
    TOO_LARGE_SIZE_COMPRESSED,
    UNKNOWN_COMPRESSION_METHOD,
    NeedMore,
    ProtocolError,
)

METHOD_NONE, METHOD_LZ4, METHOD_ZSTD = 0x02, 0x82, 0x90
HEADER = 25  # checksum 16 + method 1 + two sizes 8
_MASK64 = (1 << 64) - 1


def checksum(data: bytes | memoryview) -> bytes:
    """CityHash128 of ``data`` as written on the wire (high 64 bits first, each little endian)."""
    h = CityHash128(bytes(data))
    return struct.pack("<QQ", h >> 64, h & _MASK64)


def frame_size(buf: bytes | bytearray | memoryview, pos: int, max_frame: int) -> int:
    """Total bytes of the frame starting at ``pos`` (checked against ``max_frame`` before reading it)."""
    if pos + HEADER > len(buf):
        raise NeedMore(pos + HEADER - len(buf))
    method, compressed, uncompressed = struct.unpack_from("<BII", buf, pos + 16)
    if method not in (METHOD_NONE, METHOD_LZ4, METHOD_ZSTD):
        raise ProtocolError(UNKNOWN_COMPRESSION_METHOD, f"unknown compression method {method:#04x}")
    if compressed < 9 or compressed > max_frame or uncompressed > max_frame:
        raise ProtocolError(
            TOO_LARGE_SIZE_COMPRESSED,
            f"compressed frame declares {compressed} bytes compressed / {uncompressed} uncompressed "
            f"(limit {max_frame})",
        )
    return 16 + compressed


def decompress_frame(frame: bytes | memoryview) -> bytes:
    """Verify the checksum and decompress one whole frame."""
    body = memoryview(frame)[16:]
    if checksum(body) != bytes(frame[:16]):
        raise ProtocolError(CHECKSUM_DOESNT_MATCH, "checksum of a compressed frame does not match (corrupt data)")
    method, _, uncompressed = struct.unpack_from("<BII", body, 0)
    payload = bytes(body[9:])
    try:
        if method == METHOD_LZ4:
            data = lz4.block.decompress(payload, uncompressed_size=uncompressed)
        elif method == METHOD_ZSTD:
            data = zstandard.ZstdDecompressor().decompress(payload, max_output_size=uncompressed)
        else:
            data = payload
    except (lz4.block.LZ4BlockError, zstandard.ZstdError) as e:
        raise ProtocolError(CANNOT_DECOMPRESS, f"cannot decompress a frame: {e}") from e
    if len(data) != uncompressed:
        raise ProtocolError(CANNOT_DECOMPRESS, f"frame decompressed to {len(data)} bytes, header said {uncompressed}")
    return data


def compress_frame(data: bytes, method: int = METHOD_LZ4) -> bytes:
    """One frame holding ``data`` (we always answer with LZ4: proton-driver cannot read NONE frames)."""
    if method == METHOD_LZ4:
        payload = lz4.block.compress(data, store_size=False)
    elif method == METHOD_ZSTD:
        payload = zstandard.ZstdCompressor().compress(data)
    else:
        payload = data
    body = struct.pack("<BII", method, len(payload) + 9, len(data)) + payload
    return checksum(body) + body
