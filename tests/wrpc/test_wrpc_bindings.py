"""Typed bindings: generated from the WIT package (golden, whole file) and usable end to end."""

from __future__ import annotations

import asyncio
from pathlib import Path

import wrpc
from wrpc import bindgen, tcp
from wrpc.bindings import telemetry as tb

ROOT = Path(__file__).resolve().parents[2]


def test_wrpc_checked_in_bindings_are_what_the_generator_writes() -> None:
    assert (ROOT / "wrpc" / "bindings" / "telemetry.py").read_text() == bindgen.generate(), (
        "run: python -m wrpc.bindgen > wrpc/bindings/telemetry.py"
    )


def status(name: str) -> tb.ServiceStatus:
    return tb.ServiceStatus(name, tb.CheckKind.HOST_METRICS, True, "{}", 5, 1_760_000_000_000_000_000)


class Checker:
    async def get_status(self, service_name: str) -> wrpc.Ok | wrpc.Err:
        return wrpc.Ok(status(service_name)) if service_name == "host" else wrpc.Err("unknown")

    def list_services(self) -> list[str]:
        return ["host"]


class Core:
    def __init__(self) -> None:
        self.reports: list[tb.PollerReport] = []

    def report_status(self, report: tb.PollerReport) -> wrpc.Ok:
        self.reports.append(report)
        return wrpc.Ok()


def test_wrpc_typed_client_and_server_round_trip() -> None:
    async def main() -> None:
        server = tcp.Server()
        tb.register_checker(server, Checker())
        core = Core()
        tb.register_core(server, core)
        async with server:
            client = tb.CheckerClient(tcp.Client("127.0.0.1", server.port))
            assert await client.list_services() == ["host"]
            got = await client.get_status("host")
            assert got == wrpc.Ok(status("host")) and isinstance(got.value, tb.ServiceStatus)
            assert got.value.service_type is tb.CheckKind.HOST_METRICS
            assert await client.get_status("nope") == wrpc.Err("unknown")
            report = tb.PollerReport(
                "p1", 7, 123, [tb.AgentReport("a1", [status("host")], [tb.CheckError("x", "down")])]
            )
            assert await tb.CoreClient(tcp.Client("127.0.0.1", server.port)).report_status(report) == wrpc.Ok()
        assert core.reports == [report]

    asyncio.run(asyncio.wait_for(main(), 20))


def test_wrpc_dataclasses_encode_like_dicts() -> None:
    b = tb.Batch("flows", 3, b"\x01\x02")
    types = wrpc.wit.telemetry().types
    as_dict = {"stream": "flows", "seq": 3, "arrow-ipc": b"\x01\x02"}
    assert wrpc.encode("batch", b, types) == wrpc.encode("batch", as_dict, types)
    assert tb.Batch.from_wire(wrpc.decode("batch", wrpc.encode("batch", b, types), types)) == b
