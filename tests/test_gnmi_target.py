"""The gNMI client against our own scripted target: every value type, ON_CHANGE and deletes, POLL and
ONCE, TLS and mTLS, username/password, reconnect with backoff, the CLI. Rows are compared with the
exact bytes the target sent (decoded by the generated protobuf classes) and with hand-written values."""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys

import pytest
from gnmi_helpers import LiveGnmi, ScriptedTarget, TargetServer, make_certs

from ingest.gnmi import SubscriptionOptions, TargetOptions, load_config, parse_path, subscribe_request
from ingest.gnmi_proto import gnmi_pb2 as g
from ingest.gnmi_wire import reference_decode

pytestmark = pytest.mark.timeout(90)
T0 = 1_700_000_000_000_000_000


def every_kind(ts: int = T0) -> list[g.SubscribeResponse]:
    n = g.Notification(timestamp=ts, prefix=parse_path("/interfaces/interface[name=eth0]/state"))
    values = {
        "counters/in-octets": g.TypedValue(uint_val=2**63 + 5),
        "counters/in-errors": g.TypedValue(int_val=-42),
        "enabled": g.TypedValue(bool_val=True),
        "temperature": g.TypedValue(double_val=41.25),
        "ratio": g.TypedValue(float_val=0.5),
        "oper-status": g.TypedValue(string_val="UP"),
        "description": g.TypedValue(ascii_val="uplink"),
        "speed": g.TypedValue(decimal_val=g.Decimal64(digits=-12345, precision=3)),
        "vlans": g.TypedValue(leaflist_val=g.ScalarArray(element=[g.TypedValue(uint_val=10),
                                                                  g.TypedValue(string_val="x")])),
        "mac": g.TypedValue(bytes_val=b"\x00\x1b\x21\x3a\x4b\x5c"),
        "blob": g.TypedValue(proto_bytes=b"\x08\x01"),
        "json": g.TypedValue(json_val=b'{"a": 1, "b": {"c": "d"}}'),
        "ietf": g.TypedValue(json_ietf_val=json.dumps(
            {"openconfig-if:counters": {"in-pkts": "18446744073709551615", "carrier": False},
             "addr": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "tags": ["a", "b"]}).encode()),
        "empty": g.TypedValue(),
    }  # fmt: skip
    for path, tv in values.items():
        n.update.add(path=parse_path(path), val=tv)
    n.delete.add().CopyFrom(parse_path("subinterfaces/subinterface[index=7]"))
    return [g.SubscribeResponse(update=n)]


def _target(port: int, **kw) -> TargetOptions:
    subs = kw.pop("subscriptions", [SubscriptionOptions(path="/interfaces", mode="sample", sample_interval_s=1)])
    t = TargetOptions(name="dut", address=f"127.0.0.1:{port}", subscriptions=subs, labels={"site": "lab"}, **kw)
    t.validate("t")
    return t


def _key(r: dict) -> str:
    v = r["value"]
    return repr((r["timestamp"], r["device"], r["metric"], "nan" if v is None or math.isnan(v) else v, r["value_str"],
            tuple(sorted(dict(r["labels"]).items())), r["deleted"]))  # fmt: skip


def _expected(sent: list[bytes]) -> list[tuple]:
    ref, bad = reference_decode(sent, ["dut"] * len(sent), {"dut": {"site": "lab"}})
    assert bad == []
    return sorted(map(_key, ref.to_pylist()))


def _rows_equal_sent(live: LiveGnmi, target: ScriptedTarget) -> list[dict]:
    """Wait until the recorded rows equal what the target sent (the decode thread may still be busy)."""
    with contextlib.suppress(AssertionError):
        live.wait_for(lambda: sorted(map(_key, live.rows())) == _expected(list(target.sent)), 15, "rows")
    rows = live.rows()
    assert sorted(map(_key, rows)) == _expected(list(target.sent))
    return rows


