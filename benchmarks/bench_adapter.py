"""Adapter and fabric: INSERT throughput, edge-to-cloud latency, a hub with many tenant accounts.

- rows/s from a proton-driver INSERT (recorded once from the real client, then replayed at full
  speed) of a gNMI-shaped block stream to JetStream-acknowledged publishes (EndOfStream received),
  uncompressed and LZ4; baseline: publishing the same Arrow IPC chunks to the same JetStream
  stream directly (the transport alone, no protocol decode) — the ceiling for the relay.
- the same through the live proton-driver client (its Python row encoding included).
- latency percentiles edge -> cloud ClickHouse: INSERT at the adapter (a subprocess) until the
  receiver (in this process) has written the batch to chdb, through an edge leaf and the hub;
  baseline: inserting the same batch straight into chdb.
- hub start-up time and RSS with 1,000 tenant accounts (100 with --quick), and after leaf nodes of a
  sample of tenants connected; baseline: a hub with one tenant.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nats
import numpy as np
import pandas as pd
import pyarrow as pa
from proton_driver import Client

from adapter import native as nv
from adapter.relay import PUBLISH, Relay, split
from adapter.schema import to_catalog
from adapter.server import NativeServer, ServerOptions
from benchmarks import Result
from fabric import natsconf
from fabric.process import NatsProcess, free_port
from streams.catalog import CATALOG
from wrpc.queued import QueuedClient

SUITE = "adapter"
COLS = "timestamp, device, metric, value, value_str, labels, deleted"


def gnmi_frame(n: int, seed: int = 1) -> pd.DataFrame:
    """gNMI-shaped rows: 1,000 devices, 50 metric paths, numeric values, a label map."""
    rnd = np.random.default_rng(seed)
    start = dt.datetime.now(dt.UTC).replace(microsecond=0)
    ts = [start + dt.timedelta(milliseconds=int(i)) for i in range(n)]
    devices = np.array([f"router-{i:04d}" for i in range(1000)], dtype=object)
    metrics = np.array([f"interfaces/interface/state/counters/c{i}" for i in range(50)], dtype=object)
    labels = [{"if": "eth0"}, {"if": "eth1"}, {"if": "xe-0/0/1", "vrf": "mgmt"}]
    return pd.DataFrame({
        "timestamp": ts, "device": devices[rnd.integers(0, 1000, n)], "metric": metrics[rnd.integers(0, 50, n)],
        "value": rnd.random(n) * 1e9, "value_str": [None] * n,
        "labels": [labels[i % 3] for i in range(n)], "deleted": np.zeros(n, bool),
    })  # fmt: skip


class _Recorder:
    def __init__(self, target: int) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port, self.target, self.sent = self.sock.getsockname()[1], target, bytearray()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        conn, _ = self.sock.accept()
        up = socket.create_connection(("127.0.0.1", self.target))

        def pump(a, b, rec) -> None:
            while data := a.recv(1 << 16):
                if rec:
                    self.sent += data
                b.sendall(data)
            with contextlib.suppress(OSError):
                b.shutdown(socket.SHUT_WR)

        threading.Thread(target=pump, args=(up, conn, False), daemon=True).start()
        pump(conn, up, True)


def client_insert(port: int, df: pd.DataFrame, compression, block: int) -> int:
    c = Client("127.0.0.1", port=port, compression=compression, settings={"insert_block_size": block})
    try:
        columns = [df[c].tolist() for c in df.columns]
        return c.execute(f"INSERT INTO gnmi_stream ({COLS}) VALUES", columns, columnar=True)
    finally:
        c.disconnect()


def replay(port: int, session: bytes) -> float:
    """Send a recorded session; seconds until the server's EndOfStream (after every JetStream ack)."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        t0 = time.perf_counter()
        s.sendall(session)
        got = b""
        while True:  # EndOfStream (5) arrives after all acks; then we close
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            got += chunk
            if got.endswith(bytes([nv.S_EOS])) and len(got) > 64:
                break
        return time.perf_counter() - t0


