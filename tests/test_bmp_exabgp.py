# ruff: noqa: E501  (the ExaBGP script below holds long announce lines)
"""BMP from a real router: ExaBGP announces and withdraws routes to gobgpd, which exports BMP to us.

One session for the whole module (gobgpd + ExaBGP take a few seconds to establish). What ExaBGP
injects is the truth; our rows must equal it, and must agree with tshark's and pmbmpd's decoding of
the same BMP session captured on loopback with tcpdump.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bmp_helpers import Daemon, LiveBmp, free_port, need

pytestmark = pytest.mark.timeout(180)

# (prefix, next hop, origin, as path, med, local pref, communities, large communities) as ExaBGP sends them
INJECTED = [
    ("203.0.113.16/28", "198.51.100.254", "igp", [65002, 64512], 101, None, ["65002:1", "65002:2"], []),
    ("203.0.113.32/28", "198.51.100.253", "egp", [65002, 64513, 64600, 64601], None, None, [], ["65002:7:9"]),
    ("198.51.100.0/25", "198.51.100.254", "incomplete", [65002, 4200000000], None, None, [], []),
    ("2001:db8:5::/48", "2001:db8::fe", "igp", [65002, 64514], None, None, ["65002:6"], []),
    ("2001:db8:6::/48", "2001:db8::fd", "igp", [65002], 7, None, [], []),
]
WITHDRAWN = {"203.0.113.16/28", "2001:db8:6::/48"}

ANNOUNCE_PY = r'''
import os, sys, time
flag = sys.argv[1]
time.sleep(1)
for line in [
    "announce route 203.0.113.16/28 next-hop 198.51.100.254 origin igp med 101 community [65002:1 65002:2] as-path [65002 64512]",
    "announce route 203.0.113.32/28 next-hop 198.51.100.253 origin egp large-community [65002:7:9] as-path [65002 64513 ( 64600 64601 )]",
    "announce route 198.51.100.0/25 next-hop 198.51.100.254 origin incomplete as-path [65002 4200000000]",
    "announce route 2001:db8:5::/48 next-hop 2001:db8::fe as-path [65002 64514] community [65002:6]",
    "announce route 2001:db8:6::/48 next-hop 2001:db8::fd med 7 as-path [65002]",
]:
    sys.stdout.write(line + "\n"); sys.stdout.flush()
while not os.path.exists(flag):
    time.sleep(0.2)
for line in ["withdraw route 203.0.113.16/28 next-hop 198.51.100.254",
             "withdraw route 2001:db8:6::/48 next-hop 2001:db8::fd"]:
    sys.stdout.write(line + "\n"); sys.stdout.flush()
while True:
    time.sleep(1)
'''

GOBGP_TOML = """
[global.config]
  as = 65001
  router-id = "1.1.1.1"
  port = {bgp_port}
  local-address-list = ["127.0.0.1"]
[[neighbors]]
  [neighbors.config]
    neighbor-address = "127.0.0.1"
    peer-as = 65002
  [neighbors.transport.config]
    passive-mode = true
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
[[bmp-servers]]
  [bmp-servers.config]
    address = "127.0.0.1"
    port = {bmp_port}
    route-monitoring-policy = "all"
    statistics-timeout = 15
