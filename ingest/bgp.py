"""BGP-4 message decoding for the BMP collector: UPDATE (RFC 4271, 4760, 6793, 7911, 1997, 8092) and OPEN.

Written here rather than taken from a library: the Python BGP libraries on PyPI (exabgp, scapy's
contrib, yabgp) decode into object graphs one attribute at a time and pull in large dependencies; the
collector needs flat columns, a cache of identical attribute blocks, and errors that name the bad field.

Every function raises :class:`BgpError` (a ``ValueError``) on malformed input and nothing else; callers
count the drop. Decoding is per message, but path attributes are memoised by their bytes: routers send
the same attribute block for many UPDATEs (one per prefix group), so most messages skip that work.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

AFI_IPV4, AFI_IPV6, SAFI_UNICAST = 1, 2, 1
ORIGINS = ("igp", "egp", "incomplete")
AS_TRANS = 23456
_MARKER = b"\xff" * 16
MSG_OPEN, MSG_UPDATE, MSG_NOTIFICATION, MSG_KEEPALIVE = 1, 2, 3, 4

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


class BgpError(ValueError):
    """A BGP message does not parse; the message says which part and why."""


@dataclass(frozen=True, slots=True)
class Attributes:
    """The path attributes of one UPDATE, flattened for the bgp_updates columns."""

    origin: str | None = None
    as_path: tuple[int, ...] = ()
    next_hop: str | None = None
    med: int | None = None
    local_pref: int | None = None
    communities: tuple[str, ...] = ()
    large_communities: tuple[str, ...] = ()


@dataclass(slots=True)
class Update:
    """One decoded UPDATE: announced and withdrawn prefixes as (prefix text, path id) pairs."""

    attrs: Attributes
    announced: list[tuple[str, int]] = field(default_factory=list)
    withdrawn: list[tuple[str, int]] = field(default_factory=list)
    # next hop of the MP_REACH NLRI (IPv6); the NEXT_HOP attribute applies to IPv4 NLRI
    mp_next_hop: str | None = None
    mp_count: int = 0  # the first ``mp_count`` announced prefixes came from MP_REACH_NLRI


@dataclass(frozen=True, slots=True)
class Open:
    """What the collector needs from an OPEN: AS, BGP id and the capabilities."""

    version: int
    asn: int  # the 4-byte AS from the capability when present, else My Autonomous System
    hold_time: int
    bgp_id: str
    four_byte_as: bool
    # (afi, safi) → ADD-PATH send/receive bits (1 receive, 2 send, 3 both), RFC 7911 §4
    add_path: dict[tuple[int, int], int]
    families: tuple[tuple[int, int], ...]

    def summary(self) -> str:
        """A short text for the peer-up event's reason column."""
        fams = ",".join(f"{_FAMILY_NAMES.get(f, f'{f[0]}/{f[1]}')}" for f in self.families)
        parts = [f"as={self.asn}", f"id={self.bgp_id}", f"hold={self.hold_time}", f"families={fams}"]
        if self.four_byte_as:
            parts.append("as4")
        if self.add_path:
            parts.append("addpath=" + ",".join(f"{_FAMILY_NAMES.get(k, k)}:{v}" for k, v in self.add_path.items()))
        return " ".join(parts)


_FAMILY_NAMES = {(1, 1): "ipv4-unicast", (2, 1): "ipv6-unicast", (1, 2): "ipv4-multicast", (2, 2): "ipv6-multicast"}


def split_header(data: bytes | memoryview, where: str = "BGP message") -> tuple[int, int]:
    """Check the 19-byte BGP header at the start of ``data``: returns (type, total length)."""
    if len(data) < 19:
        raise BgpError(f"{where}: {len(data)} bytes, shorter than the 19-byte BGP header")
    if bytes(data[:16]) != _MARKER:
        raise BgpError(f"{where}: marker is not all ones")
    length = _U16.unpack_from(data, 16)[0]
    if length < 19 or length > len(data):
        raise BgpError(f"{where}: length field {length} outside 19..{len(data)}")
    return data[18], length


def ipv4_text(b: bytes | memoryview) -> str:
    return f"{b[0]}.{b[1]}.{b[2]}.{b[3]}"


def ipv6_text(b: bytes | memoryview) -> str:
    # RFC 5952 text without the ipaddress module's object overhead on the hot path
    words = struct.unpack("!8H", b)
    best_start, best_len, i = -1, 1, 0
    while i < 8:
        if words[i] == 0:
            j = i
            while j < 8 and words[j] == 0:
                j += 1
            if j - i > best_len:
                best_start, best_len = i, j - i
            i = j
        else:
            i += 1
    if best_start < 0:
        return ":".join(f"{w:x}" for w in words)
    head = ":".join(f"{w:x}" for w in words[:best_start])
    tail = ":".join(f"{w:x}" for w in words[best_start + best_len :])
    return f"{head}::{tail}"


