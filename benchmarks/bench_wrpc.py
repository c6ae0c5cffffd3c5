"""wRPC: codec throughput and invocations per second, each against a baseline in the same run.

- codec, proton batch (one Arrow IPC stream of flow rows): MB/s, baseline pickle of the same dict;
- codec, list<service-status>: records/s, baseline the stdlib C json module on the same list;
- incremental decode of the record list in 64 KiB chunks: records/s, baseline our one-shot decode;
- TCP invocations/s (one connection per call, as the protocol requires): baseline a bare asyncio
  connect / send / half-close / read of the same bytes, i.e. what the connection alone costs;
- NATS invocations/s: baseline nats-py request/reply with the same payload (no wRPC handshake).
"""

from __future__ import annotations

import asyncio
import io
import json
import pickle
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

import wrpc
from benchmarks import Result, best_of
from wrpc import nats as wnats
from wrpc import tcp, wit
from wrpc.codec import IncrementalDecoder, decoder, encoder

PKG = wit.telemetry()
BATCH_T = PKG.types["batch"]
STATUSES_T = wrpc.parse_type("list<service-status>", PKG.types)
GET_STATUS = PKG.func("checker", "get-status")
SUITE = "wrpc"


def proton_batch(rows: int) -> dict[str, Any]:
    """A realistic batch: flow rows as one Arrow IPC stream."""
    table = pa.table(
        {
            "ts": pa.array(range(rows), pa.int64()),
            "src": pa.array([f"10.0.{i % 256}.{i % 200}" for i in range(rows)]),
            "dst_port": pa.array([i % 65535 for i in range(rows)], pa.uint16()),
            "bytes": pa.array([i * 7 for i in range(rows)], pa.uint64()),
        }
    )
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return {"stream": "flows", "seq": 42, "arrow-ipc": sink.getvalue()}


def statuses(n: int) -> list[dict[str, Any]]:
    return [
        {
            "service-name": f"svc-{i}",
            "service-type": ("port", "http", "host-metrics")[i % 3],
            "available": i % 7 != 0,
            "message": '{"host": "10.0.0.1", "port": 22}',
            "response-time-ns": 1_000_000 + i,
            "timestamp": 1_760_000_000_000_000_000 + i,
        }
        for i in range(n)
    ]


def bench_codec(quick: bool) -> list[Result]:
    out = []
    batch = proton_batch(20_000 if quick else 200_000)
    enc_b, dec_b = encoder(BATCH_T), decoder(BATCH_T)

    def enc_batch() -> bytes:
        buf = bytearray()
        enc_b(batch, buf)
        return bytes(buf)

    data = enc_batch()
    mb = len(data) / 1e6
    reps = 20
    t_ours = best_of(lambda: [enc_batch() for _ in range(reps)]) / reps
    t_base = best_of(lambda: [pickle.dumps(batch, 5) for _ in range(reps)]) / reps
    out.append(
        Result(SUITE, f"encode proton batch ({mb:.1f} MB Arrow IPC)", "MB/s", mb / t_ours, "pickle", mb / t_base)
    )
    pickled = pickle.dumps(batch, 5)
    t_ours = best_of(lambda: [dec_b(data, 0) for _ in range(reps)]) / reps
    t_base = best_of(lambda: [pickle.loads(pickled) for _ in range(reps)]) / reps
    out.append(Result(SUITE, "decode proton batch", "MB/s", mb / t_ours, "pickle", mb / t_base))

    recs = statuses(10_000 if quick else 100_000)
    n = len(recs)
    enc_s, dec_s = encoder(STATUSES_T), decoder(STATUSES_T)
    buf = bytearray()
    enc_s(recs, buf)
    wire = bytes(buf)
    js = json.dumps(recs)

    def enc_recs() -> None:
        enc_s(recs, bytearray())

    t_ours, t_base = best_of(enc_recs), best_of(lambda: json.dumps(recs))
    out.append(
        Result(
            SUITE,
            "encode list<service-status>",
            "records/s",
            n / t_ours,
            "json.dumps",
            n / t_base,
            note=f"{len(wire) / n:.0f} B/record vs JSON {len(js) / n:.0f} B; {len(wire) / 1e6 / t_ours:.0f} MB/s",
        )
    )
    t_ours, t_base = best_of(lambda: dec_s(wire, 0)), best_of(lambda: json.loads(js))
    out.append(
        Result(
            SUITE,
            "decode list<service-status>",
            "records/s",
            n / t_ours,
            "json.loads",
            n / t_base,
            note=f"{len(wire) / 1e6 / t_ours:.0f} MB/s",
        )
    )

    def chunked() -> None:
        d = IncrementalDecoder(STATUSES_T)
        for i in range(0, len(wire), 65536):
            d.feed(wire[i : i + 65536])
        assert d.done

    t_ours = best_of(chunked)
    t_base = best_of(lambda: dec_s(wire, 0))
    out.append(
        Result(SUITE, "incremental decode, 64 KiB chunks", "records/s", n / t_ours, "one-shot decode", n / t_base)
    )
    return out