def test_every_value_kind_and_deletes() -> None:
    target = ScriptedTarget(every_kind)
    server = TargetServer(target)
    live = LiveGnmi([_target(server.port, mode="once")])
    try:
        live.wait_for(lambda: live.col.done.is_set(), 20, "the ONCE subscription to finish")
        rows = _rows_equal_sent(live, target)
        by = {r["metric"].removeprefix("interfaces/interface/state/"): r for r in rows}
        assert by["counters/in-octets"]["value"] == float(2**63 + 5)
        assert by["counters/in-errors"]["value"] == -42.0
        assert (by["enabled"]["value"], by["enabled"]["value_str"]) == (1.0, "true")
        assert by["temperature"]["value"] == 41.25 and by["ratio"]["value"] == 0.5
        assert by["oper-status"]["value_str"] == "UP" and math.isnan(by["oper-status"]["value"])
        assert by["description"]["value_str"] == "uplink"
        assert (by["speed"]["value"], by["speed"]["value_str"]) == (-12.345, "-12.345")
        assert by["vlans"]["value_str"] == '[10, "x"]'
        assert by["mac"]["value_str"] == "001b213a4b5c" and by["blob"]["value_str"] == "0801"
        assert by["json/a"]["value"] == 1.0 and by["json/b/c"]["value_str"] == "d"
        assert by["ietf/counters/in-pkts"]["value"] == float(2**64 - 1)
        assert by["ietf/counters/carrier"]["value_str"] == "false"
        addrs = sorted((dict(r["labels"])["addr_index"], r["value_str"])
                       for r in rows if r["metric"].endswith("addr/ip"))  # fmt: skip
        assert addrs == [("0", "10.0.0.1"), ("1", "10.0.0.2")]
        assert by["ietf/tags"]["value_str"] == '["a", "b"]'
        assert by["empty"]["value_str"] is None
        deleted = [r for r in rows if r["deleted"]]
        assert [(d["metric"], dict(d["labels"])) for d in deleted] == [
            ("interfaces/interface/state/subinterfaces/subinterface", {"site": "lab", "name": "eth0", "index": "7"})]
        assert all(dict(r["labels"])["name"] == "eth0" and r["device"] == "dut" for r in rows)
        assert rows[0]["timestamp"].timestamp() == T0 / 1e9
        assert live.status("dut")["state"] == "done" and live.status("dut")["sync_responses"] == 1
    finally:
        live.stop()
        server.stop()


def test_on_change_stream_with_deletes_and_subscription_request() -> None:
    target = ScriptedTarget(lambda: [])
    server = TargetServer(target)
    sub = [SubscriptionOptions(path="/interfaces/interface[name=eth1]/state/oper-status", mode="on_change")]
    live = LiveGnmi([_target(server.port, subscriptions=sub, encoding="proto")])
    try:
        live.wait_for(lambda: live.status("dut")["state"] == "synced", 20, "sync_response")
        req = target.requests[0].subscribe
        assert req.mode == g.SubscriptionList.STREAM and req.encoding == g.PROTO
        assert req.subscription[0].mode == g.ON_CHANGE
        assert [(e.name, dict(e.key)) for e in req.subscription[0].path.elem] == [
            ("interfaces", {}), ("interface", {"name": "eth1"}), ("state", {}), ("oper-status", {})]
        for i, state in enumerate(["DOWN", "UP", "DOWN"]):
            n = g.Notification(timestamp=T0 + i, update=[g.Update(path=parse_path(
                "/interfaces/interface[name=eth1]/state/oper-status"), val=g.TypedValue(string_val=state))])
            target.pushes.put(g.SubscribeResponse(update=n))
        n = g.Notification(timestamp=T0 + 9, delete=[parse_path("/interfaces/interface[name=eth1]")])
        target.pushes.put(g.SubscribeResponse(update=n))
        live.wait_for(lambda: len(live.rows()) == 4, 20, "3 changes and a delete")
        rows = _rows_equal_sent(live, target)
        assert [r["value_str"] for r in rows if not r["deleted"]] == ["DOWN", "UP", "DOWN"]
        assert [r["metric"] for r in rows if r["deleted"]] == ["interfaces/interface"]
    finally:
        live.stop()
        server.stop()


