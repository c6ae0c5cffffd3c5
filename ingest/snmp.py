"""SNMP traps and informs (v1, v2c, v3 USM) into the catalog's ``traps`` batches.

Why a BER decoder of our own rather than pysnmp: a trap is a few hundred bytes of BER, and pysnmp's
pyasn1-based decoding costs far more per message (``benchmarks/bench_ingest.py`` measures both); USM
needs only RFC 3414 key localisation, HMAC and AES-CFB, which the ``cryptography`` package provides.

v3 details: traps are authenticated with keys localised to the *sender's* engine ID (the sender is
authoritative); informs with keys localised to *our* engine ID, after the engine-ID discovery
exchange (an unauthenticated request answered with a Report of usmStatsUnknownEngineIDs carrying our
engine ID, boots and time). A wrong digest or unknown user is counted (``drop_auth_failed``), the
message is not accepted, and an inform sender gets a usmStatsWrongDigests / usmStatsUnknownUserNames
Report, as snmptrapd does. The time window of RFC 3414 §3.2 step 7 is not enforced (a collector
receiving traps from unsynchronised agents would otherwise drop them); the digest always is.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import time
from dataclasses import dataclass, field
from functools import lru_cache

import pyarrow as pa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

try:  # CFB moved to the "decrepit" module in cryptography 47; USM (RFC 3826) still requires it
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.modes import CFB

from ingest.collector import BufferedFramer, FramingError
from ingest.core import AUTH_FAILED, DECRYPT_FAILED, MALFORMED, UNSUPPORTED, Counters, DecodeResult, Packet
from streams.catalog import CATALOG

SCHEMA = CATALOG["traps"].arrow_schema()

# BER tags
INTEGER, OCTETS, NULL, OID, SEQUENCE = 0x02, 0x04, 0x05, 0x06, 0x30
IPADDR, COUNTER32, GAUGE32, TIMETICKS, OPAQUE, COUNTER64 = 0x40, 0x41, 0x42, 0x43, 0x44, 0x46
GET, RESPONSE, TRAP_V1, INFORM, TRAP_V2, REPORT = 0xA0, 0xA2, 0xA4, 0xA6, 0xA7, 0xA8
TYPE_NAMES = {INTEGER: "INTEGER", OCTETS: "STRING", NULL: "NULL", OID: "OID", IPADDR: "IpAddress",
              COUNTER32: "Counter32", GAUGE32: "Gauge32", TIMETICKS: "Timeticks", OPAQUE: "Opaque",
              COUNTER64: "Counter64", 0x80: "noSuchObject", 0x81: "noSuchInstance", 0x82: "endOfMibView"}  # fmt: skip

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SNMP_TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"
USM_UNKNOWN_ENGINE = "1.3.6.1.6.3.15.1.1.4.0"
USM_UNKNOWN_USER = "1.3.6.1.6.3.15.1.1.3.0"
USM_WRONG_DIGEST = "1.3.6.1.6.3.15.1.1.5.0"

AUTH = {  # protocol: (hash, HMAC output length used on the wire; RFC 3414 and RFC 7860)
    "MD5": (hashlib.md5, 12), "SHA": (hashlib.sha1, 12), "SHA-224": (hashlib.sha224, 16),
    "SHA-256": (hashlib.sha256, 24), "SHA-384": (hashlib.sha384, 32), "SHA-512": (hashlib.sha512, 48),
}  # fmt: skip
PRIV = {"AES": 16, "AES-128": 16, "AES-192": 24, "AES-256": 32}


class BerError(ValueError):
    """The bytes are not the BER the message needs."""


# ---- BER -----------------------------------------------------------------------------------------
def tlv(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, value start, value end) of the element at ``pos``; every length is checked."""
    if pos + 2 > end:
        raise BerError("truncated element")
    tag, ln = data[pos], data[pos + 1]
    pos += 2
    if ln & 0x80:
        n = ln & 0x7F
        if n == 0 or n > 4 or pos + n > end:
            raise BerError("bad length")
        ln = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    if pos + ln > end:
        raise BerError("length beyond the message")
    return tag, pos, pos + ln