def parse_open(data: bytes | memoryview) -> Open:
    """Decode a whole OPEN message (header included)."""
    mtype, length = split_header(data, "OPEN")
    if mtype != MSG_OPEN:
        raise BgpError(f"expected an OPEN (type 1), got type {mtype}")
    if length < 29:
        raise BgpError(f"OPEN of {length} bytes is shorter than 29")
    version, my_as, hold = data[19], _U16.unpack_from(data, 20)[0], _U16.unpack_from(data, 22)[0]
    bgp_id = ipv4_text(data[24:28])
    opt_len = data[28]
    pos, end = 29, 29 + opt_len
    if end > length:
        raise BgpError(f"OPEN optional parameters ({opt_len} bytes) run past the message")
    if opt_len == 255 and length > 30 and data[29] == 255:  # RFC 9072 extended optional parameters
        opt_len = _U16.unpack_from(data, 30)[0]
        pos, end = 32, 32 + opt_len
        if end > length:
            raise BgpError("OPEN extended optional parameters run past the message")
        plen_size = 2
    else:
        plen_size = 1
    asn, four, add_path, families = my_as, False, {}, []
    while pos < end:
        if pos + 1 + plen_size > end:
            raise BgpError("OPEN optional parameter header truncated")
        ptype = data[pos]
        plen = data[pos + 1] if plen_size == 1 else _U16.unpack_from(data, pos + 1)[0]
        pos += 1 + plen_size
        if pos + plen > end:
            raise BgpError("OPEN optional parameter runs past the parameters")
        if ptype == 2:  # capabilities
            asn, four = _capabilities(data[pos : pos + plen], asn, four, add_path, families)
        pos += plen
    return Open(version, asn, hold, bgp_id, four, add_path, tuple(families))


def _capabilities(
    caps: bytes | memoryview, asn: int, four: bool, add_path: dict, families: list
) -> tuple[int, bool]:
    pos = 0
    while pos < len(caps):
        if pos + 2 > len(caps):
            raise BgpError("capability header truncated")
        code, clen = caps[pos], caps[pos + 1]
        val = caps[pos + 2 : pos + 2 + clen]
        if len(val) != clen:
            raise BgpError(f"capability {code} truncated")
        if code == 1 and clen == 4:  # multiprotocol
            families.append((_U16.unpack_from(val, 0)[0], val[3]))
        elif code == 65 and clen == 4:  # 4-octet AS number
            asn, four = _U32.unpack_from(val, 0)[0], True
        elif code == 69:  # ADD-PATH: (afi u16, safi u8, send/receive u8)*
            if clen % 4:
                raise BgpError("ADD-PATH capability length is not a multiple of 4")
            for i in range(0, clen, 4):
                add_path[(_U16.unpack_from(val, i)[0], val[i + 2])] = val[i + 3]
        pos += 2 + clen
    return asn, four


def add_path_families(sent: Open, received: Open) -> frozenset[tuple[int, int]]:
    """Families whose UPDATEs from the peer carry path ids: we said receive and the peer said send."""
    return frozenset(
        fam for fam, bits in sent.add_path.items() if bits & 1 and received.add_path.get(fam, 0) & 2
    )


# prefix bytes (length byte + address bytes) → text, per family; bounded: cleared when full. Routers
# announce and withdraw the same prefixes over and over, so formatting each distinct one once pays.
_PREFIX_TEXT: dict[int, dict[bytes, str]] = {AFI_IPV4: {}, AFI_IPV6: {}}
_PREFIX_TEXT_MAX = 200_000


def _prefixes(data: bytes | memoryview, afi: int, add_path: bool, where: str) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    pos, n = 0, len(data)
    max_bits = 32 if afi == AFI_IPV4 else 128
    size = max_bits // 8
    texts = _PREFIX_TEXT[afi]
    while pos < n:
        path_id = 0
        if add_path:
            if pos + 4 > n:
                raise BgpError(f"{where}: path id truncated")
            path_id = _U32.unpack_from(data, pos)[0]
            pos += 4
        if pos >= n:
            raise BgpError(f"{where}: prefix length missing")
        bits = data[pos]
        if bits > max_bits:
            raise BgpError(f"{where}: prefix length {bits} exceeds {max_bits}")
        end = pos + 1 + (bits + 7) // 8
        if end > n:
            raise BgpError(f"{where}: prefix truncated")
        key = bytes(data[pos:end])
        text = texts.get(key)
        if text is None:
            full = key[1:] + b"\x00" * (size - len(key) + 1)
            text = f"{ipv4_text(full) if afi == AFI_IPV4 else ipv6_text(full)}/{bits}"
            if len(texts) >= _PREFIX_TEXT_MAX:
                texts.clear()
            texts[key] = text
        out.append((text, path_id))
        pos = end
    return out


