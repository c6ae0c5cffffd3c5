"""Syslog against real senders (util-linux logger, rsyslog over TLS) and rsyslog's own parse.

logger sends RFC 3164 and RFC 5424 over UDP and TCP (LF and octet-counting framing) to a relay in
this test, which hands the exact bytes to our collector and to an rsyslogd that dumps its parse as
JSON; every field must agree. A second rsyslogd reads local messages and forwards them over TLS
(RFC 5425, octet-counted) to our collector's TLS listener while writing its own parse to a file.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest_helpers import (
    RSYSLOG_JSON_TEMPLATE,
    CollectorThread,
    Rsyslog,
    free_port,
    make_tls_certs,
    read_json_lines,
    require,
    wait_for,
)

from ingest import syslog
from ingest.core import Counters, Packet
from ingest.syslog import SyslogDecoder, SyslogFramer
from streams.catalog import CATALOG

UDP_MESSAGES = [
    ["--rfc3164", "-t", "myapp", "-p", "local0.warning", "udp 3164 plain"],
    ["--rfc3164", "-i", "-t", "pidapp", "-p", "auth.err", "udp 3164 with pid"],
    ["--rfc5424", "-i", "-t", "myapp", "-p", "local0.info", "--msgid", "ID47", "--sd-id", "exampleSDID@32473",
     "--sd-param", 'iut="3"', "--sd-param", 'eventSource="Application"', "udp 5424 with sd"],
    ["--rfc5424=notime,nohost", "-t", "myapp", "udp 5424 notime nohost"],
    ["--rfc5424=notq", "-t", "app2", "-p", "daemon.debug", "udp 5424 notq"],
]  # fmt: skip
TCP_MESSAGES = [
    ["--rfc3164", "-t", "myapp", "tcp lf 3164"],
    ["--rfc5424", "-t", "myapp", "-p", "mail.crit", "tcp lf 5424"],
    ["--octet-count", "--rfc5424", "-t", "myapp", "--msgid", "M2", "tcp octet 5424"],
    ["--octet-count", "--rfc3164", "-t", "myapp", "tcp octet 3164"],
]


class Relay:
    """Receives what logger sends (UDP datagrams, or a TCP connection's bytes) and sends the very same
    bytes on to our collector and to the reference rsyslogd."""

    def __init__(self, targets: list[tuple[str, int]], kind: int) -> None:
        self.targets = targets
        self.sock = socket.socket(socket.AF_INET, kind)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.kind = kind
        if kind == socket.SOCK_STREAM:
            self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped:
            try:
                if self.kind == socket.SOCK_DGRAM:
                    data = self.sock.recv(65535)
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
                        for t in self.targets:
                            out.sendto(data, t)
                else:
                    conn, _ = self.sock.accept()
                    conn.settimeout(5)
                    chunks = []
                    while b := conn.recv(65536):
                        chunks.append(b)
                    conn.close()
                    for t in self.targets:
                        with socket.create_connection(t, 5) as out:
                            out.sendall(b"".join(chunks))
            except TimeoutError:
                continue

    def close(self) -> None:
        self.stopped = True
        self.thread.join(5)
        self.sock.close()


@pytest.fixture(scope="module")
def logger_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], pa.Table, Counters]:
    logger = require("logger")
    work = tmp_path_factory.mktemp("syslog")
    rport = free_port(socket.SOCK_STREAM)
    ref = Rsyslog(work / "ref", 'module(load="imudp")\nmodule(load="imtcp")\n' + RSYSLOG_JSON_TEMPLATE + f"""
ruleset(name="out") {{ action(type="omfile" file="{work}/ref.json" template="parsed") }}
input(type="imudp" address="127.0.0.1" port="{rport}" ruleset="out")
input(type="imtcp" address="127.0.0.1" port="{rport}" ruleset="out")
""")  # fmt: skip
    ours = CollectorThread(SyslogDecoder(), SyslogFramer, udp=True, tcp=True)
    try:
        ref.wait_tcp(rport)
        udp_relay = Relay([("127.0.0.1", ours.ports["udp"]), ("127.0.0.1", rport)], socket.SOCK_DGRAM)
        tcp_relay = Relay([("127.0.0.1", ours.ports["tcp"]), ("127.0.0.1", rport)], socket.SOCK_STREAM)
        for args in UDP_MESSAGES:
            subprocess.run([logger, "-n", "127.0.0.1", "-P", str(udp_relay.port), "--udp", *args], check=True)
        for args in TCP_MESSAGES:
            subprocess.run([logger, "-n", "127.0.0.1", "-P", str(tcp_relay.port), "--tcp", *args], check=True)
        subprocess.run([logger, "-n", "127.0.0.1", "-P", str(tcp_relay.port), "--tcp", "--rfc5424", "-t", "multi"],
                       input=b"multi line one\nmulti line two\n", check=True)  # fmt: skip
        expected = len(UDP_MESSAGES) + len(TCP_MESSAGES) + 2
        assert wait_for(lambda: len(read_json_lines(work / "ref.json")) >= expected, 15), "rsyslog parsed too few"
        assert wait_for(lambda: ours.counters.total("records") >= expected, 15)
        udp_relay.close()
        tcp_relay.close()
    finally:
        table = ours.stop()
        ref.stop()
    return read_json_lines(work / "ref.json"), table, ours.counters


def _ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).timestamp() * 1000)


def _nil(v: str | None) -> str | None:
    return None if v in (None, "", "-") else v


def test_fields_match_rsyslog(logger_run: tuple) -> None:
    ref, table, counters = logger_run
    assert table.schema == CATALOG["logs"].arrow_schema()
    ours = {r["message"].strip(): r for r in table.to_pylist()}
    theirs = {r["msg"].strip(): r for r in ref}
    assert set(ours) == set(theirs) and len(ours) == len(UDP_MESSAGES) + len(TCP_MESSAGES) + 2
    for text, t in theirs.items():
        o = ours[text]
        assert (o["facility"], o["severity"]) == (int(t["facility"]), int(t["severity"])), text
        assert o["facility"] * 8 + o["severity"] == int(t["pri"]), text
        assert o["app_name"] == t["app"], text
        assert o["proc_id"] == _nil(t["procid"]), text
        assert o["msg_id"] == _nil(t["msgid"]), text
        assert o["structured_data"] == _nil(t["sd"]), text
        if "nohost" in text:  # no HOSTNAME: the device is the sender's address
            assert o["device"] == "127.0.0.1"
        else:
            assert o["device"] == t["hostname"], text
        if "notime" not in text:
            assert int(o["timestamp"].timestamp() * 1000) == _ms(t["timestamp"]), text
        assert o["parse_error"] is False
    assert counters.drops() == {}


def test_structured_data_and_trace_id() -> None:
    lines = [b'<165>1 2026-12-03T12:00:00.000Z host1 tlsapp 99 ID1 [ex@32473 a="b" trace_id="abc123"] msg',
             b'<165>1 2026-12-03T12:00:00.5+02:00 host1 app - - [x@1 v="a\\] b"][y@2] \xef\xbb\xbfBOM text']
    rows = pa.Table.from_batches(SyslogDecoder().decode(
        [Packet(x, "192.0.2.1", 514, 0) for x in lines], Counters()).batches).to_pylist()  # fmt: skip
    assert rows[0]["trace_id"] == "abc123" and rows[0]["structured_data"] == '[ex@32473 a="b" trace_id="abc123"]'
    assert rows[1]["structured_data"] == '[x@1 v="a\\] b"][y@2]' and rows[1]["message"] == "BOM text"
    assert rows[1]["timestamp"] == dt.datetime(2026, 12, 3, 10, 0, 0, 500000, tzinfo=dt.UTC)
    assert rows[1]["trace_id"] is None  # no trace id in its SD: null, even though another row has one


def test_trace_id_is_found_in_any_letter_case() -> None:
    lines = [b'<14>1 2026-12-03T12:00:00Z h a - - [x@1 TraceID="T-1"] m', b'<14>1 2026-12-03T12:00:00Z h a - - - m',
             b'<14>1 2026-12-03T12:00:00Z h a - - [x@1 tRaCe_Id="t-2" n="TRACE"] m']  # fmt: skip
    out = SyslogDecoder().decode([Packet(x, "192.0.2.1", 514, 0) for x in lines], Counters())
    assert pa.Table.from_batches(out.batches).column("trace_id").to_pylist() == ["T-1", None, "t-2"]


def test_malformed_lines_are_kept_and_flagged() -> None:
    lines = [b"no pri at all", b"<999>1 bad pri", b"<13", b"", b"\xff\xfe<13>invalid utf8"]
    c = Counters()
    rows = pa.Table.from_batches(SyslogDecoder().decode(
        [Packet(x, "192.0.2.1", 514, 1_700_000_000_000) for x in lines], c).batches).to_pylist()  # fmt: skip
    assert len(rows) == len(lines) and all(r["parse_error"] for r in rows)
    assert [r["message"] for r in rows][:4] == ["no pri at all", "<999>1 bad pri", "<13", ""]
    assert all((r["facility"], r["severity"], r["device"]) == (1, 5, "192.0.2.1") for r in rows)


def test_framer_octet_counting_and_lf_mixed_in_pieces() -> None:
    stream = b"11 <13>1 - - -17 <13>1 - - - - - x\n<13>lf line\n5 <13>a"
    f, frames = SyslogFramer(), []
    for i in range(len(stream)):
        frames += f.feed(stream[i : i + 1])
    assert frames == [b"<13>1 - - -", b"<13>1 - - - - - x", b"<13>lf line", b"<13>a"]


@pytest.fixture(scope="module")
def tls_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], pa.Table]:
    logger = require("logger")
    work = tmp_path_factory.mktemp("syslog_tls")
    certs = make_tls_certs(work / "tls")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certs["cert"], certs["key"])
    ours = CollectorThread(SyslogDecoder(), SyslogFramer, udp=False, tls=ctx)
    sock = work / "log.sock"
    fwd = Rsyslog(work / "fwd", f"""
global(defaultNetstreamDriverCAFile="{certs['ca']}")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{sock}" CreatePath="on")
{RSYSLOG_JSON_TEMPLATE}
action(type="omfile" file="{work}/own.json" template="parsed")
action(type="omfwd" target="127.0.0.1" port="{ours.ports['tls']}" protocol="tcp" StreamDriver="gtls"
       StreamDriverMode="1" StreamDriverAuthMode="x509/name" StreamDriverPermittedPeers="localhost"
       template="RSYSLOG_SyslogProtocol23Format" TCP_Framing="octet-counted")
""")  # fmt: skip
    try:
        assert wait_for(sock.exists, 10), "rsyslogd did not create its socket"
        for i, prio in enumerate(("auth.err", "local3.notice", "user.info")):
            subprocess.run([logger, "-u", str(sock), "-t", f"webapp{i}", "-p", prio, f"forwarded over tls {i}"],
                           check=True)  # fmt: skip
        assert wait_for(lambda: ours.counters.total("records") >= 3, 20), "nothing arrived over TLS"
    finally:
        fwd.stop()
        table = ours.stop()
    return read_json_lines(work / "own.json"), table


def test_rsyslog_forwarding_over_tls(tls_run: tuple) -> None:
    own, table = tls_run
    rows = {r["message"].strip(): r for r in table.to_pylist()}
    assert len(rows) == 3 and len(own) == 3
    for t in own:
        o = rows[t["msg"].strip()]
        assert (o["facility"], o["severity"]) == (int(t["facility"]), int(t["severity"]))
        assert o["app_name"] == t["app"] and o["device"] == t["hostname"]
        assert int(o["timestamp"].timestamp() * 1000) == _ms(t["timestamp"])
        assert o["parse_error"] is False
    assert set(table.column("source_ip").to_pylist()) == {"127.0.0.1"}


def test_rfc3164_year_rollover_and_single_digit_days() -> None:
    jan1 = int(dt.datetime(2027, 1, 1, 0, 0, 30, tzinfo=dt.UTC).timestamp() * 1000)
    lines = [b"<13>Dec 31 23:59:58 h app: late", b"<13>Jan  1 00:00:29 h app: early", b"<13>Feb 30 00:00:00 h a: x"]
    rows = pa.Table.from_batches(SyslogDecoder().decode(
        [Packet(x, "192.0.2.1", 514, jan1) for x in lines], Counters()).batches).to_pylist()  # fmt: skip
    assert rows[0]["timestamp"] == dt.datetime(2026, 12, 31, 23, 59, 58, tzinfo=dt.UTC)
    assert rows[1]["timestamp"] == dt.datetime(2027, 1, 1, 0, 0, 29, tzinfo=dt.UTC)
    assert rows[2]["message"] == "x"  # an impossible date still yields the message (time: arithmetic)


def test_cli_tls_listener_health_and_sigterm_flush(tmp_path: Path) -> None:
    import json
    import signal
    import sys
    import urllib.request

    import pyarrow.parquet as pq

    certs = make_tls_certs(tmp_path / "tls")
    tls_port, health_port = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_STREAM)
    cfg = tmp_path / "syslog.toml"
    cfg.write_text(f'[listen]\ntls = ["127.0.0.1:{tls_port}"]\n'
                   f'[tls]\ncert = "{certs["cert"]}"\nkey = "{certs["key"]}"\n'
                   f'[health]\nlisten = "127.0.0.1:{health_port}"\n[batch]\nflush_ms = 60000\n')  # fmt: skip
    out = tmp_path / "logs.parquet"
    argv = [sys.executable, "-m", "ingest.cli", "syslog", "--config", str(cfg), "--output", str(out)]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    try:
        assert '"listening"' in proc.stderr.readline()
        ctx = ssl.create_default_context(cafile=str(certs["ca"]))
        with socket.create_connection(("127.0.0.1", tls_port), 5) as raw, ctx.wrap_socket(
            raw, server_hostname="localhost"
        ) as s:
            s.sendall(b"34 <13>1 - tlshost app - - - over tls\n<14>lf framed too\n")
        health: dict = {}

        def received() -> bool:
            health.update(json.load(urllib.request.urlopen(f"http://127.0.0.1:{health_port}/", timeout=2)))
            return health["rows_buffered"] == 2

        assert wait_for(received, 10), health
        assert health["exporters"]["127.0.0.1"]["records"] == 2
        assert health["rows_flushed"] == 0 and health["listening"] == [f"tls://127.0.0.1:{tls_port}"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    rows = pq.read_table(out).to_pylist()
    assert [(r["device"], r["message"]) for r in rows] == [("tlshost", "over tls"), ("127.0.0.1", "lf framed too")]


LINE = st.one_of(
    st.builds(lambda p, h, a, sd, m: f"<{p}>1 2026-12-03T12:41:07.5Z {h} {a} 42 ID7 {sd} {m}".encode(),
              st.integers(0, 191), st.sampled_from(["host1", "-", "edge-rtr"]), st.sampled_from(["sshd", "-"]),
              st.sampled_from(["-", '[x@1 a="b"]', '[x@1 traceId="t1"][y@2 a="\\]"]']), st.text(max_size=40)),
    st.builds(lambda p, d, m: f"<{p}>Dec {d:2d} 12:41:07 host2 app[7]: {m}".encode(),
              st.integers(0, 191), st.integers(1, 28), st.text(max_size=40)),
    st.binary(max_size=80),
)  # fmt: skip


def _sorted_rows(batches: list[pa.RecordBatch]) -> list[tuple]:
    return sorted(tuple(map(repr, r.values())) for b in batches for r in b.to_pylist())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(LINE, min_size=1, max_size=40), st.integers(1, 600), st.booleans())
def test_blocks_parse_like_one_piece(lines: list[bytes], block: int, framed: bool) -> None:
    """A chunk cut into many small parse blocks decodes to the same rows and counts as one block."""
    if framed:  # stream transport: packets carry lists of frames
        packets = [Packet(lines[i : i + 3], f"192.0.2.{i % 3}", 514, 1_700_000_000_000 + i, "tcp")
                   for i in range(0, len(lines), 3)]  # fmt: skip
    else:
        packets = [Packet(x, f"192.0.2.{i % 3}", 514, 1_700_000_000_000 + i) for i, x in enumerate(lines)]
    whole_c, cut_c = Counters(), Counters()
    whole = SyslogDecoder().decode(packets, whole_c).batches
    saved = syslog.BLOCK_BYTES
    syslog.BLOCK_BYTES = block
    try:
        cut = SyslogDecoder().decode(packets, cut_c).batches
    finally:
        syslog.BLOCK_BYTES = saved
    assert sum(b.num_rows for b in whole) == len(lines)
    assert _sorted_rows(cut) == _sorted_rows(whole)
    assert cut_c.snapshot() == whole_c.snapshot()
