# ruff: noqa: E501  (golden rows are easier to read one per line)
"""BMP/BGP decoding on hand-built sessions (every message type, ADD-PATH, AS4_PATH, IPv6), the
per-router session isolation on malformed input, the CLI's flush on SIGTERM, and hypothesis fuzzing."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest
from bmp_helpers import (
    LiveBmp,
    as_path_attr,
    attr,
    bgp_message,
    bmp,
    free_port,
    initiation,
    mp_reach_v6,
    mp_unreach_v6,
    peer_down,
    peer_up,
    route_monitoring,
    standard_attrs,
    statistics,
    update,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.bgp import BgpError, UpdateDecoder
from ingest.bmp import BmpDecoder, BmpFramer, BmpOptions
from ingest.collector import FramingError
from ingest.core import Counters, Packet

pytestmark = pytest.mark.timeout(120)


def _decode(messages: list[bytes], decoder: BmpDecoder | None = None) -> tuple[BmpDecoder, Counters, list]:
    dec = decoder or BmpDecoder()
    counters = Counters()
    frames = BmpFramer().feed(b"".join(messages))
    res = dec.decode([Packet(frames, "10.0.0.1", 5000, 1_000, "tcp")], counters)
    rows = [r for b in res.batches for r in b.to_pylist()]
    return dec, counters, rows


def _session() -> list[bytes]:
    v4 = standard_attrs()
    legacy = (attr(1, b"\x02") + as_path_attr([(2, [65002, 23456]), (1, [64600, 64601])], asn_size=2)
              + attr(3, bytes([198, 51, 100, 9])) + as_path_attr([(2, [4200000000]), (1, [64600, 64601])], code=17))  # fmt: skip
    return [
        initiation("edge1", "router os 1.0"),
        peer_up("192.0.2.1", 65002, add_path=3),
        route_monitoring(update(["203.0.113.0/24"], v4, ["198.51.100.0/24", "198.51.100.128/25"], add_path=True)),
        route_monitoring(update(attrs=attr(1, b"\x00") + as_path_attr([(2, [65002])])
                                + mp_reach_v6("2001:db8::1", ["2001:db8:1::/48", "2001:db8::/32"], add_path=True))),
        route_monitoring(update(attrs=mp_unreach_v6(["2001:db8:9::/48"])), "2001:db8::2", 65003, flags=0x40),
        route_monitoring(update(attrs=legacy, nlri=["192.0.2.0/26"]), "192.0.2.7", 65004, flags=0x20),
        route_monitoring(update(attrs=standard_attrs(med=None), nlri=["0.0.0.0/0"]), "0.0.0.0", 65001, peer_type=3),
        route_monitoring(update()),  # End-of-RIB: no rows
        statistics("192.0.2.1", {7: 12, 0: 1}),
        peer_down("192.0.2.1", 65002, 2, b"\x00\x05"),
        bmp(5, b"\x00\x01\x00\x02\x00\x00"),  # Termination, reason 0
    ]


def test_whole_session_golden() -> None:
    dec, counters, rows = _decode(_session())
    ts = rows[0]["timestamp"]
    got = [(r["peer"], r["peer_as"], r["prefix"], r["action"], r["path_id"], r["as_path"], r["next_hop"], r["origin"],
            r["med"], r["local_pref"], r["communities"], r["large_communities"], r["post_policy"], r["loc_rib"])
           for r in rows]  # fmt: skip
    comms, large = ["65002:100", "65002:200"], ["65002:1:2"]
    assert got == [
        ("192.0.2.1", 65002, "198.51.100.0/24", "announce", 1, [65002, 64512], "198.51.100.1", "igp", 50, 100, comms, large, False, False),
        ("192.0.2.1", 65002, "198.51.100.128/25", "announce", 2, [65002, 64512], "198.51.100.1", "igp", 50, 100, comms, large, False, False),
        ("192.0.2.1", 65002, "203.0.113.0/24", "withdraw", 1, [], None, None, None, None, [], [], False, False),
        ("192.0.2.1", 65002, "2001:db8:1::/48", "announce", 1, [65002], "2001:db8::1", "igp", None, None, [], [], False, False),
        ("192.0.2.1", 65002, "2001:db8::/32", "announce", 2, [65002], "2001:db8::1", "igp", None, None, [], [], False, False),
        ("2001:db8::2", 65003, "2001:db8:9::/48", "withdraw", 0, [], None, None, None, None, [], [], True, False),
        ("192.0.2.7", 65004, "192.0.2.0/26", "announce", 0, [65002, 4200000000, 64600, 64601], "198.51.100.9", "incomplete", None, None, [], [], False, False),
        ("0.0.0.0", 65001, "0.0.0.0/0", "announce", 0, [65002, 64512], "198.51.100.1", "igp", None, 100, comms, large, False, True),
    ]  # fmt: skip
    assert ts.timestamp() == 1_700_000_000.123
    peers = dec.take_peer_events().to_pylist()
    assert [(p["peer"], p["state"]) for p in peers] == [("192.0.2.1", "up"), ("192.0.2.1", "down")]
    assert "addpath=ipv4-unicast:2,ipv6-unicast:2" in peers[0]["reason"]
    assert peers[1]["reason"] == "2: local system closed, FSM event 5"
    (state,) = dec.router_status()
    assert (state["sys_name"], state["sys_descr"]) == ("edge1", "router os 1.0")
    assert state["stats"]["192.0.2.1"] == {"adj_rib_in_routes": 12, "rejected_prefixes": 1}
    assert state["messages"]["route_monitoring"] == 6 and state["messages"]["termination"] == 1
    assert counters.total("records") == len(rows) and counters.drops() == {}


def test_route_mirroring_update_becomes_rows() -> None:
    upd = update(attrs=standard_attrs(), nlri=["198.51.100.0/24"])
    mirrored = bmp(6, bytes(route_monitoring(b"")[6:48]) + (0).to_bytes(2, "big") + len(upd).to_bytes(2, "big") + upd)
    _, counters, rows = _decode([mirrored])
    assert [(r["prefix"], r["action"]) for r in rows] == [("198.51.100.0/24", "announce")]
    assert counters.drops() == {}


@pytest.mark.parametrize(
    "bad, reason",
    [
        (route_monitoring(bgp_message(2, b"\x00\x00\x00\x00\x21\xc6\x33\x64\x00\x00")), "prefix length"),
        (route_monitoring(update(attrs=attr(1, b"\x07"), nlri=["198.51.100.0/24"])), "ORIGIN"),
        (bmp(0, b"\x00" * 20), "per-peer header"),
        (bmp(3, route_monitoring(b"")[6:48] + b"\x00" * 20 + b"\xff" * 16), "OPEN"),
        (route_monitoring(update(attrs=as_path_attr([(9, [1])]), nlri=["198.51.100.0/24"])), "segment type"),
    ],
)
def test_malformed_message_is_counted_and_ends_the_session(bad: bytes, reason: str) -> None:
    closed: list[tuple[str, int, str]] = []
    dec = BmpDecoder()
    dec.on_malformed = lambda r, p, why: closed.append((r, p, why))
    good = route_monitoring(update(attrs=standard_attrs(), nlri=["203.0.113.0/24"]))
    _, counters, rows = _decode([good, bad, good], dec)
    assert [r["prefix"] for r in rows] == ["203.0.113.0/24"]  # the one before the bad message
    assert counters.drops() == {"malformed": 2}  # the bad one and the one queued after it
    assert closed and closed[0][:2] == ("10.0.0.1", 5000) and reason in closed[0][2]


def test_framer_rejects_wrong_version_and_sizes() -> None:
    good = initiation()
    for bad, what in ((b"\x01" + good[1:], "version"), (bytes([3, 0, 0, 0, 2, 0]), "too short"),
                      (bytes([3, 0x7F, 0, 0, 0, 0]), "too long"), (bytes([3, 0, 0, 0, 6, 9]), "type")):  # fmt: skip
        with pytest.raises(FramingError, match=what) as e:
            BmpFramer().feed(good + bad)
        assert e.value.frames == [good]
    f = BmpFramer()
    parts = [f.feed(good[i : i + 1]) for i in range(len(good))]  # byte by byte
    assert [m for part in parts for m in part] == [good]


def _send(port: int, data: bytes, source: str = "127.0.0.1") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), source_address=(source, 0))
    s.sendall(data)
    return s


def _closed_by_peer(s: socket.socket, timeout: float = 10) -> bool:
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:  # closed with our bytes unread: the kernel answers with a reset
        return True
    except TimeoutError:
        return False


def test_malformed_router_is_closed_others_keep_serving() -> None:
    live = LiveBmp()
    try:
        good_a = route_monitoring(update(attrs=standard_attrs(), nlri=["203.0.113.0/24"]))
        bad = route_monitoring(update(attrs=attr(1, b"\x07"), nlri=["198.51.100.0/24"]))
        healthy = _send(live.port, initiation("b") + peer_up(), source="127.0.0.2")
        broken = _send(live.port, initiation("a") + good_a + bad + good_a)
        assert _closed_by_peer(broken)
        healthy.sendall(route_monitoring(update(attrs=standard_attrs(), nlri=["198.51.100.0/25"])))
        live.wait_for(lambda: (t := live.updates()) is not None and t.num_rows == 2, 10, "two rows")
        rows = live.updates().to_pylist()
        assert sorted((r["router"], r["prefix"]) for r in rows) == [("127.0.0.1", "203.0.113.0/24"),
                                                                     ("127.0.0.2", "198.51.100.0/25")]  # fmt: skip
        health = live.col.health()
        assert health["exporters"]["127.0.0.1"]["drop_malformed"] >= 1
        assert "drop_malformed" not in health["exporters"]["127.0.0.2"]
        assert health["connected"] == 1
        healthy.sendall(b"\x07garbage")  # a framing error closes that session as well
        assert _closed_by_peer(healthy)
        healthy.close()
        broken.close()
    finally:
        live.stop()


def test_max_routers_refuses_extra_sessions() -> None:
    live = LiveBmp(BmpOptions(max_routers=1))
    try:
        first = _send(live.port, initiation())
        live.wait_for(lambda: live.col.health()["connected"] == 1, 5, "first router")
        second = _send(live.port, initiation())
        assert _closed_by_peer(second)
        assert live.col.health()["refused"] == 1
        first.close()
        second.close()
    finally:
        live.stop()


def test_cli_flushes_both_outputs_on_sigterm(tmp_path) -> None:
    port, health_port = free_port(), free_port()
    out = tmp_path / "bgp.parquet"
    cfg = tmp_path / "bmp.toml"
    cfg.write_text(f'[health]\nlisten = "127.0.0.1:{health_port}"\nstats_interval_s = 0\n')
    proc = subprocess.Popen([sys.executable, "-m", "ingest.cli", "bmp", "--listen", f"127.0.0.1:{port}", "--output",
                             str(out), "--config", str(cfg)], stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=os.getcwd()))  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                assert time.monotonic() < deadline, "the bmp CLI did not start listening"
                time.sleep(0.2)
        s.sendall(b"".join(_session()[:-1]))  # all but the Termination: the session stays up
        time.sleep(1)
        with socket.create_connection(("127.0.0.1", health_port), timeout=5) as h:
            h.sendall(b"GET / HTTP/1.0\r\n\r\n")
            reply = b""
            while chunk := h.recv(65536):
                reply += chunk
        health = json.loads(reply.split(b"\r\n\r\n", 1)[1])
        (router,) = health["routers"]
        assert router["sys_name"] == "edge1" and health["connected"] == 1
        s.close()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert pq.read_table(out).num_rows == 8
    peers = pq.read_table(tmp_path / "bgp.peers.parquet")
    assert peers.column("state").to_pylist() == ["up", "down"]
    assert '"event": "stopped"' in err


def test_cli_config_errors_are_clear(tmp_path) -> None:
    cfg = tmp_path / "bmp.toml"
    cfg.write_text('[bmp]\nmax_routers = "many"\n')
    r = subprocess.run([sys.executable, "-m", "ingest.bmp", "--config", str(cfg), "--listen", "127.0.0.1:0",
                        "--output", str(tmp_path / "x.parquet")], capture_output=True, text=True, timeout=30)  # fmt: skip
    assert r.returncode == 2 and "bmp.max_routers must be int" in r.stderr
    r = subprocess.run([sys.executable, "-m", "ingest.bmp", "--output", str(tmp_path / "x.parquet")],
                       capture_output=True, text=True, timeout=30)  # fmt: skip
    assert r.returncode == 2 and "nothing to listen on" in r.stderr


# ---- fuzzing ---------------------------------------------------------------------------------------
SEEDS = _session()
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    msg = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        i = draw(st.integers(0, max(0, len(msg) - 1)))
        if op == "flip" and msg:
            msg[i] = draw(st.integers(0, 255))
        elif op == "cut":
            del msg[i : i + draw(st.integers(1, 8))]
        else:
            msg[i:i] = draw(st.binary(min_size=1, max_size=8))
    if len(msg) >= 6 and draw(st.booleans()):  # keep the common header consistent so the body is reached
        msg[0], msg[1:5] = 3, len(msg).to_bytes(4, "big")
    return bytes(msg)


@FUZZ
@given(st.lists(st.one_of(mutated(), st.binary(max_size=64)), min_size=1, max_size=6))
def test_fuzz_decoder_never_raises(messages: list[bytes]) -> None:
    dec = BmpDecoder(BmpOptions(attribute_cache=8))
    counters = Counters()
    frames: list[bytes] = []
    try:
        frames = BmpFramer(4096).feed(b"".join(messages))
    except FramingError as e:
        frames = e.frames
        counters.drop("x", "malformed")
    dec.decode([Packet(frames, "10.0.0.1", 1, 0, "tcp"), Packet([], "10.0.0.1", 1, 0, "bmp-close")], counters)
    assert dec.routers == {}  # the close sentinel drops the session state
    assert len(dec.updates._cache) <= 8
    snap = counters.snapshot().get("10.0.0.1", {})
    assert snap.get("packets", 0) == len(frames)


@FUZZ
@given(st.binary(max_size=200), st.sampled_from([2, 4]), st.booleans())
def test_fuzz_update_decoder_raises_only_bgp_error(body: bytes, asn_size: int, add_path: bool) -> None:
    msg = b"\xff" * 16 + (19 + len(body)).to_bytes(2, "big") + b"\x02" + body
    fams = frozenset({(1, 1), (2, 1)}) if add_path else frozenset()
    with contextlib.suppress(BgpError):
        UpdateDecoder(4).decode(msg, asn_size, fams)