def _as_path(data: bytes | memoryview, asn_size: int, where: str) -> tuple[int, ...]:
    out: list[int] = []
    pos = 0
    fmt = "!%dH" if asn_size == 2 else "!%dI"
    while pos < len(data):
        if pos + 2 > len(data):
            raise BgpError(f"{where}: segment header truncated")
        seg_type, count = data[pos], data[pos + 1]
        if seg_type not in (1, 2, 3, 4):
            raise BgpError(f"{where}: unknown segment type {seg_type}")
        end = pos + 2 + count * asn_size
        if end > len(data):
            raise BgpError(f"{where}: segment of {count} ASNs truncated")
        out.extend(struct.unpack_from(fmt % count, data, pos + 2))  # AS_SET members flattened in order
        pos = end
    return tuple(out)


def _merge_as4(as_path: tuple[int, ...], as4_path: tuple[int, ...]) -> tuple[int, ...]:
    """RFC 6793 §4.2.3: keep the leading ASNs of AS_PATH that AS4_PATH does not cover."""
    if not as4_path or len(as4_path) > len(as_path):
        return as_path
    return as_path[: len(as_path) - len(as4_path)] + as4_path


class UpdateDecoder:
    """Decodes UPDATE messages; remembers parsed attribute blocks (bounded) keyed by their bytes."""

    def __init__(self, cache_size: int = 4096) -> None:
        self._cache: dict[tuple[bytes, int, frozenset], tuple[Attributes, list, list, str | None]] = {}
        self._cache_size = cache_size

    def decode(self, msg: bytes | memoryview, asn_size: int = 4, add_path: frozenset = frozenset()) -> Update:
        """Decode one whole UPDATE (header included). ``asn_size`` is 2 for the legacy AS_PATH format."""
        mtype, length = split_header(msg, "UPDATE")
        if mtype != MSG_UPDATE:
            raise BgpError(f"expected an UPDATE (type 2), got type {mtype}")
        if length < 23:
            raise BgpError(f"UPDATE of {length} bytes is shorter than 23")
        wlen = _U16.unpack_from(msg, 19)[0]
        if 21 + wlen + 2 > length:
            raise BgpError(f"withdrawn routes length {wlen} runs past the message")
        withdrawn_raw = msg[21 : 21 + wlen]
        alen = _U16.unpack_from(msg, 21 + wlen)[0]
        astart = 23 + wlen
        if astart + alen > length:
            raise BgpError(f"path attributes length {alen} runs past the message")
        v4_addpath = (AFI_IPV4, SAFI_UNICAST) in add_path
        upd = Update(Attributes())
        if wlen:
            upd.withdrawn = _prefixes(withdrawn_raw, AFI_IPV4, v4_addpath, "withdrawn routes")
        if alen:
            key = (bytes(msg[astart : astart + alen]), asn_size, add_path)
            hit = self._cache.get(key)
            if hit is None:
                hit = self._attributes(key[0], asn_size, add_path)
                if len(self._cache) >= self._cache_size:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[key] = hit
            upd.attrs, mp_ann, mp_wd, upd.mp_next_hop = hit
            upd.mp_count = len(mp_ann)
            upd.announced.extend(mp_ann)
            upd.withdrawn.extend(mp_wd)
        nlri = msg[astart + alen : length]
        if len(nlri):
            upd.announced.extend(_prefixes(nlri, AFI_IPV4, v4_addpath, "NLRI"))
        return upd

    def _attributes(
        self, data: bytes, asn_size: int, add_path: frozenset
    ) -> tuple[Attributes, list, list, str | None]:
        origin = next_hop = med = local_pref = mp_nh = None
        as_path: tuple[int, ...] = ()
        as4: tuple[int, ...] = ()
        comms: tuple[str, ...] = ()
        large: tuple[str, ...] = ()
        mp_ann: list = []
        mp_wd: list = []
        pos, n = 0, len(data)
        while pos < n:
            if pos + 3 > n:
                raise BgpError("path attribute header truncated")
            flags, code = data[pos], data[pos + 1]
            if flags & 0x10:
                if pos + 4 > n:
                    raise BgpError("extended-length attribute header truncated")
                alen, pos = _U16.unpack_from(data, pos + 2)[0], pos + 4
            else:
                alen, pos = data[pos + 2], pos + 3
            val = data[pos : pos + alen]
            if len(val) != alen:
                raise BgpError(f"attribute {code} of {alen} bytes runs past the attributes")
            pos += alen
            if code == 1:
                if alen != 1 or val[0] > 2:
                    raise BgpError("ORIGIN must be one byte 0..2")
                origin = ORIGINS[val[0]]
            elif code == 2:
                as_path = _as_path(val, asn_size, "AS_PATH")
            elif code == 3:
                if alen != 4:
                    raise BgpError("NEXT_HOP must be 4 bytes")
                next_hop = ipv4_text(val)
            elif code == 4:
                med = _u32_attr(val, "MULTI_EXIT_DISC")
            elif code == 5:
                local_pref = _u32_attr(val, "LOCAL_PREF")
            elif code == 8:
                if alen % 4:
                    raise BgpError("COMMUNITIES length is not a multiple of 4")
                words = struct.unpack(f"!{alen // 2}H", val)
                comms = tuple(f"{words[i]}:{words[i + 1]}" for i in range(0, len(words), 2))
            elif code == 14:
                mp_nh, mp_ann = _mp_reach(val, add_path)
            elif code == 15:
                mp_wd = _mp_unreach(val, add_path)
            elif code == 17:
                as4 = _as_path(val, 4, "AS4_PATH")
            elif code == 32:
                if alen % 12:
                    raise BgpError("LARGE_COMMUNITY length is not a multiple of 12")
                w = struct.unpack(f"!{alen // 4}I", val)
                large = tuple(f"{w[i]}:{w[i + 1]}:{w[i + 2]}" for i in range(0, len(w), 3))
        if asn_size == 2 and as4:
            as_path = _merge_as4(as_path, as4)
        attrs = Attributes(origin, as_path, next_hop, med, local_pref, comms, large)
        return attrs, mp_ann, mp_wd, mp_nh


