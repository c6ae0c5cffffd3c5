"""Vectorised simulators of gNMI, NetFlow, syslog and BGP traffic, with injected incidents.

Every generator builds whole Arrow tables with NumPy (choices, gamma/lognormal draws, takes from small
pools of pre-rendered strings): no Python loop per event. The incidents are what the SRQL use cases
look for: latency spikes on a few devices, an SSH brute force against one device, a flapping prefix,
and top talkers in NetFlow (a backup job and a video stream).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from streams.catalog import CATALOG, Entity

TS = pa.timestamp("ms", tz="UTC")
GNMI_METRICS = ("latency", "cpu", "memory", "in_octets", "out_octets", "in_errors", "out_errors",
                "temperature", "jitter", "loss")
APPLICATIONS = ("https", "dns", "ssh", "ntp", "smtp", "imap", "http", "ldap", "snmp", "syslog", "backup", "video")
APP_PORTS = (443, 53, 22, 123, 25, 993, 80, 389, 161, 514, 10000, 8443)
APP_WEIGHTS = np.array([30, 20, 3, 4, 3, 3, 10, 2, 3, 2, 1, 2], float)
SITES = ("nyc1", "sfo2", "fra1", "sin1", "lon3")
ROLES = ("core", "edge", "access", "dist")
VENDORS = (("cisco", "ASR9001"), ("juniper", "MX204"), ("arista", "7280R3"), ("nokia", "7750 SR-1"))
BRUTE_SOURCE = "203.0.113.66"
FLAP_PREFIX = "198.51.100.0/24"
SYSLOG_MESSAGES = (
    (6, "sshd", "Accepted publickey for netops from 10.0.0.{} port 5{:04d} ssh2"),
    (6, "sshd", "pam_unix(sshd:session): session opened for user netops by (uid=0)"),
    (5, "ntpd", "synchronized to 10.0.0.{}, stratum 2 ({:04d})"),
    (4, "kernel", "eth{}: link flap detected, {} ms"),
    (3, "bgpd", "BGP neighbor 10.1.{}.1 went down: hold timer expired ({})"),
    (6, "snmpd", "Connection from UDP: [10.0.0.{}]:{} "),
    (5, "cron", "(root) CMD (/usr/lib/monitor {} {})"),
    (4, "sshd", "Invalid user admin{} from 192.0.2.{} port 40022"),
)


def _table(entity: Entity, n: int, cols: dict[str, pa.Array]) -> pa.Table:
    """A table of ``entity``'s schema from the given columns; the others get empty/zero/NULL values."""
    schema = entity.arrow_schema()
    arrays = []
    for f in schema:
        if f.name in cols:
            arrays.append(cols[f.name])
        elif entity.field(f.name).nullable:  # the Arrow schema marks every non-time column nullable
            arrays.append(pa.nulls(n, f.type))
        elif pa.types.is_string(f.type):
            arrays.append(pa.array([""], f.type).take(np.zeros(n, np.int64)))
        elif pa.types.is_boolean(f.type):
            arrays.append(pa.array(np.zeros(n, bool)))
        elif pa.types.is_list(f.type) or pa.types.is_map(f.type):
            arrays.append(pa.array([[]], f.type).take(np.zeros(n, np.int64)))
        else:
            arrays.append(pa.array(np.zeros(n, np.int64)).cast(f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _times(t0: int, t1: int, n: int, rng: np.random.Generator) -> pa.Array:
    return pa.array(np.sort(rng.integers(t0, max(t1, t0 + 1), n))).cast(TS)


@dataclass
class Incidents:
    """Which incidents to inject (all on by default)."""

    latency_spike_devices: int = 3
    brute_force_per_minute: int = 12
    flap_per_minute: int = 8
    top_talkers: bool = True


class Simulator:
    """A small network: ``devices`` routers with gNMI, NetFlow, syslog and BGP traffic in event time."""

    def __init__(self, devices: int = 50, seed: int = 0, start_ms: int = 1_764_000_000_000,
                 incidents: Incidents | None = None, flows_per_second: int = 500,
                 logs_per_second: int = 200, bgp_per_second: int = 5) -> None:
        self.rng = np.random.default_rng(seed)
        self.devices = devices
        self.now_ms = start_ms
        self.incidents = incidents or Incidents()
        self.flows_per_second = flows_per_second
        self.logs_per_second = logs_per_second
        self.bgp_per_second = bgp_per_second
        self.names = np.array([f"rtr-{SITES[i % len(SITES)]}-{i:03d}" for i in range(devices)])
        self.ips = np.array([f"10.0.{i // 250}.{i % 250 + 1}" for i in range(devices)])
        self.hosts = pa.array([f"10.20.{i // 250}.{i % 250 + 1}" for i in range(1000)])
        self.servers = pa.array([f"172.16.{i // 250}.{i % 250 + 1}" for i in range(200)])
        self.prefixes = pa.array([f"100.{64 + i // 256}.{i % 256}.0/24" for i in range(400)] + [FLAP_PREFIX])
        msgs = [(sev, app, text.format(i % 250, (i * 7919) % 9999)) for i in range(32)
                for sev, app, text in SYSLOG_MESSAGES]
        self.msg_sev = np.array([m[0] for m in msgs], np.uint8)
        self.msg_app = pa.array([m[1] for m in msgs])
        self.msg_text = pa.array([m[2] for m in msgs])
        self.brute_text = pa.array([f"Failed password for root from {BRUTE_SOURCE} port {40000 + i} ssh2"
                                    for i in range(64)])
        self.spiking = set(range(0, devices, max(devices // max(self.incidents.latency_spike_devices, 1), 1)))
        self.spiking = set(sorted(self.spiking)[: self.incidents.latency_spike_devices])

    # ------------------------------------------------------------------------------------------

    def inventory(self) -> pa.Table:
        n = self.devices
        vend = np.arange(n) % len(VENDORS)
        return _table(CATALOG["devices"], n, {
            "device": pa.array(self.names), "ip": pa.array(self.ips), "hostname": pa.array(self.names),
            "mac": pa.array([f"02:00:00:00:{i // 256:02x}:{i % 256:02x}" for i in range(n)]),
            "site": pa.array([SITES[i % len(SITES)] for i in range(n)]),
            "role": pa.array([ROLES[i % len(ROLES)] for i in range(n)]),
            "vendor": pa.array([VENDORS[v][0] for v in vend]), "model": pa.array([VENDORS[v][1] for v in vend]),
            "last_seen": pa.array(np.full(n, self.now_ms)).cast(TS),
        })

    def gnmi(self, t0: int, t1: int) -> pa.Table:
        """One sample per device and metric per whole second in ``[t0, t1)``."""
        seconds = np.arange(-(-t0 // 1000) * 1000, t1, 1000)
        series = self.devices * len(GNMI_METRICS)
        n = len(seconds) * series
        ts = np.repeat(seconds, series)
        dev = np.tile(np.repeat(np.arange(self.devices), len(GNMI_METRICS)), len(seconds))
        met = np.tile(np.arange(len(GNMI_METRICS)), self.devices * len(seconds))
        value = self.rng.gamma(2.0, 10.0, n)
        latency = met == 0
        if self.spiking:
            spike = latency & np.isin(dev, list(self.spiking)) & ((ts // 60_000) % 3 != 0)
            value[spike] = 120.0 + self.rng.gamma(4.0, 20.0, int(spike.sum()))
        return _table(CATALOG["metrics"], n, {
            "timestamp": pa.array(ts).cast(TS), "device": pa.array(self.names).take(dev),
            "metric": pa.array(GNMI_METRICS).take(met), "value": pa.array(value),
        })

    def netflow(self, t0: int, t1: int) -> pa.Table:
        n = max(int(self.flows_per_second * (t1 - t0) / 1000), 1)
        r = self.rng
        app = r.choice(len(APPLICATIONS), n, p=APP_WEIGHTS / APP_WEIGHTS.sum())
        nbytes = r.lognormal(8.0, 1.5, n).astype(np.uint64) + 64
        if self.incidents.top_talkers:  # a backup job and a video stream move most of the bytes
            nbytes[app == APPLICATIONS.index("backup")] *= 400
            nbytes[app == APPLICATIONS.index("video")] *= 60
        ts = _times(t0, t1, n, r)
        return _table(CATALOG["netflow"], n, {
            "timestamp": ts, "exporter": pa.array(self.ips).take(r.integers(0, self.devices, n)),
            "src_ip": self.hosts.take(r.integers(0, len(self.hosts), n)),
            "dst_ip": self.servers.take(r.integers(0, len(self.servers), n)),
            "src_port": pa.array(r.integers(1024, 65535, n).astype(np.uint16)),
            "dst_port": pa.array(np.array(APP_PORTS, np.uint16)[app]),
            "protocol": pa.array(np.where(np.isin(app, [1, 3]), 17, 6).astype(np.uint8)),
            "bytes": pa.array(nbytes), "packets": pa.array(np.maximum(nbytes // 900, 1).astype(np.uint64)),
            "flow_start": ts, "sampling_interval": pa.array(np.ones(n, np.uint32)),
            "application": pa.array(APPLICATIONS).take(app), "version": pa.array(np.full(n, 10, np.uint16)),
        })

    def syslog(self, t0: int, t1: int) -> pa.Table:
        r = self.rng
        n = max(int(self.logs_per_second * (t1 - t0) / 1000), 1)
        pick = r.integers(0, len(self.msg_text), n)
        dev = r.integers(0, self.devices, n)
        brute = int(self.incidents.brute_force_per_minute * (t1 - t0) / 60_000)
        device = pa.array(self.names).take(dev)
        message, sev, app = self.msg_text.take(pick), self.msg_sev[pick], self.msg_app.take(pick)
        if brute:  # an SSH brute force against one device, from one source
            device = pa.concat_arrays([device, pa.array(self.names[np.full(brute, 1 % self.devices)])])
            message = pa.concat_arrays([message, self.brute_text.take(r.integers(0, 64, brute))])
            sev = np.concatenate([sev, np.full(brute, 5, np.uint8)])
            app = pa.concat_arrays([app, pa.array(["sshd"] * brute)])
            dev = np.concatenate([dev, np.full(brute, 1 % self.devices)])
            n += brute
        order = np.argsort(r.integers(t0, max(t1, t0 + 1), n), kind="stable")
        ts = pa.array(np.sort(r.integers(t0, max(t1, t0 + 1), n))).cast(TS)
        return _table(CATALOG["logs"], n, {
            "timestamp": ts, "device": device.take(order), "source_ip": pa.array(self.ips[dev[order]]),
            "facility": pa.array(np.full(n, 4, np.uint8)), "severity": pa.array(sev[order]),
            "app_name": app.take(order), "message": message.take(order),
        })

    def bgp(self, t0: int, t1: int) -> pa.Table:
        r = self.rng
        n = max(int(self.bgp_per_second * (t1 - t0) / 1000), 1)
        flaps = int(self.incidents.flap_per_minute * (t1 - t0) / 60_000)
        prefix = r.integers(0, len(self.prefixes) - 1, n)
        action = (r.random(n) < 0.1).astype(np.int64)  # mostly announcements
        if flaps:  # one prefix announced and withdrawn over and over
            prefix = np.concatenate([prefix, np.full(flaps, len(self.prefixes) - 1)])
            action = np.concatenate([action, np.arange(flaps) % 2])
            n += flaps
        order = np.argsort(r.random(n))
        peer_as = r.choice([64500, 64501, 64502, 65010], n).astype(np.uint32)
        return _table(CATALOG["bgp"], n, {
            "timestamp": _times(t0, t1, n, r), "router": pa.array(self.ips).take(r.integers(0, self.devices, n)),
            "peer": pa.array(["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"]).take(r.integers(0, 4, n)),
            "peer_as": pa.array(peer_as), "prefix": self.prefixes.take(prefix[order]),
            "action": pa.array(["announce", "withdraw"]).take(action[order]),
            "as_path": pa.array([[64500, 3356, 15169], [64501, 174, 13335]], pa.list_(pa.uint32())).take(
                r.integers(0, 2, n)),
            "next_hop": pa.array(["192.0.2.1", "192.0.2.2"]).take(r.integers(0, 2, n)),
        })

    def step(self, millis: int) -> list[tuple[str, pa.Table]]:
        """Advance simulated time by ``millis``: the batches of every stream for that interval."""
        t0, t1 = self.now_ms, self.now_ms + millis
        self.now_ms = t1
        return [("metrics", self.gnmi(t0, t1)), ("netflow", self.netflow(t0, t1)),
                ("logs", self.syslog(t0, t1)), ("bgp", self.bgp(t0, t1))]


def syslog_batches(n: int, per_batch: int = 50_000, seed: int = 0) -> Iterator[pa.Table]:
    """``n`` syslog events in batches (for benchmarks): 200 devices, an SSH brute force among them."""
    sim = Simulator(devices=200, seed=seed, logs_per_second=per_batch, incidents=Incidents(
        brute_force_per_minute=per_batch * 6))
    for _ in range(-(-n // per_batch)):
        t0 = sim.now_ms
        sim.now_ms += 1000
        yield sim.syslog(t0, sim.now_ms)


def bgp_batches(n: int, per_batch: int = 50_000, seed: int = 0) -> Iterator[pa.Table]:
    """``n`` BGP updates in batches (for benchmarks), with a flapping prefix."""
    sim = Simulator(devices=50, seed=seed, bgp_per_second=per_batch, incidents=Incidents(flap_per_minute=60_000))
    for _ in range(-(-n // per_batch)):
        t0 = sim.now_ms
        sim.now_ms += 1000
        yield sim.bgp(t0, sim.now_ms)
