"""End to end through real processes: proton-driver INSERT -> adapter -> edge leaf JetStream -> hub
(cloud stream sourcing the edge) -> receiver -> ClickHouse (chdb). Every catalog column type, with
uncompressed, LZ4 and ZSTD blocks; the rows in ClickHouse equal the rows inserted."""

from __future__ import annotations

import datetime as dt
import json
import random
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from adapter_fabric_helpers import Fabric, private_tmp, wait_for
from proton_driver import Client

from streams.catalog import CATALOG
from streams.sinks.archive import ParquetArchive

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)  # inside the tables' 90-day TTL


def metrics_rows(n: int, tag: str, rnd: random.Random) -> list[tuple]:
    rows = []
    for i in range(n):
        labels = {f"k{j}": rnd.choice(["", "é", "eth0", "x" * rnd.randint(0, 40)]) for j in range(rnd.randint(0, 3))}
        rows.append((NOW - dt.timedelta(milliseconds=rnd.randint(0, 10**7)), f"{tag}-dev{i:05d}",
                     rnd.choice(["if/in-octets", "if/out-octets", "cpu/ünïcode"]),
                     None if i % 5 == 0 else rnd.uniform(-1e9, 1e9), None if i % 3 else f"s{i}\n\t'\"",
                     labels, i % 2 == 0))  # fmt: skip
    return rows


def bgp_rows(n: int, tag: str, rnd: random.Random) -> list[tuple]:
    return [
        (NOW, f"10.0.{i % 256}.1", f"{tag}-peer{i:05d}", rnd.randint(0, 2**32 - 1), f"192.0.2.{i % 256}/32",
         rnd.choice(["announce", "withdraw"]), [rnd.randint(0, 2**32 - 1) for _ in range(rnd.randint(0, 6))],
         None if i % 4 == 0 else "198.51.100.1", rnd.choice([None, "igp", "egp", "incomplete"]),
         None if i % 2 else rnd.randint(0, 2**32 - 1), rnd.choice([None, 100, 200]),
         [f"65000:{j}" for j in range(rnd.randint(0, 3))], [], i % 7, i % 2 == 1, i % 3 == 0)
        for i in range(n)
    ]  # fmt: skip


def netflow_rows(n: int, tag: str, rnd: random.Random) -> list[tuple]:
    return [
        (NOW, f"{tag}-exp{i:05d}", "10.1.1.1", "2001:db8::1", rnd.randint(0, 65535), 443, rnd.randint(0, 255),
         rnd.randint(0, 2**64 - 1), rnd.randint(0, 2**40), rnd.randint(0, 255), 0, 64512, 4200000000,
         rnd.randint(0, 2**32 - 1), 7, None if i % 2 else "10.0.0.254", NOW - dt.timedelta(seconds=30), 1,
         rnd.choice(["https", "dns", ""]), 10)
        for i in range(n)
    ]  # fmt: skip


GENERATORS = {"metrics": metrics_rows, "bgp": bgp_rows, "netflow": netflow_rows}
KEY = {"metrics": "device", "bgp": "peer", "netflow": "exporter"}


def insert(port: int, entity: str, rows: list[tuple], compression, block: int) -> int:
    ent = CATALOG[entity]
    cols = ", ".join(f.name for f in ent.fields)
    client = Client("127.0.0.1", port=port, compression=compression, settings={"insert_block_size": block})
    try:
        return client.execute(f"INSERT INTO {ent.stream} ({cols}) VALUES", rows)
    finally:
        client.disconnect()


def normalise(entity: str, table: pa.Table) -> list[dict]:
    ent = CATALOG[entity]
    table = table.select(ent.arrow_schema().names).cast(ent.arrow_schema())
    rows = table.to_pylist()
    for r in rows:
        for k, v in r.items():
            if isinstance(v, list) and v and isinstance(v[0], tuple):
                r[k] = sorted(v)  # map entries
    return sorted(rows, key=lambda r: r[KEY[entity]])


def expected(entity: str, rows: list[tuple]) -> list[dict]:
    ent = CATALOG[entity]
    names = [f.name for f in ent.fields]
    data = [dict(zip(names, r, strict=True)) for r in rows]
    for d in data:
        for k, v in d.items():
            if isinstance(v, dict):
                d[k] = list(v.items())
    return normalise(entity, pa.Table.from_pylist(data, schema=ent.arrow_schema()))


work = pytest.fixture(private_tmp)


@pytest.fixture
def fabric(work: Path):
    fab = Fabric(work)
    fab.hub.start()
    fab.add_leaf("acme").start()
    try:
        yield fab
    finally:
        fab.close()


def test_adapter_e2e_every_column_type_every_compression(fabric: Fabric) -> None:
    port = fabric.start_adapter()
    archive = fabric.root / "archive"
    fabric.start_receiver(extra=f'archive_dir = "{archive}"\narchive_after_days = 30\narchive_interval_s = 1\n')
    rnd = random.Random(7)
    sent: dict[str, list[tuple]] = {e: [] for e in GENERATORS}
    for comp_i, compression in enumerate((False, "lz4", "zstd")):
        for entity, gen in GENERATORS.items():
            rows = gen(300, f"c{comp_i}", rnd)
            assert insert(port, entity, rows, compression, block=128) == len(rows)
            sent[entity] += rows
    # rows 40 days old: stored, then moved whole-day to the Parquet archive by the receiver
    old_day = NOW - dt.timedelta(days=40)
    old = [(old_day, *r[1:]) for r in metrics_rows(200, "old", rnd)]
    assert insert(port, "metrics", old, "lz4", block=64) == len(old)
    total = sum(len(v) for v in sent.values()) + len(old)
    wait_for(lambda: fabric.receiver_rows() >= total, 90, f"{total} rows in the receiver")
    wait_for(lambda: fabric.receiver_status().get("archived", {}).get("metrics", 0) >= len(old), 60, "the archive move")
    status = fabric.adapter_status()
    assert status["relay"]["failures"] == 0 and status["server"]["protocol_errors"] == 0
    health = subprocess.run([sys.executable, "-m", "fabric", "--config", str(fabric.receiver_config()), "--health"],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert health.returncode == 0 and json.loads(health.stdout)["rows"] >= total
    fabric.stop("receiver-acme")
    for entity, rows in sent.items():
        stream = CATALOG[entity].stream
        got = normalise(entity, fabric.query(f"SELECT * FROM {stream}"))
        assert got == expected(entity, rows), entity
    assert normalise("metrics", ParquetArchive(archive).read("metrics")) == expected("metrics", old)