async def _throughput(url: str, rows: int, block: int) -> list[Result]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    relay = Relay(js, "bench", max_payload=nc.max_payload, max_inflight=128)
    await relay.ensure_stream("SR_BENCH", 4 << 30, 60)
    server = NativeServer(relay, ServerOptions())
    _, port = await server.start("127.0.0.1", 0)
    df = gnmi_frame(rows)
    out = []
    for compression in (False, "lz4"):
        rec = _Recorder(port)
        t_client = time.perf_counter()
        await asyncio.to_thread(client_insert, rec.port, df, compression, block)
        live = time.perf_counter() - t_client
        await js.purge_stream("SR_BENCH")  # replays must not be de-duplicated against the recording
        secs = await asyncio.to_thread(replay, port, bytes(rec.sent))
        name = "LZ4" if compression else "uncompressed"
        out.append(Result(SUITE, f"proton-driver INSERT -> JetStream acks, replayed ({name})", "rows/s", rows / secs,
                          target=">= 1,000,000 rows/s", note=f"{rows:,} rows in blocks of {block:,}; "
                          f"{len(rec.sent) / secs / 1e6:.0f} MB/s on the wire"))  # fmt: skip
        out.append(Result(SUITE, f"live proton-driver INSERT incl. client encoding ({name})", "rows/s", rows / live,
                          note="bounded by proton-driver's Python row encoding"))  # fmt: skip
    # baseline: the same Arrow IPC chunks published straight to JetStream
    schema = CATALOG["metrics"].arrow_schema()
    table = pa.Table.from_pandas(df.assign(labels=[list(d.items()) for d in df["labels"]]), schema=schema,
                                 preserve_index=False)  # fmt: skip
    batch = to_catalog(CATALOG["metrics"], table.combine_chunks().to_batches()[0])
    chunks = [c for i in range(0, rows, block) for c in split(batch.slice(i, block), nc.max_payload - 4096)]
    await js.purge_stream("SR_BENCH")
    q = QueuedClient(js, "bench")
    t0 = time.perf_counter()
    sem = asyncio.Semaphore(128)

    async def pub(i: int, c: bytes) -> None:
        async with sem:
            await q.enqueue(PUBLISH, {"stream": "gnmi_stream", "seq": i, "arrow-ipc": c}, msg_id=f"base-{i}")

    await asyncio.gather(*(pub(i, c) for i, c in enumerate(chunks)))
    base = rows / (time.perf_counter() - t0)
    for r in out[::2]:
        r.baseline_name, r.baseline = "direct JetStream publish of the same Arrow IPC chunks", base
    await server.close(5)
    await nc.close()
    return out


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _hub(work: Path, tenants: int) -> tuple[NatsProcess, float]:
    # JetStream reserves every account's limits against the server's capacity, so they must fit 1,000 times
    ts = [natsconf.Tenant(f"t{i:04d}", leaf_user=f"t{i:04d}-leaf", leaf_password="pw", max_file="32M", max_mem="4M")
          for i in range(tenants)]
    port, leaf = free_port(), free_port()
    d = work / f"hub{tenants}"
    d.mkdir()
    hub = NatsProcess(d, "hub", natsconf.hub_config(listen=f"127.0.0.1:{port}", leaf_listen=f"127.0.0.1:{leaf}",
                                                  store_dir=str(d / "js"), tenants=ts), port)  # fmt: skip
    hub.leaf_port = leaf  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    hub.start(timeout=120)
    while "Server is ready" not in hub.log_text():
        time.sleep(0.01)
    return hub, time.perf_counter() - t0


async def _jwt_push(work: Path, tenants: int) -> list[Result]:
    """Operator mode: push ``tenants`` account JWTs to a running hub (no restart), then its RSS."""
    from fabric.jwtmode import Operator, hub_config_jwt, push_account

    op = Operator()
    port, leaf = free_port(), free_port()
    d = work / "jwthub"
    d.mkdir()
    hub = NatsProcess(d, "hub", hub_config_jwt(op, listen=f"127.0.0.1:{port}", leaf_listen=f"127.0.0.1:{leaf}",
                                               store_dir=str(d / "js"), resolver_dir=str(d / "resolver"),
                                               preload={}), port).start()  # fmt: skip
    rss_before = _rss_mb(hub.proc.pid)
    (d / "sys.creds").write_text(op.user_creds(None, "sys"))
    jwts = [op.account_jwt(f"t{i:04d}", max_file="32M", max_mem="4M")[1] for i in range(tenants)]
    nc = await nats.connect(hub.url, user_credentials=str(d / "sys.creds"))
    t0 = time.perf_counter()
    for j in jwts:
        await push_account(nc, j)
    secs = time.perf_counter() - t0
    await nc.close()
    rss = _rss_mb(hub.proc.pid)
    hub.stop()
    return [Result(SUITE, f"operator mode: push {tenants:,} tenant accounts to a running hub", "accounts/s",
                   tenants / secs, note=f"no restart; hub RSS {rss_before:.0f} -> {rss:.0f} MB")]  # fmt: skip


