"""SNMP traps and informs from net-snmp's snmptrap/snmpinform, checked against snmptrapd's decoding.

Traps go through a relay that hands the very same datagram to our collector and to snmptrapd.
Informs need their acknowledgement from the receiver, so each inform is sent twice by snmpinform:
once to snmptrapd (the reference) and once to our collector, which must acknowledge it (snmpinform
exits 0 only when the Response arrives; for v3 only after our engine-ID discovery Report).
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time

import pyarrow as pa
import pytest
from ingest_helpers import CollectorThread, free_port, require, wait_for

from ingest.core import Counters, Packet
from ingest.snmp import BerFramer, TrapDecoder, TrapOptions, UsmUser, enc, enc_int, enc_oid
from streams.catalog import CATALOG

SENDER_ENGINE = "8000000001020304"
USERS = [
    UsmUser("trapuser", "SHA", "authpass123", "AES", "privpass123"),
    UsmUser("trapuser256", "SHA-256", "authpass123", "AES-256", "privpass123"),
    UsmUser("informuser", "SHA", "authpass123", "AES", "privpass123"),
    UsmUser("informuser512", "SHA-512", "authpass123", "AES-256", "privpass123"),
    UsmUser("authonly", "SHA-224", "authpass123", "", ""),
]
V3 = {u.name: ["-v", "3", "-u", u.name, "-a", u.auth_protocol, "-A", u.auth_password]
      + (["-l", "authPriv", "-x", u.priv_protocol, "-X", u.priv_password] if u.priv_protocol
         else ["-l", "authNoPriv"]) for u in USERS}  # fmt: skip
TRAPS = [
    ["-v", "1", "-c", "public", "{dst}", "1.3.6.1.4.1.8072.2.3", "127.0.0.1", "6", "17", "",
     "1.3.6.1.4.1.8072.2.3.2.1", "i", "123", "1.3.6.1.2.1.1.5.0", "s", "v1 trap"],
    ["-v", "1", "-c", "public", "{dst}", "1.3.6.1.4.1.8072.3.2.10", "127.0.0.1", "2", "0", "",
     "1.3.6.1.2.1.2.2.1.1.3", "i", "3"],
    ["-v", "2c", "-c", "public", "{dst}", "", "1.3.6.1.6.3.1.1.5.4", "1.3.6.1.2.1.2.2.1.1.2", "i", "2",
     "1.3.6.1.2.1.2.2.1.2.2", "s", "eth1", "1.3.6.1.4.1.8072.9.1", "x", "DEADBEEF",
     "1.3.6.1.4.1.8072.9.2", "a", "192.0.2.77", "1.3.6.1.4.1.8072.9.3", "c", "4000000000",
     "1.3.6.1.4.1.8072.9.4", "u", "77", "1.3.6.1.4.1.8072.9.5", "o", "1.3.6.1.4.1.8072"],
    ["-e", "0x" + SENDER_ENGINE, *V3["trapuser"], "{dst}", "", "1.3.6.1.4.1.8072.2.3.0.1",
     "1.3.6.1.2.1.1.5.0", "s", "v3 authPriv trap"],
    ["-e", "0x" + SENDER_ENGINE, *V3["trapuser256"], "{dst}", "", "1.3.6.1.4.1.8072.2.3.0.1",
     "1.3.6.1.2.1.1.5.0", "s", "v3 sha256/aes256 trap"],
    ["-e", "0x" + SENDER_ENGINE, *V3["authonly"], "{dst}", "", "1.3.6.1.4.1.8072.2.3.0.2",
     "1.3.6.1.2.1.1.5.0", "s", "v3 authNoPriv trap"],
]  # fmt: skip
INFORMS = [
    ["-v", "2c", "-c", "public", "{dst}", "", "1.3.6.1.4.1.8072.2.3.0.1", "1.3.6.1.4.1.8072.2.3.2.1", "i", "42"],
    [*V3["informuser"], "{dst}", "", "1.3.6.1.4.1.8072.2.3.0.1", "1.3.6.1.4.1.8072.2.3.2.1", "i", "8"],
    [*V3["informuser512"], "{dst}", "", "1.3.6.1.4.1.8072.2.3.0.1", "1.3.6.1.4.1.8072.2.3.2.1", "i", "9"],
]  # fmt: skip
SNMPTRAPD_CONF = f"""
authCommunity log public
createUser -e 0x{SENDER_ENGINE} trapuser SHA authpass123 AES privpass123
createUser -e 0x{SENDER_ENGINE} trapuser256 SHA-256 authpass123 AES-256 privpass123
createUser -e 0x{SENDER_ENGINE} authonly SHA-224 authpass123
createUser informuser SHA authpass123 AES privpass123
createUser informuser512 SHA-512 authpass123 AES-256 privpass123
authUser log trapuser priv
authUser log trapuser256 priv
authUser log authonly auth
authUser log informuser priv
authUser log informuser512 priv
"""


def _env(tmp: object) -> dict:
    return {**os.environ, "SNMP_PERSISTENT_DIR": str(tmp), "MIBS": "", "SNMPCONFPATH": str(tmp)}


def _run(tool: str, args: list[str], dst: str, env: dict, timeout_args: tuple = ("-t", "2", "-r", "1")) -> int:
    argv = [require(tool), *timeout_args, *[a.replace("{dst}", dst) for a in args]]
    return subprocess.run(argv, env=env, capture_output=True, timeout=30).returncode


class Relay(threading.Thread):
    """Copies each datagram it receives to every target (no replies: for traps only)."""

    def __init__(self, targets: list[int]) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.targets = targets
        self.stopped = False
        self.start()

    def run(self) -> None:
        while not self.stopped:
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            for t in self.targets:
                self.sock.sendto(data, ("127.0.0.1", t))


def parse_snmptrapd(line: str) -> tuple[str, str, str, dict[str, str]]:
    """'%P|%v' lines: (pdu, version, community or user, {oid: value text})."""
    head, _, binds = line.partition(" | ")
    parts = [p.strip() for p in head.split(",")]
    pdu, version = parts[0], parts[1].split()[-1]
    who = parts[2].split(" ", 1)[1] if len(parts) > 2 else ""
    vb = {}
    for item in binds.split("\t"):
        if " = " not in item:
            continue
        oid, _, val = item.partition(" = ")
        typ, _, text = val.partition(": ")
        if typ == "Timeticks":
            text = text[1 : text.index(")")]
        elif typ == "STRING":
            text = text.strip('"')
        elif typ == "Hex-STRING":
            text = text.strip()
        elif typ == "OID":
            text = text.lstrip(".")
        vb[oid.lstrip(".")] = text
    return pdu, version, who, vb


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    require("snmptrapd")
    tmp = tmp_path_factory.mktemp("snmp")
    env = _env(tmp)
    (tmp / "snmptrapd.conf").write_text(SNMPTRAPD_CONF)
    ref_port = free_port()
    out = open(tmp / "snmptrapd.out", "w")  # noqa: SIM115
    ref = subprocess.Popen(
        [require("snmptrapd"), "-f", "-Lo", "-On", "-F", "%P | %v\n", "-C", "-c", str(tmp / "snmptrapd.conf"),
         "-p", str(tmp / "snmptrapd.pid"), f"udp:127.0.0.1:{ref_port}"], stdout=out, stderr=subprocess.STDOUT, env=env)
    ours = CollectorThread(TrapDecoder(TrapOptions(communities=["public"], users=USERS)), BerFramer,
                           udp=True, tcp=True)  # fmt: skip
    relay = Relay([ours.ports["udp"], ref_port])
    result: dict = {"tmp": tmp}
    try:
        assert wait_for(lambda: "NET-SNMP version" in (tmp / "snmptrapd.out").read_text(), 10), "snmptrapd down"
        for args in TRAPS:
            assert _run("snmptrap", args, f"udp:127.0.0.1:{relay.port}", env) == 0, args
        result["inform_rc"] = [_run("snmpinform", a, f"udp:127.0.0.1:{ours.ports['udp']}", env) for a in INFORMS]
        result["inform_ref_rc"] = [_run("snmpinform", a, f"udp:127.0.0.1:{ref_port}", env) for a in INFORMS]
        # over TCP too (RFC 3430 framing), acknowledged on the same connection
        result["tcp_rc"] = _run("snmpinform", INFORMS[0], f"tcp:127.0.0.1:{ours.ports['tcp']}", env)
        before = ours.counters.total("drop_auth_failed")
        bad = [a.replace("authpass123", "wrongpass99") for a in INFORMS[1]]
        result["wrong_rc"] = _run("snmpinform", bad, f"udp:127.0.0.1:{ours.ports['udp']}", env, ("-t", "1", "-r", "0"))
        bad_trap = [a.replace("authpass123", "wrongpass99") for a in TRAPS[3]]
        _run("snmptrap", bad_trap, f"udp:127.0.0.1:{ours.ports['udp']}", env)
        expected = len(TRAPS) + len(INFORMS) + 1
        assert wait_for(lambda: ours.counters.total("records") >= expected, 10)
        assert wait_for(lambda: ours.counters.total("drop_auth_failed") >= before + 2, 10)
        n_ref = len(TRAPS) + len(INFORMS)
        assert wait_for(lambda: (tmp / "snmptrapd.out").read_text().count(" | ") >= n_ref, 10)
        time.sleep(0.2)
    finally:
        relay.stopped = True
        result["table"] = ours.stop()
        result["counters"] = ours.counters
        ref.terminate()
        ref.wait(10)
        out.close()
    result["ref"] = [parse_snmptrapd(x) for x in (tmp / "snmptrapd.out").read_text().splitlines() if " | " in x]
    return result


def _ours(table: pa.Table) -> list[tuple[str, str, str, dict[str, str]]]:
    kind = {"trap_v1": "TRAP", "trap": "TRAP2", "inform": "INFORM"}
    return [(kind[r["pdu_type"]], r["version"], r["community"], dict(r["varbinds"])) for r in table.to_pylist()]


def _key(rec: tuple) -> tuple:
    pdu, version, who, vb = rec
    return pdu, version, who, tuple(sorted((o, v) for o, v in vb.items() if o != "1.3.6.1.2.1.1.3.0"))


def test_traps_and_informs_match_snmptrapd(run: dict) -> None:
    table = run["table"]
    assert table.schema == CATALOG["traps"].arrow_schema()
    ours = sorted(map(_key, _ours(table)))
    ref = sorted(map(_key, run["ref"]))
    assert len(ref) == len(TRAPS) + len(INFORMS)
    tcp_inform = _key(("INFORM", "v2c", "public", {"1.3.6.1.6.3.1.1.4.1.0": "1.3.6.1.4.1.8072.2.3.0.1",
                                                    "1.3.6.1.4.1.8072.2.3.2.1": "42"}))  # fmt: skip
    assert ours == sorted([*ref, tcp_inform])


def test_informs_are_acknowledged(run: dict) -> None:
    assert run["inform_ref_rc"] == [0, 0, 0]  # the reference accepted them
    assert run["inform_rc"] == [0, 0, 0] and run["tcp_rc"] == 0


def test_wrong_v3_password_is_counted_not_accepted(run: dict) -> None:
    assert run["wrong_rc"] != 0
    assert run["counters"].total("drop_auth_failed") == 2
    assert "wrongpass" not in str(run["table"].to_pylist())
    assert run["table"].num_rows == len(TRAPS) + len(INFORMS) + 1


def test_v1_trap_fields(run: dict) -> None:
    rows = [r for r in run["table"].to_pylist() if r["pdu_type"] == "trap_v1"]
    by_oid = {r["trap_oid"]: r for r in rows}
    assert set(by_oid) == {"1.3.6.1.4.1.8072.2.3.0.17", "1.3.6.1.6.3.1.1.5.3"}  # RFC 3584 translation
    assert by_oid["1.3.6.1.6.3.1.1.5.3"]["device"] == "127.0.0.1"
    v2 = next(r for r in run["table"].to_pylist() if r["trap_oid"] == "1.3.6.1.6.3.1.1.5.4")
    types = dict(v2["varbind_types"])
    assert types["1.3.6.1.4.1.8072.9.2"] == "IpAddress" and types["1.3.6.1.4.1.8072.9.3"] == "Counter32"
    assert types["1.3.6.1.4.1.8072.9.4"] == "Gauge32" and types["1.3.6.1.2.1.1.3.0"] == "Timeticks"
    assert dict(v2["varbinds"])["1.3.6.1.4.1.8072.9.1"] == "DE AD BE EF"
    assert v2["uptime"] == int(dict(v2["varbinds"])["1.3.6.1.2.1.1.3.0"])


def test_garbage_is_counted() -> None:
    msgs = [b"", b"\x30", b"\x30\x84\xff\xff\xff\xff", enc(0x30, enc_int(7)), enc(0x30, enc_int(1) + enc_oid("1.3"))]
    c = Counters()
    out = TrapDecoder().decode([Packet(m, "192.0.2.3", 162, 0) for m in msgs], c)
    assert not out.batches and not out.replies
    assert c.drops() == {"malformed": 4, "unsupported": 1}
