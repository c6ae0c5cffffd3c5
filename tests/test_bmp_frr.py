"""BMP from a second vendor: FRR bgpd 8.4 with its BMP module (``-M bmp``), fed by ExaBGP.

FRR connects to our collector itself (``bmp connect``), peers with ExaBGP on loopback and exports pre-
and post-policy Adj-RIB-In (pre-policy needs ``soft-reconfiguration inbound``: without a stored
Adj-RIB-In FRR sends pre-policy withdrawals). The same announcements and withdrawals as in the gobgpd
test must come out, with one FRR 8.4 quirk: it encodes the monitored attributes as it would for an
outgoing eBGP UPDATE, so its own AS 65001 leads the AS path (checked against tshark below).
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import time

import pytest
from bmp_helpers import Daemon, LiveBmp, free_port, need
from test_bmp_exabgp import ANNOUNCE_PY, INJECTED, WITHDRAWN, _wait_capture

pytestmark = pytest.mark.timeout(180)
BGPD = "/usr/lib/frr/bgpd"

FRR_CONF = """frr defaults traditional
hostname frr-bmp
log stdout informational
router bgp 65001
 bgp router-id 3.3.3.3
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 127.0.0.1 remote-as 65002
 neighbor 127.0.0.1 port {exa_port}
 address-family ipv4 unicast
  neighbor 127.0.0.1 soft-reconfiguration inbound
 exit-address-family
 address-family ipv6 unicast
  neighbor 127.0.0.1 activate
  neighbor 127.0.0.1 soft-reconfiguration inbound
 exit-address-family
 bmp targets collector
  bmp monitor ipv4 unicast pre-policy
  bmp monitor ipv4 unicast post-policy
  bmp monitor ipv6 unicast pre-policy
  bmp monitor ipv6 unicast post-policy
  bmp connect 127.0.0.1 port {bmp_port} min-retry 100 max-retry 2000
 exit
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


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("bmp_frr")
    need(BGPD)
    need("exabgp")
    live = LiveBmp()
    first = len(Daemon.instances)  # every daemon started below is stopped in the finally
    try:
        bgp_port, exa_port = free_port(), free_port()
        pcap = d / "bmp.pcap"
        dump = Daemon(["tcpdump", "-i", "lo", "-U", "-w", str(pcap), f"tcp port {live.port}"], d / "tcpdump.log")
        time.sleep(1)
        (d / "bgpd.conf").write_text(FRR_CONF.format(exa_port=exa_port, bmp_port=live.port))
        Daemon([BGPD, "-f", str(d / "bgpd.conf"), "-M", "bmp", "-Z", "-S", "-n", "-p", str(bgp_port), "-l",
                "127.0.0.1", "-i", str(d / "bgpd.pid"), "--vty_socket", str(d), "-P", "0", "--log", "stdout"],
               d / "bgpd.log")  # fmt: skip
        flag = d / "withdraw.flag"
        (d / "announce.py").write_text(ANNOUNCE_PY)
        (d / "exabgp.conf").write_text(EXABGP_CONF.format(python=sys.executable, script=d / "announce.py", flag=flag,
                                                          bgp_port=bgp_port))  # fmt: skip
        env = dict(os.environ, **{"exabgp.daemon.user": "root", "exabgp.tcp.bind": "127.0.0.1",
                                  "exabgp.tcp.port": str(exa_port), "exabgp.log.destination": "stdout",
                                  "exabgp.daemon.daemonize": "false"})  # fmt: skip
        exa = Daemon(["exabgp", str(d / "exabgp.conf")], d / "exabgp.log", env=env)
        # 5 prefixes x 2 views (pre-policy, post-policy)
        live.wait_for(lambda: _count(live, "announce", "127.0.0.1") >= 10, 60, "10 announce rows from FRR")
        health_live = live.col.health()
        flag.touch()
        live.wait_for(lambda: _count(live, "withdraw", "127.0.0.1") >= 4, 30, "4 withdraw rows")
        exa.stop()
        live.wait_for(lambda: ("127.0.0.1", "down") in _states(live), 30, "the peer-down event")
        _wait_capture(pcap, live.col.counters.snapshot()["127.0.0.1"]["bytes"])
        dump.stop()
        live.settle()
        yield {"updates": live.updates(), "peers": live.peers(), "health_live": health_live,
               "pcap": pcap, "bmp_port": live.port}  # fmt: skip
    finally:
        for proc in reversed(Daemon.instances[first:]):
            proc.stop()
        live.stop()