def expect(data: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    t, a, b = tlv(data, pos, end)
    if t != tag:
        raise BerError(f"expected tag 0x{tag:02x}, got 0x{t:02x}")
    return a, b


def read_int(data: bytes, pos: int, end: int) -> tuple[int, int]:
    a, b = expect(data, pos, end, INTEGER)
    if b - a > 9 or a == b:
        raise BerError("bad integer")
    return int.from_bytes(data[a:b], "big", signed=True), b


def read_octets(data: bytes, pos: int, end: int) -> tuple[bytes, int]:
    a, b = expect(data, pos, end, OCTETS)
    return data[a:b], b


@lru_cache(maxsize=65536)  # bounded; traps repeat the same OIDs, so most decodes are cache hits
def decode_oid(raw: bytes) -> str:
    if not raw or raw[-1] & 0x80:
        raise BerError("bad OID")
    arcs, v = [], 0
    for byte in raw:
        v = (v << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(v)
            v = 0
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(map(str, head + arcs[1:]))


def enc_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def enc(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + enc_len(len(content)) + content


def enc_int(v: int, tag: int = INTEGER) -> bytes:
    return enc(tag, v.to_bytes(max(1, (v + (v < 0)).bit_length() // 8 + 1), "big", signed=True))


def enc_uint(v: int, tag: int) -> bytes:
    b = v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big")  # leading zero keeps it positive
    return enc(tag, b)


def enc_oid(oid: str) -> bytes:
    arcs = [int(x) for x in oid.split(".")]
    out = bytearray([arcs[0] * 40 + arcs[1]])
    for a in arcs[2:]:
        chunk = [a & 0x7F]
        a >>= 7
        while a:
            chunk.append(0x80 | (a & 0x7F))
            a >>= 7
        out += bytes(reversed(chunk))
    return enc(OID, bytes(out))


def value_text(tag: int, raw: bytes) -> str:
    """The value as text, close to net-snmp's display (strings as text unless binary)."""
    if tag == INTEGER:
        return str(int.from_bytes(raw, "big", signed=True)) if raw else "0"
    if tag in (COUNTER32, GAUGE32, TIMETICKS, COUNTER64):
        return str(int.from_bytes(raw, "big"))
    if tag == OID:
        return decode_oid(raw)
    if tag == IPADDR:
        return ".".join(map(str, raw)) if len(raw) == 4 else raw.hex()
    if tag == OCTETS:
        try:
            text = raw.decode("utf-8")
            if text.isprintable() or all(c.isprintable() or c in "\r\n\t" for c in text):
                return text
        except UnicodeDecodeError:
            pass
        return " ".join(f"{b:02X}" for b in raw)
    if tag == NULL or tag in (0x80, 0x81, 0x82):
        return ""
    return raw.hex()


def read_varbinds(data: bytes, pos: int, end: int) -> list[tuple[str, int, str]]:
    a, b = expect(data, pos, end, SEQUENCE)
    out = []
    while a < b:
        va, vb = expect(data, a, b, SEQUENCE)
        oa, ob = expect(data, va, vb, OID)
        t, xa, xb = tlv(data, ob, vb)
        if t not in TYPE_NAMES:
            raise BerError(f"unknown value type 0x{t:02x}")
        out.append((decode_oid(data[oa:ob]), t, value_text(t, data[xa:xb])))
        a = vb
    return out


def enc_varbinds(vbs: list[tuple[str, bytes]]) -> bytes:
    return enc(SEQUENCE, b"".join(enc(SEQUENCE, enc_oid(o) + v) for o, v in vbs))


# ---- USM -----------------------------------------------------------------------------------------
@dataclass
class UsmUser:
    """A v3 user (``[[traps.users]]``): authNoPriv when priv_protocol is empty."""

    name: str
    auth_protocol: str = "SHA"  # MD5, SHA, SHA-224, SHA-256, SHA-384, SHA-512
    auth_password: str = ""
    priv_protocol: str = "AES"  # AES (128), AES-192, AES-256, or "" for none
    priv_password: str = ""
    engine_id: str = ""  # hex; when set, traps are accepted only from this engine

    def __post_init__(self) -> None:
        if self.auth_protocol not in AUTH:
            raise ValueError(f"user {self.name!r}: auth_protocol must be one of {', '.join(AUTH)}")
        if self.priv_protocol and self.priv_protocol not in PRIV:
            raise ValueError(f"user {self.name!r}: priv_protocol must be one of {', '.join(PRIV)} or ''")
        if len(self.auth_password) < 8 or (self.priv_protocol and len(self.priv_password) < 8):
            raise ValueError(f"user {self.name!r}: passwords must have at least 8 characters (RFC 3414)")
        bytes.fromhex(self.engine_id)


@dataclass
class TrapOptions:
    """The ``[traps]`` config section."""

    communities: list[str] = field(default_factory=list)  # v1/v2c communities accepted ([] = any)
    engine_id: str = ""  # our engine ID for v3 informs, hex ("" = derived from the host name)
    users: list[UsmUser] = field(default_factory=list)
    ack_informs: bool = True


def password_to_key(password: bytes, hash_fn) -> bytes:
    """RFC 3414 A.2: hash 1 MiB of the repeated password."""
    if not password:
        raise ValueError("empty password")
    return hash_fn((password * (1048576 // len(password) + 1))[:1048576]).digest()


def localize(ku: bytes, engine_id: bytes, hash_fn) -> bytes:
    return hash_fn(ku + engine_id + ku).digest()


class Usm:
    """Localised keys per (user, engine ID), computed once (1 MiB of hashing each)."""

    def __init__(self, users: list[UsmUser]) -> None:
        self.users = {u.name.encode(): u for u in users}
        self._ku: dict[tuple[bytes, str], bytes] = {}
        self._kul: dict[tuple[bytes, bytes, str], bytes] = {}

    def keys(self, user: UsmUser, engine: bytes) -> tuple[bytes, bytes | None]:
        hash_fn = AUTH[user.auth_protocol][0]
        name = user.name.encode()
        auth = self._local(name, engine, "auth", user.auth_password, hash_fn)
        if not user.priv_protocol:
            return auth, None
        priv = self._local(name, engine, "priv", user.priv_password, hash_fn)
        need = PRIV[user.priv_protocol]
        while len(priv) < need:  # key extension for AES-192/256 with short hashes (Blumenthal draft)
            priv += hash_fn(priv).digest()
        return auth, priv[:need]

    def _local(self, name: bytes, engine: bytes, which: str, password: str, hash_fn) -> bytes:
        k = (name, engine, which)
        if k not in self._kul:
            ku_key = (name, which)
            if ku_key not in self._ku:
                self._ku[ku_key] = password_to_key(password.encode(), hash_fn)
            self._kul[k] = localize(self._ku[ku_key], engine, hash_fn)
        return self._kul[k]


def aes_cfb(key: bytes, iv: bytes, data: bytes, encrypt: bool) -> bytes:
    c = Cipher(algorithms.AES(key), CFB(iv))
    op = c.encryptor() if encrypt else c.decryptor()
    return op.update(data) + op.finalize()


# ---- decoder -------------------------------------------------------------------------------------
@dataclass
class _Row:
    device: str
    source: str
    version: str
    community: str
    pdu_type: str
    trap_oid: str
    uptime: int
    varbinds: list[tuple[str, int, str]]


class TrapDecoder:
    """Decodes SNMP messages; returns rows for traps/informs and the responses informs need."""

    entity = "traps"

    def __init__(self, options: TrapOptions | None = None) -> None:
        self.options = options or TrapOptions()
        self.usm = Usm(self.options.users)
        self.engine_id = bytes.fromhex(self.options.engine_id) if self.options.engine_id else (
            b"\x80\x00\x1f\x88\x04" + ("srq" + os.uname().nodename)[:27].encode())  # fmt: skip
        self.boots = 1
        self.started = time.monotonic()
        self.unknown_engine_reports = 0
        self._salt = int.from_bytes(os.urandom(8), "big")

    def housekeeping(self, now_ms: int, counters: Counters) -> None:
        pass

    def decode(self, packets: list[Packet], counters: Counters) -> DecodeResult:
        rows: list[_Row] = []
        result = DecodeResult()
        for p in packets:
            frames = p.data if isinstance(p.data, list) else [p.data]
            for data in frames:
                counters.add(p.source, packets=1, nbytes=len(data))
                try:
                    before = len(rows)
                    self._message(data, p, rows, result, counters)
                    if len(rows) > before:
                        counters.add(p.source, records=len(rows) - before)
                except (BerError, ValueError, IndexError, struct.error):
                    counters.drop(p.source, MALFORMED)
        if rows:
            result.batches.append(_batch(rows, [p.received_ms for p in packets][-1]))
        return result

    # ---- messages --------------------------------------------------------------------------------
    def _message(self, data: bytes, p: Packet, rows: list, result: DecodeResult, counters: Counters) -> None:
        a, end = expect(data, 0, len(data), SEQUENCE)
        version, pos = read_int(data, a, end)
        if version in (0, 1):
            community, pos = read_octets(data, pos, end)
            comm = community.decode("utf-8", "replace")
            if self.options.communities and comm not in self.options.communities:
                counters.drop(p.source, AUTH_FAILED)
                return
            tag, pa_, pb = tlv(data, pos, end)
            vname = "v1" if version == 0 else "v2c"
            row = self._pdu(data, tag, pa_, pb, p, vname, comm)
            if row is None:
                counters.drop(p.source, UNSUPPORTED)
                return
            rows.append(row)
            if tag == INFORM and self.options.ack_informs:
                resp = _response_pdu(data, pa_, pb)
                reply = enc(SEQUENCE, enc_int(version) + enc(OCTETS, community) + resp)
                result.replies.append((p.source, p.port, p.transport, reply))
        elif version == 3:
            self._v3(data, pos, end, p, rows, result, counters)
        else:
            counters.drop(p.source, UNSUPPORTED)

    def _pdu(self, data: bytes, tag: int, a: int, b: int, p: Packet, version: str, who: str) -> _Row | None:
        if tag == TRAP_V1:
            ea, eb = expect(data, a, b, OID)
            enterprise = decode_oid(data[ea:eb])
            aa, ab = expect(data, eb, b, IPADDR)
            agent = ".".join(map(str, data[aa:ab])) if ab - aa == 4 else p.source
            generic, pos = read_int(data, ab, b)
            specific, pos = read_int(data, pos, b)
            ta, tb = expect(data, pos, b, TIMETICKS)
            uptime = int.from_bytes(data[ta:tb], "big")
            vbs = read_varbinds(data, tb, b)
            oid = f"1.3.6.1.6.3.1.1.5.{generic + 1}" if 0 <= generic < 6 else f"{enterprise}.0.{specific}"
            return _Row(agent, p.source, version, who, "trap_v1", oid, uptime & 0xFFFFFFFF, vbs)
        if tag in (TRAP_V2, INFORM):
            _, pos = read_int(data, a, b)  # request-id
            _, pos = read_int(data, pos, b)
            _, pos = read_int(data, pos, b)
            vbs = read_varbinds(data, pos, b)
            vals = {o: v for o, _, v in vbs}
            uptime = int(vals.get(SYS_UPTIME, "0") or 0) if vals.get(SYS_UPTIME, "0").isdigit() else 0
            kind = "inform" if tag == INFORM else "trap"
            return _Row(p.source, p.source, version, who, kind, vals.get(SNMP_TRAP_OID, ""),
                        uptime & 0xFFFFFFFF, vbs)  # fmt: skip
        return None

    def _v3(self, data: bytes, pos: int, end: int, p: Packet, rows: list, result: DecodeResult,
            counters: Counters) -> None:  # fmt: skip
        ga, gb = expect(data, pos, end, SEQUENCE)
        msg_id, q = read_int(data, ga, gb)
        _, q = read_int(data, q, gb)  # msgMaxSize
        flags, q = read_octets(data, q, gb)
        model, _ = read_int(data, q, gb)
        if model != 3 or len(flags) != 1:
            counters.drop(p.source, UNSUPPORTED)
            return
        fl = flags[0]
        spa, spb = expect(data, gb, end, OCTETS)
        sa, sb = expect(data, spa, spb, SEQUENCE)
        engine, q = read_octets(data, sa, sb)
        boots, q = read_int(data, q, sb)
        etime, q = read_int(data, q, sb)
        user_name, q = read_octets(data, q, sb)
        aa, ab = expect(data, q, sb, OCTETS)
        salt, _ = read_octets(data, ab, sb)
        reportable = bool(fl & 0x04)
        if not engine:  # engine-ID discovery (snmpinform's first message)
            if reportable:
                self.unknown_engine_reports += 1
                result.replies.append((p.source, p.port, p.transport,
                                       self._report(msg_id, USM_UNKNOWN_ENGINE, self.unknown_engine_reports)))
            return
        user = self.usm.users.get(user_name)
        if user is None or (user.engine_id and bytes.fromhex(user.engine_id) != engine):
            counters.drop(p.source, AUTH_FAILED)
            if reportable:
                result.replies.append((p.source, p.port, p.transport, self._report(msg_id, USM_UNKNOWN_USER, 1)))
            return
        if not fl & 0x01:
            counters.drop(p.source, AUTH_FAILED)  # noAuthNoPriv is not accepted for configured users
            return
        auth_key, priv_key = self.usm.keys(user, engine)
        hash_fn, mac_len = AUTH[user.auth_protocol]
        zeroed = data[:aa] + bytes(ab - aa) + data[ab:]
        mac = hmac.new(auth_key, zeroed, hash_fn).digest()[:mac_len]
        if ab - aa != mac_len or not hmac.compare_digest(mac, data[aa:ab]):
            counters.drop(p.source, AUTH_FAILED)
            if reportable:
                result.replies.append((p.source, p.port, p.transport, self._report(msg_id, USM_WRONG_DIGEST, 1)))
            return
        scoped_start = spb
        if fl & 0x02:
            if priv_key is None or len(salt) != 8:
                counters.drop(p.source, DECRYPT_FAILED)
                return
            ea, eb = expect(data, spb, end, OCTETS)
            iv = boots.to_bytes(4, "big") + etime.to_bytes(4, "big") + salt
            plain = aes_cfb(priv_key, iv, data[ea:eb], encrypt=False)
            try:
                sa2, sb2 = expect(plain, 0, len(plain), SEQUENCE)
            except BerError:
                counters.drop(p.source, DECRYPT_FAILED)
                return
            scoped, scoped_start, scoped_end = plain, sa2, sb2
        else:
            scoped = data
            scoped_start, scoped_end = expect(data, scoped_start, end, SEQUENCE)
        ctx_engine, q = read_octets(scoped, scoped_start, scoped_end)
        ctx_name, q = read_octets(scoped, q, scoped_end)
        tag, pa_, pb = tlv(scoped, q, scoped_end)
        row = self._pdu(scoped, tag, pa_, pb, p, "v3", user.name)
        if row is None:
            counters.drop(p.source, UNSUPPORTED)
            return
        rows.append(row)
        if tag == INFORM and self.options.ack_informs:
            resp = _response_pdu(scoped, pa_, pb)
            result.replies.append((p.source, p.port, p.transport,
                                   self._v3_response(msg_id, user, ctx_engine, ctx_name, resp, fl & 0x02)))

    # ---- replies ---------------------------------------------------------------------------------
    def _engine_time(self) -> int:
        return int(time.monotonic() - self.started)

    def _v3_message(self, msg_id: int, flags: int, sec_params: bytes, scoped: bytes) -> bytes:
        header = enc(SEQUENCE, enc_int(msg_id) + enc_int(65507) + enc(OCTETS, bytes([flags])) + enc_int(3))
        return enc(SEQUENCE, enc_int(3) + header + enc(OCTETS, sec_params) + scoped)

    def _report(self, msg_id: int, oid: str, count: int) -> bytes:
        pdu = enc(REPORT, enc_int(msg_id) + enc_int(0) + enc_int(0) + enc_varbinds([(oid, enc_uint(count, COUNTER32))]))
        scoped = enc(SEQUENCE, enc(OCTETS, self.engine_id) + enc(OCTETS, b"") + pdu)
        sec = enc(SEQUENCE, enc(OCTETS, self.engine_id) + enc_int(self.boots) + enc_int(self._engine_time())
                  + enc(OCTETS, b"") + enc(OCTETS, b"") + enc(OCTETS, b""))  # fmt: skip
        return self._v3_message(msg_id, 0x00, sec, scoped)

    def _v3_response(self, msg_id: int, user: UsmUser, ctx_engine: bytes, ctx_name: bytes, pdu: bytes,
                     priv: int) -> bytes:  # fmt: skip
        auth_key, priv_key = self.usm.keys(user, self.engine_id)
        hash_fn, mac_len = AUTH[user.auth_protocol]
        boots, etime = self.boots, self._engine_time()
        scoped = enc(SEQUENCE, enc(OCTETS, ctx_engine) + enc(OCTETS, ctx_name) + pdu)
        salt = b""
        if priv and priv_key is not None:
            self._salt = (self._salt + 1) & (2**64 - 1)
            salt = self._salt.to_bytes(8, "big")
            iv = boots.to_bytes(4, "big") + etime.to_bytes(4, "big") + salt
            scoped = enc(OCTETS, aes_cfb(priv_key, iv, scoped, encrypt=True))
        placeholder = bytes(mac_len)
        head = enc(OCTETS, self.engine_id) + enc_int(boots) + enc_int(etime) + enc(OCTETS, user.name.encode())
        sec = enc(SEQUENCE, head + enc(OCTETS, placeholder) + enc(OCTETS, salt))
        msg = self._v3_message(msg_id, 0x01 | (0x02 if salt else 0), sec, scoped)
        # the auth parameters are the only mac_len zero bytes right after the user name's element
        marker = enc(OCTETS, user.name.encode()) + enc(OCTETS, placeholder)
        at = msg.index(marker) + len(marker) - mac_len
        mac = hmac.new(auth_key, msg, hash_fn).digest()[:mac_len]
        return msg[:at] + mac + msg[at + mac_len :]


def _response_pdu(data: bytes, a: int, b: int) -> bytes:
    """The Response PDU acknowledging an inform: same request-id and varbinds, no error."""
    _, rid_end = read_int(data, a, b)
    _, pos = read_int(data, rid_end, b)
    _, pos = read_int(data, pos, b)
    return enc(RESPONSE, data[a:rid_end] + enc_int(0) + enc_int(0) + data[pos:b])


def _batch(rows: list[_Row], received_ms: int) -> pa.RecordBatch:
    n = len(rows)
    cols = {
        "timestamp": pa.array([received_ms] * n, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
        "device": [r.device for r in rows],
        "source_ip": [r.source for r in rows],
        "version": [r.version for r in rows],
        "community": [r.community for r in rows],
        "pdu_type": [r.pdu_type for r in rows],
        "trap_oid": [r.trap_oid for r in rows],
        "uptime": [r.uptime for r in rows],
        "varbinds": [[(o, v) for o, _, v in r.varbinds] for r in rows],
        "varbind_types": [[(o, TYPE_NAMES[t]) for o, t, _ in r.varbinds] for r in rows],
    }
    return pa.RecordBatch.from_arrays([pa.array(cols[f.name], f.type) for f in SCHEMA], schema=SCHEMA)


class BerFramer(BufferedFramer):
    """Splits SNMP-over-TCP (RFC 3430) streams on the outer BER SEQUENCE."""

    def _split(self, data: bytes, out: list[bytes]) -> None:
        self.buf += data
        while len(self.buf) >= 2:
            if self.buf[0] != SEQUENCE:
                raise FramingError("not a BER SEQUENCE")
            ln = self.buf[1]
            hdr = 2
            if ln & 0x80:
                n = ln & 0x7F
                if n == 0 or n > 4:
                    raise FramingError("bad BER length")
                if len(self.buf) < 2 + n:
                    break
                ln = int.from_bytes(self.buf[2 : 2 + n], "big")
                hdr += n
            if ln > self.max_frame:
                raise FramingError(f"frame too long ({ln} bytes)")
            if len(self.buf) < hdr + ln:
                break
            out.append(bytes(self.buf[: hdr + ln]))
            del self.buf[: hdr + ln]



OPTIONS = TrapOptions


def build(options: TrapOptions) -> tuple[TrapDecoder, type[BerFramer]]:
    return TrapDecoder(options), BerFramer