def _accounts(work: Path, tenants: int, sample: int) -> list[Result]:
    one, t_one = _hub(work, 1)
    rss_one = _rss_mb(one.proc.pid)
    one.stop()
    hub, t_many = _hub(work, tenants)
    rss_many = _rss_mb(hub.proc.pid)
    leaves = []
    t0 = time.perf_counter()
    for i in range(sample):
        d = work / f"leaf{i}"
        d.mkdir()
        p = free_port()
        conf = natsconf.leaf_config(tenant=f"t{i:04d}", listen=f"127.0.0.1:{p}", store_dir=str(d / "js"),
                                    hub_leaf_url=f"nats-leaf://127.0.0.1:{hub.leaf_port}", user=f"t{i:04d}-leaf",
                                    password="pw", max_file="256M", max_mem="16M")  # fmt: skip
        leaves.append(NatsProcess(d, "leaf", conf, p).start())
    while hub.log_text().count("Leafnode connection created") < sample:
        time.sleep(0.05)
    t_leaves = time.perf_counter() - t0
    rss_leaves = _rss_mb(hub.proc.pid)
    for lf in leaves:
        lf.stop()
    hub.stop()
    return [
        Result(SUITE, f"hub start-up with {tenants:,} tenant accounts", "s", t_many, "hub with 1 tenant", t_one,
               higher_is_better=False, note="until 'Server is ready' (JetStream enabled per account)"),
        Result(SUITE, f"hub RSS with {tenants:,} tenant accounts", "MB", rss_many, "hub with 1 tenant", rss_one,
               higher_is_better=False),
        Result(SUITE, f"hub RSS with {tenants:,} accounts + {sample} leaf nodes", "MB", rss_leaves,
               higher_is_better=False, note=f"{sample} leaves (one per sampled tenant) connected in {t_leaves:.1f} s"),
    ]  # fmt: skip


async def _latency(work: Path, n: int) -> list[Result]:

    tenant = natsconf.Tenant("lat", leaf_user="lat-leaf", leaf_password="pw", receiver_user="lat-rx",
                             receiver_password="pw")  # fmt: skip
    hp, hl, lp = free_port(), free_port(), free_port()
    hub = NatsProcess(work, "lathub", natsconf.hub_config(listen=f"127.0.0.1:{hp}", leaf_listen=f"127.0.0.1:{hl}",
                                                        store_dir=str(work / "lathub"), tenants=[tenant]), hp).start()
    leaf = NatsProcess(work, "latleaf", natsconf.leaf_config(tenant="lat", listen=f"127.0.0.1:{lp}",
                       store_dir=str(work / "latleaf"), hub_leaf_url=f"nats-leaf://127.0.0.1:{hl}",
                       user="lat-leaf", password="pw"), lp).start()  # fmt: skip
    ap = free_port()
    adapter = subprocess.Popen([sys.executable, "-m", "adapter", "--listen", f"127.0.0.1:{ap}", "--nats", leaf.url,
                                "--tenant", "lat", "--log-level", "WARNING"], stdout=subprocess.DEVNULL)  # fmt: skip
    try:
        return await _measure_latency(work, n, hp, ap, adapter.pid)
    finally:
        adapter.terminate()
        adapter.wait(20)
        leaf.stop()
        hub.stop()