"""

EXABGP_CONF = """
process announcer {{ run {python} {script} {flag}; encoder text; }}
neighbor 127.0.0.1 {{
    router-id 4.4.4.4; local-address 127.0.0.1; local-as 65002; peer-as 65001;
    connect {bgp_port};
    family {{ ipv4 unicast; ipv6 unicast; }}
    api {{ processes [ announcer ]; }}
}}
"""


def _wait_file(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not (path.exists() and path.stat().st_size > 0):
        time.sleep(0.1)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory):
    """Run the whole scenario once; yield the rows, peer events, pcap path and router health."""
    d = tmp_path_factory.mktemp("bmp_exabgp")
    for b in ("gobgpd", "exabgp", "tcpdump"):
        need(b)
    live = LiveBmp()
    first = len(Daemon.instances)  # every daemon started below is stopped in the finally
    try:
        bgp_port, api_port = free_port(), free_port()
        pcap = d / "bmp.pcap"
        dump = Daemon(["tcpdump", "-i", "lo", "-U", "-w", str(pcap), f"tcp port {live.port}"], d / "tcpdump.log")
        _wait_file(d / "tcpdump.log", 5)
        time.sleep(0.5)
        (d / "gobgp.toml").write_text(GOBGP_TOML.format(bgp_port=bgp_port, bmp_port=live.port))
        gobgp = Daemon(["gobgpd", "-f", str(d / "gobgp.toml"), "--api-hosts", f"127.0.0.1:{api_port}", "-p",
                        "--pprof-disable"], d / "gobgpd.log")  # fmt: skip
        flag = d / "withdraw.flag"
        (d / "announce.py").write_text(ANNOUNCE_PY)
        (d / "exabgp.conf").write_text(EXABGP_CONF.format(python=sys.executable, script=d / "announce.py",
                                                          flag=flag, bgp_port=bgp_port))  # fmt: skip
        env = dict(os.environ, **{"exabgp.daemon.user": "root", "exabgp.tcp.bind": "127.0.0.1",
                                  "exabgp.tcp.port": str(free_port()), "exabgp.log.destination": "stdout",
                                  "exabgp.daemon.daemonize": "false"})  # fmt: skip
        exa = Daemon(["exabgp", str(d / "exabgp.conf")], d / "exabgp.log", env=env)
        # 5 prefixes x 3 views (pre-policy, post-policy, Loc-RIB)
        live.wait_for(lambda: _count(live, "announce") >= 15, 60, "15 announce rows")
        flag.touch()
        live.wait_for(lambda: _count(live, "withdraw") >= 6, 30, "6 withdraw rows")
        health_live = live.col.health()
        exa.stop()
        live.wait_for(lambda: "down" in _states(live), 30, "a peer-down event")
        gobgp.stop()
        live.wait_for(lambda: live.col.health()["connected"] == 0, 15, "gobgpd to close its BMP session")
        _wait_capture(pcap, live.col.counters.snapshot()["127.0.0.1"]["bytes"])
        dump.stop()  # the capture is complete before tshark and pmbmpd read it
        live.settle()
        yield {"updates": live.updates(), "peers": live.peers(), "pcap": pcap, "dir": d,
               "health": live.col.health(), "health_live": health_live}  # fmt: skip
    finally:
        for proc in reversed(Daemon.instances[first:]):
            proc.stop()
        live.stop()


def _wait_capture(pcap: Path, payload_bytes: int, timeout: float = 20) -> None:
    """Let tcpdump catch up (it reads the kernel's ring buffer behind us): the file holds at least the BMP
    payload we received and has stopped growing."""
    deadline, last, still = time.monotonic() + timeout, -1, 0
    while time.monotonic() < deadline:
        size = pcap.stat().st_size if pcap.exists() else 0
        still = still + 1 if size == last else 0
        if size > payload_bytes and still >= 5:
            return
        last = size
        time.sleep(0.3)


def _count(live: LiveBmp, action: str) -> int:
    t = live.updates()
    return 0 if t is None else sum(1 for a in t.column("action").to_pylist() if a == action)


def _states(live: LiveBmp) -> list[str]:
    t = live.peers()
    return [] if t is None else t.column("state").to_pylist()


def _rows(session: dict, **where: object) -> list[dict]:
    rows = session["updates"].to_pylist()
    return [r for r in rows if all(r[k] == v for k, v in where.items())]


def test_announcements_equal_what_exabgp_injected(session: dict) -> None:
    for view in ({"post_policy": False, "loc_rib": False}, {"post_policy": True, "loc_rib": False}):
        got = {r["prefix"]: r for r in _rows(session, action="announce", **view)}
        assert sorted(got) == sorted(p[0] for p in INJECTED), view
        for prefix, nh, origin, path, med, lp, comms, large in INJECTED:
            r = got[prefix]
            assert (r["next_hop"], r["origin"], r["as_path"], r["med"], r["local_pref"], r["communities"],
                    r["large_communities"]) == (nh, origin, path, med, lp, comms, large), prefix  # fmt: skip
            assert (r["router"], r["peer"], r["peer_as"], r["path_id"]) == ("127.0.0.1", "127.0.0.1", 65002, 0)


def test_loc_rib_rows(session: dict) -> None:
    got = {r["prefix"]: r for r in _rows(session, action="announce", loc_rib=True)}
    assert sorted(got) == sorted(p[0] for p in INJECTED)
    for prefix, nh, _origin, path, *_ in INJECTED:
        assert (got[prefix]["next_hop"], got[prefix]["as_path"]) == (nh, path)


def test_withdrawals_are_withdraw_rows(session: dict) -> None:
    wd = _rows(session, action="withdraw", post_policy=False, loc_rib=False)
    # the scripted withdrawals come first; the rest of the pre-policy withdrawals follow the peer down
    scripted = [r["prefix"] for r in wd[:2]]
    assert sorted(scripted) == sorted(WITHDRAWN)
    for r in wd:
        assert r["as_path"] == [] and r["next_hop"] is None and r["origin"] is None


def test_peer_up_and_down_recorded(session: dict) -> None:
    events = session["peers"].to_pylist()
    states = [(e["peer"], e["peer_as"], e["state"]) for e in events]
    assert states[0] == ("127.0.0.1", 65002, "up")
    assert ("127.0.0.1", 65002, "down") in states
    up = events[0]["reason"]
    assert "peer open: as=65002 id=4.4.4.4" in up and "ipv6-unicast" in up
    down = next(e for e in events if e["state"] == "down")["reason"]
    assert down.startswith(("1:", "2:", "3:", "4:")), down


def test_router_identity_and_counters(session: dict) -> None:
    (router,) = session["health_live"]["routers"]
    assert router["sys_name"] == "GoBGP" and router["sys_descr"]  # from the Initiation message
    assert router["messages"]["initiation"] == 1 and router["messages"]["peer_up"] == 1
    assert session["health"]["exporters"]["127.0.0.1"].get("drop_malformed", 0) == 0
    assert session["health"]["exporters"]["127.0.0.1"]["records"] == session["updates"].num_rows
    assert session["health"]["routers"] == []  # state is dropped when the session ends (bounded memory)


def _tshark(pcap: Path, port: int, fields: list[str]) -> list[list[str]]:
    out = subprocess.run(
        ["tshark", "-r", str(pcap), "-d", f"tcp.port=={port},bmp", "-Y", "bmp.type == 0", "-T", "fields",
         "-E", "occurrence=a", "-E", "aggregator=,", *[x for f in fields for x in ("-e", f)]],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return [line.split("\t") for line in out.stdout.splitlines() if line]


def test_rows_match_tshark_decoding(session: dict) -> None:
    """Every prefix (address part: tshark shows lengths separately) and next hop, as tshark decodes them."""
    need("tshark")
    fields = ["bgp.nlri_prefix", "bgp.mp_reach_nlri_ipv6_prefix", "bgp.withdrawn_prefix",
              "bgp.mp_unreach_nlri_ipv6_prefix", "bgp.update.path_attribute.next_hop",
              "bgp.update.path_attribute.mp_reach_nlri.next_hop.ipv6"]  # fmt: skip
    want_ann, want_wd, want_nh = [], [], set()
    for row in _tshark(session["pcap"], _bmp_port(session), fields):
        row += [""] * (len(fields) - len(row))
        want_ann += [p for p in ",".join(x for x in row[:2] if x).split(",") if p]
        want_wd += [p for p in ",".join(x for x in row[2:4] if x).split(",") if p]
        want_nh |= {p for p in ",".join(x for x in row[4:6] if x).split(",") if p}
    rows = session["updates"].to_pylist()
    assert sorted(r["prefix"].split("/")[0] for r in rows if r["action"] == "announce") == sorted(want_ann)
    assert sorted(r["prefix"].split("/")[0] for r in rows if r["action"] == "withdraw") == sorted(want_wd)
    assert {r["next_hop"] for r in rows if r["action"] == "announce"} == want_nh


def test_rows_match_pmbmpd_decoding(session: dict) -> None:
    need("pmbmpd")
    out = session["dir"] / "pmbmpd.json"
    port = _bmp_port(session)
    subprocess.run(["pmbmpd", "-I", str(session["pcap"]), "-T", f"tcp port {port}", "-Y", "1", "-o", str(out)],
                   capture_output=True, timeout=60, check=False)  # fmt: skip
    records = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    # pmbmpd drops RFC 9069 Loc-RIB messages (no peer up for 0.0.0.0): compare the Adj-RIB-In views only
    want = sorted((r["ip_prefix"], "withdraw" if r["log_type"] == "withdraw" else "announce", bool(r["is_post"]),
                   r.get("bgp_nexthop"), _flat(r.get("as_path", "")), r.get("comms", ""))
                  for r in records if r.get("bmp_msg_type") == "route_monitor")  # fmt: skip
    rows = [r for r in session["updates"].to_pylist() if not r["loc_rib"]]
    got = sorted((r["prefix"], r["action"], r["post_policy"],
                  r["next_hop"] if r["action"] == "announce" else _pm_nh(records, r),
                  " ".join(map(str, r["as_path"])) if r["action"] == "announce" else _pm_path(records, r),
                  " ".join(r["communities"]) if r["action"] == "announce" else _pm_comms(records, r))
                 for r in rows)  # fmt: skip
    assert got == want


def _flat(as_path: str) -> str:
    """pmbmpd writes an AS_SET as {a,b}; bgp_updates flattens its members in order."""
    return as_path.replace("{", "").replace("}", "").replace(",", " ")


def _bmp_port(session: dict) -> int:
    out = subprocess.run(["tshark", "-r", str(session["pcap"]), "-T", "fields", "-e", "tcp.dstport", "-c", "1"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return int(out.split()[0])


def _pm_withdraw(records: list[dict], r: dict) -> dict:
    return next(x for x in records if x.get("ip_prefix") == r["prefix"] and x.get("log_type") == "withdraw")


def _pm_nh(records: list[dict], r: dict) -> str | None:
    return _pm_withdraw(records, r).get("bgp_nexthop")


def _pm_path(records: list[dict], r: dict) -> str:
    return _flat(_pm_withdraw(records, r).get("as_path", ""))


def _pm_comms(records: list[dict], r: dict) -> str:
    return _pm_withdraw(records, r).get("comms", "")
