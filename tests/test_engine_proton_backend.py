"""The Proton backend without a Proton server (none can run here): address errors, garbage answers,
DDL and insert payloads, and result conversion. With a server, the same calls run for real."""

from __future__ import annotations

import os
import socket
import threading
import time

import pyarrow as pa
import pytest

from srql_compiler.binder import bind
from streams.catalog import CATALOG
from streams.proton_backend import (
    ProtonEngine,
    ProtonError,
    ProtonUnavailable,
    insert_columns,
    insert_statement,
    rows_to_table,
)
from streams.simulate import Simulator


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Peer:
    """A TCP listener on loopback that answers each connection with ``reply`` (or nothing) — a stand-in for
    a wrong service on Proton's port, since no real Proton can run here."""

    def __init__(self, reply: bytes | None) -> None:
        self.reply = reply
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.reply is not None:
                conn.sendall(self.reply)
                conn.close()

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


def test_unreachable_proton_is_a_clear_error():
    eng = ProtonEngine(f"proton://default:@127.0.0.1:{_free_port()}/default", timeout=2)
    with pytest.raises(ProtonUnavailable, match=r"cannot reach Proton at proton://127\.0\.0\.1:\d+.*embedded engine"):
        eng.ping()
    with pytest.raises(ProtonUnavailable):
        eng.create_streams(["logs"])
    plan, sql = eng.compile("STREAM logs GROUP BY device WINDOW 1m")
    assert "tumble(syslog_stream" in sql and plan.window is not None
    with pytest.raises(ProtonUnavailable):
        eng.register("STREAM logs GROUP BY device WINDOW 1m")


@pytest.mark.parametrize("reply", [os.urandom(64), b"HTTP/1.1 400 Bad Request\r\n\r\n", b"\x00", b""])
def test_garbage_on_the_port_is_a_clear_error_not_a_hang(reply):
    peer = _Peer(reply)
    try:
        eng = ProtonEngine(f"proton://default:@127.0.0.1:{peer.port}/default", timeout=2)
        t0 = time.monotonic()
        with pytest.raises(ProtonError):
            eng.ping()
        assert time.monotonic() - t0 < 30  # bounded by the configured timeouts, not hung
    finally:
        peer.close()


def test_silent_peer_times_out():
    peer = _Peer(None)
    try:
        eng = ProtonEngine(f"proton://default:@127.0.0.1:{peer.port}/default", timeout=1)
        with pytest.raises(ProtonUnavailable):
            eng.ping()
    finally:
        peer.close()


def test_bad_url_is_refused():
    with pytest.raises(ProtonError, match="proton://"):
        ProtonEngine("http://127.0.0.1:8123")


def test_insert_payload_follows_the_catalog():
    logs = Simulator(devices=5, seed=1).syslog(1_764_000_000_000, 1_764_000_010_000)
    ent = CATALOG["logs"]
    assert insert_statement(ent).startswith("INSERT INTO syslog_stream (timestamp, device, source_ip,")
    cols = insert_columns(ent, logs.select(list(reversed(logs.column_names))))  # order comes from the catalog
    assert len(cols) == len(ent.fields) and all(len(c) == logs.num_rows for c in cols)
    assert cols[0][0].tzinfo is not None and cols[1] == logs.column("device").to_pylist()
    metrics = Simulator(devices=2, seed=1).gnmi(1_764_000_000_000, 1_764_000_002_000)
    labels = insert_columns(CATALOG["metrics"], metrics)[5]
    assert all(isinstance(v, dict) for v in labels)


def test_result_rows_become_arrow_of_the_plan_columns():
    plan = bind("STREAM logs GROUP BY device WINDOW 1m")
    from datetime import UTC, datetime

    t = datetime(2026, 1, 1, tzinfo=UTC)
    table = rows_to_table([(t, t, "r1", 3), (t, t, "r2", 4)], plan)
    assert table.schema.names == ["window_start", "window_end", "device", "count"]
    assert table.column("count").type == pa.uint64() and table.num_rows == 2
    with pytest.raises(ProtonError, match="columns"):
        rows_to_table([(1, 2)], plan)