def test_poll_mode_sends_polls_and_records_each_snapshot() -> None:
    target = ScriptedTarget(every_kind)
    server = TargetServer(target)
    live = LiveGnmi([_target(server.port, mode="poll", poll_interval_s=0.2)])
    try:
        live.wait_for(lambda: target.polls >= 3, 20, "3 polls")
        live.lt.run(live.col.stop())  # stop() drains the decode worker: every sent response is decoded
        rows = live.col.collector.sink.table().to_pylist()
        assert sorted(map(_key, rows)) == _expected(target.sent)
        assert target.requests[0].subscribe.mode == g.SubscriptionList.POLL
        assert live.status("dut")["sync_responses"] >= 4
    finally:
        live.lt.close()
        server.stop()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory):
    return make_certs(tmp_path_factory.mktemp("gnmi_certs"))


def test_tls_verifies_the_target(certs) -> None:
    target = ScriptedTarget(every_kind)
    server = TargetServer(target, certs)
    good = _target(server.port, mode="once", tls=True, ca=str(certs["ca.crt"]))
    untrusted = _target(server.port, mode="once", tls=True)  # system roots do not know our CA
    untrusted.name = "untrusted"
    live = LiveGnmi([good, untrusted])
    try:
        live.wait_for(lambda: live.status("dut")["state"] == "done", 20, "the TLS target")
        live.wait_for(lambda: live.status("untrusted")["errors"] >= 2, 20, "retries against the untrusted target")
        live.wait_for(lambda: {r["device"] for r in live.rows()} == {"dut"}, 10, "rows of dut only")
        assert live.status("untrusted")["state"] in ("backoff", "connecting")
    finally:
        live.stop()
        server.stop()


def test_mtls_requires_the_client_certificate(certs) -> None:
    target = ScriptedTarget(every_kind)
    server = TargetServer(target, certs, mtls=True)
    with_cert = _target(server.port, mode="once", tls=True, ca=str(certs["ca.crt"]), cert=str(certs["client.crt"]),
                        key=str(certs["client.key"]))  # fmt: skip
    without = _target(server.port, mode="once", tls=True, ca=str(certs["ca.crt"]))
    without.name = "nocert"
    live = LiveGnmi([with_cert, without])
    try:
        live.wait_for(lambda: live.status("dut")["state"] == "done", 20, "the mTLS target")
        live.wait_for(lambda: live.status("nocert")["errors"] >= 1, 20, "the handshake without a client cert to fail")
        live.wait_for(lambda: {r["device"] for r in live.rows()} == {"dut"}, 10, "rows of dut only")
        assert target.sessions == 1
    finally:
        live.stop()
        server.stop()


def test_username_password_and_reconnect_with_backoff() -> None:
    target = ScriptedTarget(every_kind, password="s3cret")
    server = TargetServer(target)
    wrong = _target(server.port, username="admin", password="nope")
    wrong.name = "wrong"
    right = _target(server.port, username="admin", password="s3cret")
    live = LiveGnmi([right, wrong])
    try:
        live.wait_for(lambda: live.status("dut")["state"] == "synced", 20, "the authenticated stream")
        live.wait_for(lambda: live.status("wrong")["errors"] >= 2, 20, "the rejected login to be retried")
        # gRPC may report a transient INTERNAL on a loaded machine; the rejection itself must be seen
        live.wait_for(lambda: live.status("wrong")["last_error"].startswith("UNAUTHENTICATED"), 30,
                      "the wrong password to be rejected as UNAUTHENTICATED")
        server.restart()  # the target goes away and comes back on the same port
        live.wait_for(lambda: live.status("dut")["connects"] >= 2 and live.status("dut")["state"] == "synced", 30,
                      "a reconnect after the restart")  # fmt: skip
        assert target.sessions >= 2
        live.wait_for(lambda: {r["device"] for r in live.rows()} == {"dut"}, 10, "rows of dut only")
    finally:
        live.stop()
        server.stop()


