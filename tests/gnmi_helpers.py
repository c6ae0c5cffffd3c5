"""Test helpers for gNMI: our own scriptable target on the gNMI protobufs, certificates, a live collector.

The target is ours (grpcio's server with the generated ``gNMIServicer``), not an independent
implementation: it exists for what the third-party target (splice-gnmi) cannot do: TLS and mTLS,
username/password checks, ON_CHANGE pushes, deletes, every TypedValue kind, a restart. Tests compare
what the collector recorded with the exact bytes this target sent.
"""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from bmp_helpers import LoopThread

from ingest.collector import RuntimeOptions
from ingest.gnmi import GnmiCollector, GnmiOptions, TargetOptions, memory_collector
from ingest.gnmi_proto import gnmi_pb2, gnmi_pb2_grpc


class ScriptedTarget(gnmi_pb2_grpc.gNMIServicer):
    """Answers Subscribe with ``snapshot()`` + sync_response, then (STREAM) whatever is pushed."""

    def __init__(self, snapshot: Callable[[], list[gnmi_pb2.SubscribeResponse]], password: str = "") -> None:
        self.snapshot = snapshot
        self.password = password
        self.requests: list[gnmi_pb2.SubscribeRequest] = []
        self.sent: list[bytes] = []  # every SubscribeResponse sent, serialized exactly as on the wire
        self.pushes: queue.Queue = queue.Queue()
        self.polls = 0
        self.sessions = 0
        self._lock = threading.Lock()

    def _send(self, resp: gnmi_pb2.SubscribeResponse) -> gnmi_pb2.SubscribeResponse:
        with self._lock:
            self.sent.append(resp.SerializeToString())
        return resp

    def Subscribe(self, request_iterator: Any, context: grpc.ServicerContext):
        md = dict(context.invocation_metadata())
        if self.password and (md.get("username") != "admin" or md.get("password") != self.password):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad username or password")
        first = next(request_iterator)
        self.requests.append(first)
        self.sessions += 1
        mode = first.subscribe.mode
        for r in self.snapshot():
            yield self._send(r)
        yield self._send(gnmi_pb2.SubscribeResponse(sync_response=True))
        if mode == gnmi_pb2.SubscriptionList.ONCE:
            return
        if mode == gnmi_pb2.SubscriptionList.POLL:
            for req in request_iterator:
                if req.HasField("poll"):
                    self.polls += 1
                    for r in self.snapshot():
                        yield self._send(r)
                    yield self._send(gnmi_pb2.SubscribeResponse(sync_response=True))
            return
        while context.is_active():
            try:
                r = self.pushes.get(timeout=0.1)
            except queue.Empty:
                continue
            yield self._send(r)


class TargetServer:
    """A grpc server on 127.0.0.1 serving a ScriptedTarget, insecure or with TLS (optionally mTLS)."""

    def __init__(self, target: ScriptedTarget, certs: dict[str, Path] | None = None, mtls: bool = False,
                 port: int = 0) -> None:  # fmt: skip
        self.target = target
        self.certs, self.mtls = certs, mtls
        self.port = self._start(port)

    def _start(self, port: int) -> int:
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        gnmi_pb2_grpc.add_gNMIServicer_to_server(self.target, self.server)
        if self.certs:
            creds = grpc.ssl_server_credentials(
                [(self.certs["server.key"].read_bytes(), self.certs["server.crt"].read_bytes())],
                root_certificates=self.certs["ca.crt"].read_bytes() if self.mtls else None,
                require_client_auth=self.mtls,
            )
            bound = self.server.add_secure_port(f"127.0.0.1:{port}", creds)
        else:
            bound = self.server.add_insecure_port(f"127.0.0.1:{port}")
        self.server.start()
        return bound

    def restart(self) -> None:
        self.server.stop(0).wait()
        self._start(self.port)

    def stop(self) -> None:
        self.server.stop(0).wait()


def make_certs(d: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, made with openssl."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=test-ca")  # fmt: skip
    for name, san in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"), ("client", "subjectAltName=DNS:client")):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={name}", "-addext", san)  # fmt: skip
        (d / f"{name}.ext").write_text(san + "\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext")  # fmt: skip
    return {n: d / n for n in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")}


class LiveGnmi:
    """A GnmiCollector with a memory sink, running on a background event loop."""

    def __init__(self, targets: list[TargetOptions]) -> None:
        self.lt = LoopThread()
        self.col: GnmiCollector = self.lt.run(self._make(targets))

    @staticmethod
    async def _make(targets: list[TargetOptions]) -> GnmiCollector:
        col = memory_collector(targets, GnmiOptions(backoff_initial_s=0.2, backoff_max_s=1.0),
                               RuntimeOptions(flush_ms=100))  # fmt: skip
        col.start()
        return col

    def rows(self) -> list[dict]:
        """Rows flushed so far (the runtime flushes every 100 ms here)."""
        t = self.col.collector.sink.table()  # type: ignore[attr-defined]
        return [] if t is None else t.to_pylist()

    def status(self, name: str) -> dict:
        return self.col.health()["targets"][name]

    def wait_for(self, what: Callable[[], bool], timeout: float, message: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if what():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout}s waiting for {message}; health={self.col.health()}")

    def stop(self) -> None:
        self.lt.run(self.col.stop())
        self.lt.close()