def _u32_attr(val: bytes, name: str) -> int:
    if len(val) != 4:
        raise BgpError(f"{name} must be 4 bytes")
    return _U32.unpack(val)[0]


def _family(val: bytes, name: str) -> tuple[int, int]:
    if len(val) < 3:
        raise BgpError(f"{name} shorter than AFI+SAFI")
    return _U16.unpack_from(val, 0)[0], val[2]


def _mp_reach(val: bytes, add_path: frozenset) -> tuple[str | None, list]:
    afi, safi = _family(val, "MP_REACH_NLRI")
    if len(val) < 5:
        raise BgpError("MP_REACH_NLRI truncated before the next hop")
    nh_len = val[3]
    if 4 + nh_len + 1 > len(val):
        raise BgpError("MP_REACH_NLRI next hop runs past the attribute")
    nh = val[4 : 4 + nh_len]
    if safi != SAFI_UNICAST or afi not in (AFI_IPV4, AFI_IPV6):
        return None, []  # other families (VPN, EVPN, flowspec) are not in bgp_updates
    if nh_len in (16, 32):  # global, or global + link-local (RFC 2545): the global one is the route's
        next_hop = ipv6_text(nh[:16])
    elif nh_len == 4:
        next_hop = ipv4_text(nh)
    elif nh_len == 0:
        next_hop = None
    else:
        raise BgpError(f"MP_REACH_NLRI next hop of {nh_len} bytes")
    nlri = val[4 + nh_len + 1 :]  # one reserved byte after the next hop
    return next_hop, _prefixes(nlri, afi, (afi, safi) in add_path, "MP_REACH_NLRI")


def _mp_unreach(val: bytes, add_path: frozenset) -> list:
    afi, safi = _family(val, "MP_UNREACH_NLRI")
    if safi != SAFI_UNICAST or afi not in (AFI_IPV4, AFI_IPV6):
        return []
    return _prefixes(val[3:], afi, (afi, safi) in add_path, "MP_UNREACH_NLRI")


def notification_text(msg: bytes | memoryview) -> str:
    """'code/subcode' text of a NOTIFICATION message (header included), for peer-down reasons."""
    mtype, length = split_header(msg, "NOTIFICATION")
    if mtype != MSG_NOTIFICATION or length < 21:
        raise BgpError("expected a NOTIFICATION of at least 21 bytes")
    code, sub = msg[19], msg[20]
    name = _NOTIFICATION_CODES.get(code, "unknown")
    return f"notification {code}/{sub} ({name})"


_NOTIFICATION_CODES = {1: "message header error", 2: "OPEN message error", 3: "UPDATE message error",
                       4: "hold timer expired", 5: "finite state machine error", 6: "cease",
                       7: "route refresh message error"}  # fmt: skip