async def _tcp_rates(calls: int, concurrency: int) -> tuple[float, float]:
    status = statuses(1)[0]
    server = tcp.Server(timeout=30)
    server.register(GET_STATUS, lambda name: wrpc.Ok(status))
    async with server:
        client = tcp.Client("127.0.0.1", server.port)
        assert await client.invoke(GET_STATUS, "svc-0") == wrpc.Ok(status)
        ours = await _rate(lambda: client.invoke(GET_STATUS, "svc-0"), calls, concurrency)
    reply = wrpc.encode("result<service-status, string>", wrpc.Ok(status), PKG.types)

    async def raw_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.write(reply)
        writer.write_eof()
        writer.close()

    srv = await asyncio.start_server(raw_server, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]

    async def raw_call() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x00\x05svc-0")
        writer.write_eof()
        await reader.read()
        writer.close()

    async with srv:
        base = await _rate(raw_call, calls, concurrency)
    return ours, base


async def _rate(call: Any, calls: int, concurrency: int) -> float:
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            await call()

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(calls)))
    return calls / (time.perf_counter() - t0)


async def _nats_rates(url: str, calls: int, concurrency: int) -> tuple[float, float]:
    import nats

    status = statuses(1)[0]
    nc_s, nc_c = await nats.connect(url), await nats.connect(url)
    server = wnats.Server(nc_s, prefix="bench")
    server.register(GET_STATUS, lambda name: wrpc.Ok(status))
    async with server:
        client = wnats.Client(nc_c, prefix="bench")
        assert await client.invoke(GET_STATUS, "svc-0") == wrpc.Ok(status)
        ours = await _rate(lambda: client.invoke(GET_STATUS, "svc-0"), calls, concurrency)
    reply = wrpc.encode("result<service-status, string>", wrpc.Ok(status), PKG.types)

    async def responder(msg: Any) -> None:
        await msg.respond(reply)

    await nc_s.subscribe("bench.plain", cb=responder)
    await nc_s.flush()
    base = await _rate(lambda: nc_c.request("bench.plain", b"\x05svc-0", timeout=10), calls, concurrency)
    await nc_s.close()
    await nc_c.close()
    return ours, base


def bench_transports(quick: bool) -> list[Result]:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "wrpc"))
    from wrpc_nats_helpers import NatsServer

    calls = 500 if quick else 3000
    out = []
    for conc in (1, 16):
        ours, base = asyncio.run(_tcp_rates(calls, conc))
        out.append(
            Result(
                SUITE,
                f"TCP get-status, {conc} in flight",
                "calls/s",
                ours,
                "bare connect+send+recv",
                base,
                note="one TCP connection per call (spec §2.1)",
            )
        )
    with tempfile.TemporaryDirectory() as d:
        srv = NatsServer(Path(d)).start()
        try:
            for conc in (1, 16):
                ours, base = asyncio.run(_nats_rates(srv.url, calls, conc))
                out.append(
                    Result(
                        SUITE,
                        f"NATS get-status, {conc} in flight",
                        "calls/s",
                        ours,
                        "nats-py request/reply",
                        base,
                        note="wRPC adds a handshake and an EOF message per call",
                    )
                )
        finally:
            srv.stop()
    return out


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _daemon_rss(polls: int) -> list[Result]:
    """RSS of a checker and an agent daemon at idle and after ``polls`` agent polls."""
    import socket
    import sys

    def port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    cport, aport = port(), port()
    bin_dir = Path(sys.executable).parent
    out = []
    with tempfile.TemporaryDirectory() as d:
        checker = Path(d) / "checker.toml"
        checker.write_text(
            f'[checker]\nlisten = "127.0.0.1:{cport}"\n[[checks]]\nname = "host"\ntype = "host-metrics"\n'
            f'[[checks]]\nname = "self"\ntype = "port"\nhost = "127.0.0.1"\nport = {cport}\n'
        )
        agent = Path(d) / "agent.toml"
        agent.write_text(
            f'[agent]\nid = "a"\nlisten = "127.0.0.1:{aport}"\n[[checkers]]\naddress = "127.0.0.1:{cport}"\n'
        )
        procs = {}
        for role, cfg in (("checker", checker), ("agent", agent)):
            procs[role] = await asyncio.create_subprocess_exec(
                str(bin_dir / f"serviceradar-{role}"), "-c", str(cfg), stderr=asyncio.subprocess.DEVNULL
            )
        try:
            client = tcp.Client("127.0.0.1", aport, timeout=10)
            for _ in range(200):  # wait until both serve
                try:
                    await client.invoke(PKG.func("agent", "poll"))
                    break
                except wrpc.TransportError:
                    await asyncio.sleep(0.05)
            idle = {r: _rss_mb(p.pid) for r, p in procs.items()}
            rate = await _rate(lambda: client.invoke(PKG.func("agent", "poll")), polls, 8)
            loaded = {r: _rss_mb(p.pid) for r, p in procs.items()}
        finally:
            for p in procs.values():
                p.terminate()
                await p.wait()
    for role in procs:
        out.append(
            Result(
                SUITE,
                f"serviceradar-{role} RSS idle / after {polls} polls",
                "MB",
                loaded[role],
                higher_is_better=False,
                note=f"idle {idle[role]:.1f} MB",
            )
        )
    out.append(Result(SUITE, "agent polls (agent -> checker, 2 checks, 8 in flight)", "polls/s", rate))
    return out


def bench_daemons(quick: bool) -> list[Result]:
    return asyncio.run(_daemon_rss(100 if quick else 1000))


def run(quick: bool) -> list[Result]:
    """All wRPC benchmarks."""
    return bench_codec(quick) + bench_transports(quick) + bench_daemons(quick)
