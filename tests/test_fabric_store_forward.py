"""Store and forward through real nats-server processes (a hub and an edge leaf, each with its own store).

- The hub is stopped while rows keep flowing into the edge (and the edge leaf itself is restarted
  meanwhile, its file store surviving); after the hub returns every row is in ClickHouse, none twice.
  Scaled down for the suite (5 s, 6,000 rows); ``SR_FABRIC_FULL=1`` runs the issue's 30 s / 100,000 rows.
- The adapter is killed (SIGKILL) in the middle of an INSERT; the client's retry of the same INSERT
  completes and no row is in ClickHouse twice (block-content message ids + ClickHouse insert tokens).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from pathlib import Path

import pytest
from adapter_fabric_helpers import Fabric, private_tmp, wait_for
from proton_driver import Client

FULL = os.environ.get("SR_FABRIC_FULL") == "1"
HUB_DOWN_S = 30.0 if FULL else 5.0
OUTAGE_ROWS = 100_000 if FULL else 6_000
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
COLS = "timestamp, device, metric, value, value_str, labels, deleted"

work = pytest.fixture(private_tmp)


@pytest.fixture
def fabric(work: Path):
    fab = Fabric(work, tenants=("acme",))
    fab.hub.start()
    fab.add_leaf("acme").start()
    try:
        yield fab
    finally:
        fab.close()


def rows(start: int, n: int, tag: str) -> list[tuple]:
    return [(NOW, f"{tag}{i:07d}", "if/in", float(i), None, {"i": str(i)}, False) for i in range(start, start + n)]


def insert(port: int, data, block: int = 1000, compression="lz4") -> int:
    c = Client("127.0.0.1", port=port, compression=compression, settings={"insert_block_size": block})
    try:
        return c.execute(f"INSERT INTO gnmi_stream ({COLS}) VALUES", data)
    finally:
        c.disconnect()


def counts(fab: Fabric) -> tuple[int, int]:
    t = fab.query("SELECT count() AS n, uniqExact(device) AS d FROM gnmi_stream")
    return t.column("n")[0].as_py(), t.column("d")[0].as_py()


def test_fabric_hub_outage_and_leaf_restart_lose_nothing_duplicate_nothing(fabric: Fabric) -> None:
    port = fabric.start_adapter()
    fabric.start_receiver()
    assert insert(port, rows(0, 1000, "pre")) == 1000
    wait_for(lambda: fabric.receiver_rows() >= 1000, 60, "rows before the outage")

    fabric.hub.stop()
    t0, sent, batch = time.monotonic(), 0, max(500, OUTAGE_ROWS // 20)
    while sent < OUTAGE_ROWS:  # rows flow at the edge while the cloud is away
        n = min(batch, OUTAGE_ROWS - sent)
        assert insert(port, rows(sent, n, "out")) == n
        sent += n
        if sent == OUTAGE_ROWS // 2:  # the edge leaf restarts too; its file store must survive
            fabric.leaves["acme"].stop()
            fabric.leaves["acme"].start()
            wait_for(lambda: fabric.adapter_status()["nats_connected"], 30, "adapter reconnected to the leaf")
    remaining = HUB_DOWN_S - (time.monotonic() - t0)
    if remaining > 0:  # keep the hub down for the whole outage
        time.sleep(remaining)
    assert fabric.receiver_rows() == 1000  # nothing could have reached the cloud
    fabric.hub.start()

    total = 1000 + OUTAGE_ROWS
    wait_for(lambda: fabric.receiver_rows() >= total, 180, f"{total} rows after the hub returned")
    fabric.stop("receiver-acme")
    assert counts(fabric) == (total, total)


def test_fabric_adapter_killed_mid_insert_retry_stores_each_row_once(fabric: Fabric) -> None:
    port = fabric.start_adapter()
    fabric.start_receiver()
    n, half, block = 8000, 4000, 500
    data = rows(0, n, "kill")

    def generator():
        for i, row in enumerate(data):
            if i == half + 1:  # the first half's blocks are on the wire: wait until relayed, then kill
                wait_for(lambda: fabric.adapter_status()["relay"]["rows"] >= half, 60, "first half relayed")
                fabric.stop("adapter-acme", signal.SIGKILL)
            yield row

    with pytest.raises(Exception):  # noqa: B017 - the connection dies under the client (EOF/reset)
        insert(port, generator(), block=block)
    fabric.start_adapter(port=port)
    assert insert(port, data, block=block) == n  # the client's retry: the same INSERT again
    status = wait_for(lambda: (s := fabric.adapter_status())["relay"]["rows"] >= n and s, 30, "status after the retry")
    assert status["relay"]["duplicates"] >= half // block  # JetStream dropped the re-sent blocks
    wait_for(lambda: fabric.receiver_rows() >= n, 120, f"{n} rows in the receiver")
    fabric.stop("receiver-acme")
    assert counts(fabric) == (n, n)