def test_cli_quick_look_once(tmp_path) -> None:
    target = ScriptedTarget(every_kind)
    server = TargetServer(target)
    try:
        r = subprocess.run([sys.executable, "-m", "ingest.cli", "gnmi", "--target", f"127.0.0.1:{server.port}",
                            "--path",
                            "/interfaces", "--mode", "once", "--insecure"], capture_output=True, text=True,
                           timeout=60, env=dict(os.environ, PYTHONPATH=os.getcwd()))  # fmt: skip
        assert r.returncode == 0, r.stderr
        rows = [json.loads(line) for line in r.stdout.splitlines()]
        ref, _ = reference_decode(target.sent, [f"127.0.0.1:{server.port}"] * len(target.sent))
        assert len(rows) == ref.num_rows
        assert {x["metric"] for x in rows} == set(ref.column("metric").to_pylist())
        out = tmp_path / "m.parquet"
        r = subprocess.run([sys.executable, "-m", "ingest.gnmi", "--target", f"127.0.0.1:{server.port}", "--path",
                            "/interfaces", "--mode", "once", "--insecure", "--output", str(out)], capture_output=True,
                           text=True, timeout=60, env=dict(os.environ, PYTHONPATH=os.getcwd()))  # fmt: skip
        assert r.returncode == 0, r.stderr
        import pyarrow.parquet as pq

        assert pq.read_table(out).num_rows == ref.num_rows
    finally:
        server.stop()


@pytest.mark.parametrize(
    "toml, error",
    [
        ('[[targets]]\naddress = "x"\n', "targets[0].address: expected HOST:PORT"),
        ('[[targets]]\naddress = "h:1"\nmode = "push"\n[[targets.subscriptions]]\npath = "/a"\n', "targets[0].mode"),
        ('[[targets]]\naddress = "h:1"\n', "at least one [[targets.subscriptions]]"),
        ('[[targets]]\naddress = "h:1"\ncert = "c"\ntls = true\n[[targets.subscriptions]]\npath = "/a"\n', "mTLS"),
        ('[[targets]]\naddress = "h:1"\n[[targets.subscriptions]]\npath = "/a[k"\n', "unbalanced"),
        ('[[targets]]\naddress = "h:1"\n[[targets.subscriptions]]\npath = "/a"\nmode = "x"\n', "mode"),
        ('[listen]\nudp = []\n', "unknown section [listen]"),
        ('[[targets]]\naddress = "h:1"\nport = 3\n', "unknown key targets[0].port"),
    ],
)
def test_config_errors_are_clear(tmp_path, toml: str, error: str) -> None:
    from ingest.config import ConfigError

    p = tmp_path / "g.toml"
    p.write_text(toml)
    with pytest.raises(ConfigError, match=error.replace("[", r"\[").replace("]", r"\]")):
        load_config(str(p))


def test_config_example_builds_the_request(tmp_path) -> None:
    p = tmp_path / "g.toml"
    p.write_text("""
[[targets]]
name = "core1"
address = "127.0.0.1:57400"
encoding = "proto"
prefix = "openconfig:/interfaces"
labels = { site = "ams" }
[[targets.subscriptions]]
path = "interface[name=Ethernet1\\\\]x]/state/counters"
mode = "sample"
sample_interval_s = 5
""")
    _, (t,) = load_config(str(p))
    req = subscribe_request(t).subscribe
    assert req.prefix.origin == "openconfig" and req.prefix.elem[0].name == "interfaces"
    assert dict(req.subscription[0].path.elem[0].key) == {"name": "Ethernet1]x"}
    assert req.subscription[0].sample_interval == 5_000_000_000 and req.encoding == g.PROTO
