"""Daemon configuration: every mistake gives a clear error naming the key; checks report honestly."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from wrpc_nats_helpers import free_port

from pullchain import checks
from pullchain.cli import main_for
from pullchain.config import ConfigError, load

GOOD = {
    "checker": '[checker]\nlisten = "127.0.0.1:5000"\n[[checks]]\nname = "h"\ntype = "host-metrics"\n',
    "agent": '[agent]\nid = "a"\n[[checkers]]\naddress = "127.0.0.1:5000"\n',
    "poller": '[poller]\nid = "p"\ntenant = "acme"\n[[agents]]\naddress = "127.0.0.1:5001"\n',
    "core": '[core]\ntenant = "acme"\noutput = "/tmp/x.jsonl"\n',
}

BAD = [
    ("checker", "[checker\n", "invalid TOML"),
    ("checker", '[checker]\nlisten = "nohost"\n[[checks]]\nname = "h"\ntype = "host-metrics"\n', "checker.listen"),
    ("checker", '[checker]\ntimeout = -1\n[[checks]]\nname = "h"\ntype = "host-metrics"\n', "greater than 0"),
    ("checker", '[checker]\nlisten = 5\n[[checks]]\nname = "h"\ntype = "host-metrics"\n', "must be str"),
    ("checker", "[checker]\n", "at least one [[checks]]"),
    ("checker", '[[checks]]\nname = "h"\ntype = "ping"\n', "checks[0].type"),
    ("checker", '[[checks]]\nname = "p"\ntype = "port"\nhost = "x"\n', "checks[0].port: required"),
    ("checker", '[[checks]]\nname = "p"\ntype = "port"\nhost = "x"\nport = 70000\n', "port number"),
    ("checker", '[[checks]]\nname = "p"\ntype = "port"\nhost = "x"\nport = 1\nurl = "y"\n', "checks[0].url: unknown"),
    ("checker", '[[checks]]\nname = "w"\ntype = "http"\nurl = "ftp://x"\n', "http(s) URL"),
    (
        "checker",
        '[[checks]]\nname = "h"\ntype = "host-metrics"\n[[checks]]\nname = "h"\ntype = "host-metrics"\n',
        "unique",
    ),
    ("checker", '[chekcer]\n[[checks]]\nname = "h"\ntype = "host-metrics"\n', "unknown section [chekcer]"),
    ("checker", '[checker]\nlog_level = "loud"\n[[checks]]\nname = "h"\ntype = "host-metrics"\n', "log_level"),
    ("agent", "[agent]\n", "agent.id: required"),
    ("agent", '[agent]\nid = "a"\n', "at least 1 [[checkers]]"),
    ("agent", 'checkers = 3\n[agent]\nid = "a"\n', "array of tables"),
    ("poller", '[poller]\nid = "p"\ntenant = "a.b"\n[[agents]]\naddress = "h:1"\n', "poller.tenant"),
    ("poller", '[poller]\nid = "p"\ntenant = "a"\nnats_url = "http://x"\n[[agents]]\naddress = "h:1"\n', "nats_url"),
    ("poller", '[poller]\nid = "p"\ntenant = "a"\ninterval = true\n[[agents]]\naddress = "h:1"\n', "interval"),
    ("core", '[core]\ntenant = "acme"\n', "core.output: required"),
]


@pytest.mark.parametrize("role", sorted(GOOD))
def test_pull_good_configs_load_with_defaults(role: str, tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text(GOOD[role])
    cfg = load(role, p)
    if role == "poller":
        assert cfg.main["stream"] == "SR_ACME" and cfg.main["interval"] == 30.0
    if role == "agent":
        assert cfg.items == [{"address": "127.0.0.1:5000", "timeout": 5.0}]


@pytest.mark.parametrize(("role", "text", "msg"), BAD, ids=[b[2] for b in BAD])
def test_pull_bad_configs_name_the_problem(role: str, text: str, msg: str, tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load(role, p)
    assert msg in str(e.value) and str(p) in str(e.value)


def test_pull_cli_exit_status_for_bad_and_missing_config(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main_for("agent", ["-c", str(tmp_path / "missing.toml"), "check-config"]) == 2
    assert "no such file" in capsys.readouterr().err
    p = tmp_path / "c.toml"
    p.write_text(GOOD["core"])
    assert main_for("core", ["-c", str(p), "check-config"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "ok"


def test_pull_checks_report_unavailable_honestly() -> None:
    async def main() -> None:
        closed = await checks.run_check(
            {"name": "c", "type": "port", "host": "127.0.0.1", "port": free_port(), "timeout": 2.0}
        )
        assert closed["available"] is False and "error" in json.loads(closed["message"])

        async def not_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"SSH-2.0-OpenSSH\r\n")
            await writer.drain()
            writer.close()

        srv = await asyncio.start_server(not_http, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        async with srv:
            got = await checks.run_check(
                {"name": "w", "type": "http", "url": f"http://127.0.0.1:{port}/", "timeout": 2.0}
            )
            assert got["available"] is False and json.loads(got["message"])["error"] == "not an HTTP response"
            ok = await checks.run_check(
                {"name": "p", "type": "port", "host": "127.0.0.1", "port": port, "timeout": 2.0}
            )
            assert ok["available"] is True and ok["service-type"] == "port"
        strict = await checks.run_check(
            {"name": "h", "type": "host-metrics", "disk_path": "/", "max_load1": 1e-9, "min_free_disk_percent": 100.0}
        )
        problems = json.loads(strict["message"])["problems"]
        assert strict["available"] is False and len(problems) == 2

    asyncio.run(asyncio.wait_for(main(), 20))