async def _measure_latency(work: Path, n: int, hp: int, ap: int, adapter_pid: int) -> list[Result]:
    from fabric.receiver import Receiver, ensure_cloud_stream
    from streams.sinks.clickhouse import ClickHouseSink

    sink = ClickHouseSink(path=work / "chdb")
    receiver = Receiver(sink)
    arrived: dict[str, float] = {}
    orig = receiver._insert

    def timed(ent, table, seq) -> None:
        orig(ent, table, seq)
        arrived[table.column("device")[0].as_py()] = time.perf_counter()

    receiver._insert = timed  # type: ignore[method-assign]
    nc = await nats.connect(f"nats://127.0.0.1:{hp}", user="lat-rx", password="pw")
    js = nc.jetstream()
    await ensure_cloud_stream(js, "SR_LAT_CLOUD", ["edge-lat"], "SR_LAT")
    consumer = receiver.consumer(js, "SR_LAT_CLOUD", "rx")
    task = asyncio.create_task(consumer.run())
    for _ in range(600):
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", ap), timeout=0.2):
            break
        await asyncio.sleep(0.05)
    sent: dict[str, float] = {}
    lat_df = gnmi_frame(100)
    rss_idle = _rss_mb(adapter_pid)
    rss_peak = rss_idle
    # warm-up: the hub's source of the edge stream starts (and retries) in the background
    await asyncio.to_thread(client_insert, ap, lat_df.assign(device="warm-up"), "lz4", 1000)
    for _ in range(1200):
        if "warm-up" in arrived:
            break
        await asyncio.sleep(0.05)
    for i in range(n):
        tag = f"lat-{i:05d}"
        df = lat_df.assign(device=tag)
        sent[tag] = time.perf_counter()
        await asyncio.to_thread(client_insert, ap, df, "lz4", 1000)
        rss_peak = max(rss_peak, _rss_mb(adapter_pid))
        await asyncio.sleep(0.02)
    # under load: one large INSERT (200,000 rows in 65,536-row blocks) while sampling the adapter's RSS
    big = gnmi_frame(20_000 if n < 100 else 200_000, seed=3)
    load = asyncio.create_task(asyncio.to_thread(client_insert, ap, big, "lz4", 65_536))
    while not load.done():
        rss_peak = max(rss_peak, _rss_mb(adapter_pid))
        await asyncio.sleep(0.05)
    await load
    deadline = time.perf_counter() + 120
    while len(arrived) < n and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    lat = np.array([(arrived[k] - sent[k]) * 1000 for k in sent if k in arrived])
    consumer.stop()
    await task  # the receiver's chdb inserts are done: the session is free for the baseline
    direct = []
    for i in range(min(n, 50)):
        direct_df = lat_df.assign(device=f"direct-{i}", labels=[list(d.items()) for d in lat_df["labels"]])
        table = pa.Table.from_pandas(direct_df, schema=CATALOG["metrics"].arrow_schema(), preserve_index=False)
        t0 = time.perf_counter()
        sink.insert("metrics", table)
        direct.append((time.perf_counter() - t0) * 1000)
    await nc.close()
    receiver.close()
    base = float(np.median(direct))
    rss = [
        Result(SUITE, "adapter RSS idle (subprocess, connected to its leaf)", "MB", rss_idle, higher_is_better=False,
               note="edge design budget: 116 MB for the whole edge without Proton"),
        Result(SUITE, "adapter RSS peak under load", "MB", rss_peak, higher_is_better=False,
               note=f"during 100-row INSERTs and one INSERT of {len(big):,} rows in 65,536-row blocks"),
    ]  # fmt: skip
    return rss + [
        Result(SUITE, f"edge->cloud ClickHouse latency p{p} (100-row INSERTs)", "ms", float(np.percentile(lat, p)),
               "direct chdb insert of the same batch (median)", base, higher_is_better=False,
               note=f"{len(lat)}/{n} batches: proton-driver -> adapter -> leaf JetStream -> hub source -> receiver")
        for p in (50, 90, 99)
    ]  # fmt: skip


def run(quick: bool) -> list[Result]:
    work = Path(tempfile.mkdtemp(prefix="bench-adapter-"))
    try:
        port = free_port()
        srv = NatsProcess(work, "nats", f'listen: "127.0.0.1:{port}"\nmax_payload: 8MB\n'
                          f'jetstream {{ store_dir: "{work}/js" }}\n', port).start()  # fmt: skip
        try:
            results = asyncio.run(_throughput(srv.url, 200_000 if quick else 1_000_000, 65_536))
        finally:
            srv.stop()
        results += asyncio.run(_latency(work, 40 if quick else 300))
        results += _accounts(work, 100 if quick else 1000, 5 if quick else 20)
        results += asyncio.run(_jwt_push(work, 100 if quick else 1000))
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)
