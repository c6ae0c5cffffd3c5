"""The edge footprint: RSS of every edge daemon at idle and under load, against the 116 MB design budget.

The four edge daemons run at the same time, as on a device (Proton itself is not counted):

- ``serviceradar-adapter`` connected to a JetStream server with the edge leaf's limits (1 MB
  ``max_payload``); load: a recorded proton-driver INSERT (gNMI-shaped, LZ4, 65,536-row blocks)
  replayed at full speed several times (the stream purged between replays so nothing is de-duplicated).
- ``serviceradar-ingest syslog`` writing Parquet; load: a burst of RFC 5424 lines over UDP.
- ``serviceradar-checker`` (host metrics + a port check) and ``serviceradar-agent`` polling it;
  load: agent polls, 8 in flight.

Per daemon: RSS after its imports only (a separate interpreter importing what the daemon imports),
at idle (started, connected, before any load), its peak under load (the kernel's ``VmHWM``), and at
rest after the load. Whole edge: the sum of the daemons' RSS at idle and the sum of their peaks
(conservative: pages of the Python binary and of shared libraries are counted once per process), and
the edge's resident memory with every physical page counted once (distinct page frames of all four
processes from ``/proc/PID/pagemap``; needs root, skipped otherwise).

Then the same four as one process, ``serviceradar-edge`` (one interpreter, one event loop, NumPy and
pyarrow loaded once), with the same configs and the same simultaneous load: its RSS idle, its peak
(``VmHWM``) and at rest after the load, next to the four-process sums.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from benchmarks import Result

SUITE = "edge"
BUDGET_MB = 116.0
TENANT = "edge"
# what each daemon's console script imports before it serves (its import-only RSS)
IMPORTS = {
    "adapter": "import adapter.cli, adapter.daemon",
    "ingest": "import ingest.cli, ingest.syslog",
    "checker": "import pullchain.cli",
    "agent": "import pullchain.cli",
}
EDGE_IMPORTS = "import edge.cli, adapter.cli, adapter.daemon, ingest.cli, ingest.syslog, pullchain.cli"


# -- memory of a process -------------------------------------------------------------------------


def status_mb(pid: int, key: str = "VmRSS") -> float:
    """A ``/proc/PID/status`` size in MB (``VmRSS`` now, ``VmHWM`` the peak since start)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def frames(pid: int) -> np.ndarray | None:
    """Physical page frame numbers of ``pid``'s resident pages (None without the right to read them)."""
    out = []
    try:
        with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/pagemap", "rb") as pm:
            for line in maps:
                if line.rstrip().endswith("[vsyscall]"):
                    continue
                lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                pm.seek(lo // 4096 * 8)
                e = np.frombuffer(pm.read((hi - lo) // 4096 * 8), "<u8")
                out.append(e[(e >> np.uint64(63)) == 1] & np.uint64((1 << 55) - 1))
    except (OSError, ValueError):
        return None
    pfn = np.concatenate(out) if out else np.zeros(0, np.uint64)
    return None if pfn.size and not pfn.any() else pfn  # all zero: PFNs hidden (no CAP_SYS_ADMIN)


def unique_mb(pids: list[int]) -> float | None:
    """Resident memory of all ``pids`` together, every physical page counted once."""
    parts = [frames(p) for p in pids]
    if any(p is None for p in parts):
        return None
    return np.unique(np.concatenate(parts)).size * 4096 / (1 << 20)  # type: ignore[arg-type]


@contextlib.contextmanager
def sampled(measure, every: float, first: float):
    """While the block runs, call ``measure`` every ``every`` s in a thread; yields the values so far
    (``first`` included; a None or an OSError from a process that went away is skipped)."""
    values = [first]
    done = threading.Event()

    def loop() -> None:
        while not done.wait(every):
            with contextlib.suppress(OSError):
                v = measure()
                if v is not None:
                    values.append(v)

    sampler = threading.Thread(target=loop, daemon=True)
    sampler.start()
    try:
        yield values
    finally:
        done.set()
        sampler.join()


def import_rss(stmt: str, env: dict | None = None, cwd: str | None = None) -> float:
    """RSS (MB) of a fresh interpreter after ``stmt`` (the daemon's imports, nothing else)."""
    code = f"{stmt}\nprint([int(x.split()[1]) for x in open('/proc/self/status') if x.startswith('VmRSS:')][0] / 1024)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd, check=True)
    return float(out.stdout.split()[-1])


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


# -- the daemons ---------------------------------------------------------------------------------


def start_adapter(
    work: Path, nats_url: str, server: str = "", nats: str = "", root: str | None = None
) -> tuple[subprocess.Popen, int]:
    """``serviceradar-adapter`` with a config file (``server``/``nats``: more TOML lines of those tables);
    ``root`` runs another checkout of the code."""
    from fabric.process import free_port

    port = free_port()
    cfg = work / f"adapter-{port}.toml"
    cfg.write_text(f'tenant = "{TENANT}"\n[server]\nlisten = "127.0.0.1:{port}"\n{server}\n'
                   f'[nats]\nurl = "{nats_url}"\n{nats}\n')
    env = dict(os.environ, PYTHONPATH=root) if root else None
    proc = subprocess.Popen([sys.executable, "-m", "adapter", "--config", str(cfg), "--log-level", "WARNING"],
                            stdout=subprocess.DEVNULL, env=env, cwd=root)  # fmt: skip
    _wait_port(port, proc)
    return proc, port


def record_session(port: int, rows: int) -> bytes:
    """The bytes of a real proton-driver INSERT (LZ4, 65,536-row blocks) of gNMI-shaped rows."""
    from benchmarks.bench_adapter import _Recorder, client_insert, gnmi_frame

    rec = _Recorder(port)
    client_insert(rec.port, gnmi_frame(rows, seed=7), "lz4", 65_536)
    return bytes(rec.sent)


async def _purge(nats_url: str) -> None:
    import nats

    nc = await nats.connect(nats_url)
    with contextlib.suppress(Exception):
        await nc.jetstream().purge_stream(f"SR_{TENANT.upper()}")
    await nc.close()


def replay_load(port: int, session: bytes, times: int, nats_url: str, rows: int) -> float:
    """Replay ``session`` ``times`` times (purging between); rows/s of the fastest replay."""
    from benchmarks.bench_adapter import replay

    best = 0.0
    for _ in range(times):
        asyncio.run(_purge(nats_url))
        best = max(best, rows / replay(port, session))
    return best


def start_ingest(work: Path) -> tuple[subprocess.Popen, int]:
    from fabric.process import free_port

    port = free_port()
    exe = Path(sys.executable).parent / "serviceradar-ingest"
    proc = subprocess.Popen([str(exe), "syslog", "--listen", f"udp://127.0.0.1:{port}", "--output",
                             str(work / "syslog.parquet")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_udp(port, proc, "serviceradar-ingest")
    return proc, port


def _wait_udp(port: int, proc: subprocess.Popen, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # UDP: wait until the socket is bound
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited")
        if f":{port:04X}" in Path("/proc/net/udp").read_text():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not bind")


def start_edge(work: Path, nats_url: str) -> tuple[subprocess.Popen, int, int, int]:
    """``serviceradar-edge`` running the adapter, a syslog collector (Parquet), the checker and the agent with
    the configs of the four-process edge: (process, adapter port, syslog port, agent port)."""
    from fabric.process import free_port

    pport, sport = free_port(), free_port()
    adapter = work / "edge-adapter.toml"
    adapter.write_text(f'tenant = "{TENANT}"\n[server]\nlisten = "127.0.0.1:{pport}"\n[nats]\nurl = "{nats_url}"\n')
    checker, _, agent, aport = pullchain_configs(work)
    exe = Path(sys.executable).parent / "serviceradar-edge"
    syslog = f"syslog --listen udp://127.0.0.1:{sport} --output {work / 'edge-syslog.parquet'}"
    proc = subprocess.Popen([str(exe), "--adapter", str(adapter), "--collector", syslog, "--checker", str(checker),
                             "--agent", str(agent), "--log-level", "WARNING"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    _wait_port(pport, proc)
    _wait_port(aport, proc)
    _wait_udp(sport, proc, "serviceradar-edge")
    return proc, pport, sport, aport


def syslog_burst(port: int, lines: int) -> float:
    """Send ``lines`` RFC 5424 lines over UDP as fast as one thread can; lines/s sent."""
    msgs = [(f"<{(i % 24) * 8 + 6}>1 2024-05-01T10:00:{i % 60:02d}.{i % 1000:03d}Z router-{i % 500:03d} sshd "
             f"{1000 + i % 97} - - Failed password for root from 10.{i % 250}.{i % 7}.{i % 200} port {20000 + i % 999}"
             ).encode() for i in range(1000)]  # fmt: skip
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    t0 = time.perf_counter()
    for i in range(lines):
        s.sendto(msgs[i % 1000], ("127.0.0.1", port))
    s.close()
    return lines / (time.perf_counter() - t0)


def pullchain_configs(work: Path) -> tuple[Path, int, Path, int]:
    """checker.toml (host metrics + a port check) and agent.toml polling it: (checker, port, agent, port)."""
    from fabric.process import free_port

    cport, aport = free_port(), free_port()
    checker, agent = work / "checker.toml", work / "agent.toml"
    checker.write_text(f'[checker]\nlisten = "127.0.0.1:{cport}"\n[[checks]]\nname = "host"\ntype = "host-metrics"\n'
                       f'[[checks]]\nname = "self"\ntype = "port"\nhost = "127.0.0.1"\nport = {cport}\n')  # fmt: skip
    agent.write_text(f'[agent]\nid = "a"\nlisten = "127.0.0.1:{aport}"\n[[checkers]]\naddress = "127.0.0.1:{cport}"\n')
    return checker, cport, agent, aport


def start_pullchain(work: Path) -> tuple[dict[str, subprocess.Popen], int]:
    checker, cport, agent, aport = pullchain_configs(work)
    bin_dir = Path(sys.executable).parent
    procs = {}
    for role, cfg, port in (("checker", checker, cport), ("agent", agent, aport)):
        procs[role] = subprocess.Popen([str(bin_dir / f"serviceradar-{role}"), "-c", str(cfg)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        _wait_port(port, procs[role])
    return procs, aport


def agent_polls(port: int, polls: int) -> float:
    """``polls`` agent polls (8 in flight); polls/s."""
    from wrpc import tcp, wit

    poll = wit.telemetry().func("agent", "poll")

    async def go() -> float:
        client = tcp.Client("127.0.0.1", port, timeout=10)
        await client.invoke(poll)
        sem = asyncio.Semaphore(8)

        async def one() -> None:
            async with sem:
                await client.invoke(poll)

        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(polls)))
        return polls / (time.perf_counter() - t0)

    return asyncio.run(go())


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- the measurement -----------------------------------------------------------------------------


def simultaneous_load(quick: bool, aport: int, session: bytes, nats_url: str, rows: int, sport: int,
                      agent_port: int) -> dict[str, float]:
    """Every load at once (adapter replay, syslog burst, agent polls); their rates."""
    rates: dict[str, float] = {}

    def run_(name: str, fn, *a) -> None:
        rates[name] = fn(*a)

    loads = [threading.Thread(target=run_, args=("adapter", replay_load, aport, session, 3 if quick else 5,
                                                 nats_url, rows)),
             threading.Thread(target=run_, args=("ingest", syslog_burst, sport, 100_000 if quick else 400_000)),
             threading.Thread(target=run_, args=("agent", agent_polls, agent_port, 200 if quick else 1000))]
    for t in loads:
        t.start()
    for t in loads:
        t.join()
    time.sleep(1.0)  # the collector's queue drains, the adapter's last acks arrive
    return rates


def measure_one_process(work: Path, nats_url: str, session: bytes, rows: int, quick: bool) -> dict:
    """``serviceradar-edge`` with the four components: RSS idle, peak under the same load, at rest after."""
    asyncio.run(_purge(nats_url))
    proc, aport, sport, agent_port = start_edge(work, nats_url)
    try:
        agent_polls(agent_port, 1)
        time.sleep(2.0)
        idle, idle_anon = status_mb(proc.pid), status_mb(proc.pid, "RssAnon")
        with sampled(lambda: status_mb(proc.pid, "RssAnon"), 0.05, idle_anon) as anon:
            rates = simultaneous_load(quick, aport, session, nats_url, rows, sport, agent_port)
        peak = status_mb(proc.pid, "VmHWM")
        time.sleep(3.0)
        after, after_anon = status_mb(proc.pid), status_mb(proc.pid, "RssAnon")
    finally:
        _stop(proc)
    out = work / "edge-syslog.parquet"
    stored = pq.ParquetFile(out).metadata.num_rows if out.exists() else 0  # the rest was dropped (kernel or queue)
    return {"idle": idle, "peak": peak, "after": after, "rates": rates, "exit": proc.returncode, "stored": stored,
            "imports": import_rss(EDGE_IMPORTS), "idle_anon": idle_anon, "peak_anon": max(anon),
            "after_anon": after_anon}  # fmt: skip


def measure_edge(quick: bool) -> dict:
    """Start the edge, measure idle, load every daemon at once, measure the peaks and the rest after."""
    from fabric.process import NatsProcess, free_port

    work = Path(tempfile.mkdtemp(prefix="bench-edge-"))
    procs: dict[str, subprocess.Popen] = {}
    nats_srv = None
    try:
        port = free_port()
        nats_srv = NatsProcess(work, "leaf", f'listen: "127.0.0.1:{port}"\njetstream {{ store_dir: "{work}/js" }}\n',
                               port).start()  # fmt: skip
        procs["adapter"], aport = start_adapter(work, nats_srv.url)
        procs["ingest"], sport = start_ingest(work)
        pc, agent_port = start_pullchain(work)
        procs.update(pc)
        rows = 200_000 if quick else 1_000_000
        # the recording is made against a second adapter, so the measured one stays idle until the load
        rec_proc, rec_port = start_adapter(work, nats_srv.url)
        session = record_session(rec_port, rows)
        _stop(rec_proc)
        asyncio.run(_purge(nats_srv.url))
        agent_polls(agent_port, 1)  # one poll: the checker has run its checks once
        time.sleep(2.0)
        pids = {k: p.pid for k, p in procs.items()}
        idle = {k: status_mb(pid) for k, pid in pids.items()}
        idle_unique = unique_mb(list(pids.values()))
        with sampled(lambda: unique_mb(list(pids.values())), 0.1, idle_unique or 0.0) as peak_unique:
            rates = simultaneous_load(quick, aport, session, nats_srv.url, rows, sport, agent_port)
        peak = {k: status_mb(pid, "VmHWM") for k, pid in pids.items()}
        time.sleep(3.0)
        after = {k: status_mb(pid) for k, pid in pids.items()}
        after_unique = unique_mb(list(pids.values()))
        imports = {k: import_rss(stmt) for k, stmt in IMPORTS.items()}
        for p in procs.values():  # the one-process edge is measured alone
            _stop(p)
        one = measure_one_process(work, nats_srv.url, session, rows, quick)
        return {"idle": idle, "peak": peak, "after": after, "imports": imports, "rates": rates, "rows": rows,
                "idle_unique": idle_unique, "peak_unique": max(peak_unique) if idle_unique is not None else None,
                "after_unique": after_unique, "one": one}  # fmt: skip
    finally:
        for p in procs.values():
            _stop(p)
        if nats_srv is not None:
            nats_srv.stop()
        shutil.rmtree(work, ignore_errors=True)


def results(m: dict) -> list[Result]:
    out = []
    for name in ("adapter", "ingest", "checker", "agent"):
        out.append(Result(SUITE, f"serviceradar-{name} RSS idle / peak under load", "MB", m["peak"][name],
                          higher_is_better=False, note=f"imports only {m['imports'][name]:.1f} MB, idle "
                          f"{m['idle'][name]:.1f} MB, at rest after the load {m['after'][name]:.1f} MB"))  # fmt: skip
    load = (f"adapter: {m['rows']:,}-row LZ4 INSERT replayed ({m['rates']['adapter'] / 1e3:.0f} k rows/s); syslog "
            f"UDP burst ({m['rates']['ingest'] / 1e3:.0f} k lines/s sent); agent polls "
            f"({m['rates']['agent']:.0f}/s)")  # fmt: skip
    idle_sum, peak_sum = sum(m["idle"].values()), sum(m["peak"].values())
    out.append(Result(SUITE, "whole edge RSS idle (adapter + ingest + checker + agent)", "MB", idle_sum,
                      "design budget", BUDGET_MB, target="<= 116 MB", higher_is_better=False,
                      note="sum of the four daemons' RSS (shared pages counted once per process)"))  # fmt: skip
    out.append(Result(SUITE, "whole edge RSS peak under load (sum of per-daemon peaks)", "MB", peak_sum,
                      "design budget", BUDGET_MB, target="<= 116 MB", higher_is_better=False,
                      note=f"all four loaded at once; {load}"))  # fmt: skip
    if m["idle_unique"] is not None:
        out.append(Result(SUITE, "whole edge resident memory, each physical page once: idle / peak", "MB",
                          m["peak_unique"], "design budget", BUDGET_MB, target="<= 116 MB", higher_is_better=False,
                          note=f"idle {m['idle_unique']:.1f} MB, at rest after the load {m['after_unique']:.1f} MB; "
                          "distinct page frames of the four processes (/proc/PID/pagemap), sampled every 0.1 s"))
    one = m["one"]
    out.append(Result(SUITE, "serviceradar-edge, one process (adapter + syslog + checker + agent): RSS idle", "MB",
                      one["idle"], "design budget", BUDGET_MB, target="<= 116 MB", higher_is_better=False,
                      note=f"four processes: {idle_sum:.1f} MB; imports only {one['imports']:.1f} MB"))  # fmt: skip
    out.append(Result(SUITE, "serviceradar-edge, one process: RSS peak under the same load", "MB", one["peak"],
                      "design budget", BUDGET_MB, target="<= 116 MB", higher_is_better=False,
                      note=f"four processes: sum of peaks {peak_sum:.1f} MB; at rest after the load "
                      f"{one['after']:.1f} MB; adapter {one['rates']['adapter'] / 1e3:.0f} k rows/s, syslog "
                      f"{one['rates']['ingest'] / 1e3:.0f} k lines/s sent ({one['stored']:,} stored), "
                      f"{one['rates']['agent']:.0f} polls/s; "
                      f"exit {one['exit']} on SIGTERM"))  # fmt: skip
    # RSS also counts the shared libraries' clean file pages, and how many of those a fault maps depends on
    # the kernel's page cache (with large folios the same libarrow.so maps 13 MB or 29 MB), so the budget is
    # also shown against the process's own memory, which only it can free.
    out.append(Result(SUITE, "serviceradar-edge, one process: anonymous memory (RssAnon) idle / peak", "MB",
                      one["peak_anon"], "design budget", BUDGET_MB, target="<= 116 MB", higher_is_better=False,
                      note=f"idle {one['idle_anon']:.1f} MB, at rest after the load {one['after_anon']:.1f} MB; "
                      "sampled every 0.05 s; shared library pages (RssFile) excluded"))  # fmt: skip
    return out


def run(quick: bool) -> list[Result]:
    return results(measure_edge(quick))