def _count(live: LiveBmp, action: str, peer: str) -> int:
    t = live.updates()
    return 0 if t is None else sum(1 for r in t.to_pylist() if r["action"] == action and r["peer"] == peer)


def _states(live: LiveBmp) -> list[tuple[str, str]]:
    t = live.peers()
    return [] if t is None else [(r["peer"], r["state"]) for r in t.to_pylist()]


def test_frr_announcements_equal_what_exabgp_injected(session: dict) -> None:
    rows = [r for r in session["updates"].to_pylist() if r["peer"] == "127.0.0.1"]
    for post in (False, True):
        got = {r["prefix"]: r for r in rows if r["action"] == "announce" and r["post_policy"] == post}
        assert sorted(got) == sorted(p[0] for p in INJECTED), post
        for prefix, nh, origin, path, med, lp, comms, large in INJECTED:
            r = got[prefix]
            want = (nh, origin, [65001, *path], med, lp, comms, large, 65002)
            assert (r["next_hop"], r["origin"], r["as_path"], r["med"], r["local_pref"], r["communities"],
                    r["large_communities"], r["peer_as"]) == want  # fmt: skip


def test_frr_withdrawals(session: dict) -> None:
    rows = [r for r in session["updates"].to_pylist() if r["peer"] == "127.0.0.1" and r["action"] == "withdraw"]
    assert {r["prefix"] for r in rows} >= WITHDRAWN
    assert {(r["prefix"], r["post_policy"]) for r in rows if r["prefix"] in WITHDRAWN} == {
        (p, post) for p in WITHDRAWN for post in (False, True)}


def test_frr_peer_events_and_initiation(session: dict) -> None:
    events = [(e["peer"], e["peer_as"], e["state"]) for e in session["peers"].to_pylist()]
    assert ("127.0.0.1", 65002, "up") in events and ("127.0.0.1", 65002, "down") in events
    (router,) = session["health_live"]["routers"]
    assert router["sys_name"] == "frr-bmp" and "FRRouting" in router["sys_descr"]
    assert session["health_live"]["exporters"]["127.0.0.1"].get("drop_malformed", 0) == 0


def test_frr_as_paths_match_tshark(session: dict) -> None:
    """tshark's reading of the same BMP bytes: the announced prefixes, and every AS number of their paths.

    tshark joins the fields of all BMP messages in one TCP segment, so paths are compared as the multiset
    of AS numbers over all announcements (FRR sends one prefix per UPDATE here).
    """
    need("tshark")
    out = subprocess.run(
        ["tshark", "-r", str(session["pcap"]), "-d", f"tcp.port=={session['bmp_port']},bmp", "-Y", "bmp.type == 0",
         "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,", "-e", "bgp.nlri_prefix",
         "-e", "bgp.mp_reach_nlri_ipv6_prefix", "-e", "bgp.update.path_attribute.as_path_segment.as4"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    prefixes, asns = collections.Counter(), collections.Counter()
    for line in out.splitlines():
        v4, v6, path = [*line.split("\t"), "", "", ""][:3]
        prefixes.update(x for x in f"{v4},{v6}".split(",") if x)
        asns.update(int(a) for a in path.split(",") if a)
    rows = [r for r in session["updates"].to_pylist() if r["action"] == "announce"]
    assert collections.Counter(r["prefix"].split("/")[0] for r in rows) == prefixes
    assert collections.Counter(a for r in rows for a in r["as_path"]) == asns
    assert all(r["as_path"][0] == 65001 for r in rows)
