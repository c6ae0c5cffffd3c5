"""``serviceradar-receiver`` (the cloud receiver daemon) and ``serviceradar-nats`` (configs and dev CA)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import tomllib
from dataclasses import asdict
from pathlib import Path

from adapter.cli import setup_logging
from fabric import natsconf

log = logging.getLogger("fabric.receiver")

RECEIVER_SCHEMA = {
    "tenant": str, "nats_url": str, "user": str, "password": str, "tls_ca": str, "tls_cert": str, "tls_key": str,
    "allowed_server_ids": list, "cloud_stream": str, "edge_stream": str, "edge_domains": list, "durable": str,
    "chdb_path": str, "clickhouse_url": str, "status_file": str,
    "archive_dir": str, "archive_after_days": int, "archive_interval_s": (int, float),
}  # fmt: skip


class ReceiverConfigError(ValueError):
    pass


def load_receiver_config(path: str) -> dict:
    """Flat TOML (see docs/adapter.md); unknown keys and wrong types are errors."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ReceiverConfigError(f"{path}: {e}") from None
    for k, v in data.items():
        if k not in RECEIVER_SCHEMA:
            raise ReceiverConfigError(f"{k}: unknown key (known: {', '.join(RECEIVER_SCHEMA)})")
        expected = RECEIVER_SCHEMA[k]
        if not isinstance(v, expected) or isinstance(v, bool):
            names = "/".join(t.__name__ for t in expected) if isinstance(expected, tuple) else expected.__name__
            raise ReceiverConfigError(f"{k}: expected {names}")
    if "tenant" not in data or "nats_url" not in data:
        raise ReceiverConfigError("tenant and nats_url are required")
    natsconf.check_token("tenant", data["tenant"])
    t = data["tenant"].upper().replace("-", "_")
    data.setdefault("cloud_stream", f"SR_{t}_CLOUD")
    data.setdefault("edge_stream", f"SR_{t}")
    data.setdefault("edge_domains", [natsconf.edge_domain(data["tenant"])])
    data.setdefault("durable", f"receiver_{data['tenant']}")
    data.setdefault("archive_after_days", 30)
    data.setdefault("archive_interval_s", 3600)
    if data["archive_after_days"] < 1 or data["archive_interval_s"] <= 0:
        raise ReceiverConfigError("archive_after_days must be >= 1 and archive_interval_s > 0")
    if not data.get("chdb_path") and not data.get("clickhouse_url"):
        raise ReceiverConfigError("one of chdb_path or clickhouse_url is required")
    return data


async def run_receiver(cfg: dict) -> None:
    import nats

    from fabric.receiver import Receiver, ensure_cloud_stream
    from streams.sinks.clickhouse import ClickHouseSink

    kw: dict = {"reconnect_time_wait": 0.5, "max_reconnect_attempts": -1, "name": f"receiver-{cfg['tenant']}"}
    if cfg.get("user"):
        kw.update(user=cfg["user"], password=cfg.get("password", ""))
    if cfg.get("tls_ca"):
        from fabric.spiffe import client_context

        kw["tls"] = client_context(cfg["tls_ca"], cfg.get("tls_cert"), cfg.get("tls_key"))
    nc = await nats.connect(cfg["nats_url"], **kw)
    js = nc.jetstream()
    await ensure_cloud_stream(js, cfg["cloud_stream"], cfg["edge_domains"], cfg["edge_stream"])
    sink = ClickHouseSink(path=cfg.get("chdb_path") or None, url=cfg.get("clickhouse_url") or None)
    receiver = Receiver(sink)
    consumer = receiver.consumer(js, cfg["cloud_stream"], cfg["durable"])
    task = asyncio.create_task(consumer.run())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("receiving", extra={"fields": {"tenant": cfg["tenant"], "stream": cfg["cloud_stream"]}})
    next_archive = loop.time() + min(cfg["archive_interval_s"], 5)
    try:
        while not stop.is_set() and not task.done():
            if cfg.get("archive_dir") and loop.time() >= next_archive:
                moved = await receiver.archive(cfg["archive_dir"], cfg["archive_after_days"])
                if moved:
                    log.info("archived", extra={"fields": {"rows": moved}})
                next_archive = loop.time() + cfg["archive_interval_s"]
            if cfg.get("status_file"):
                status = {"tenant": cfg["tenant"], "connected": nc.is_connected, **asdict(receiver.stats),
                          "archived": receiver.archived,
                          "consumer": asdict(consumer.stats)}  # fmt: skip
                Path(cfg["status_file"] + ".tmp").write_text(json.dumps(status))
                Path(cfg["status_file"] + ".tmp").replace(cfg["status_file"])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
    finally:
        consumer.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        receiver.close()
        sink.close()
        await nc.close()


def query_main(cfg: dict, sql: str, out: str) -> int:
    """Run SQL against the receiver's ClickHouse (chdb: only while the daemon is stopped) into Arrow IPC."""
    import pyarrow as pa

    from streams.sinks.clickhouse import ClickHouseSink

    sink = ClickHouseSink(path=cfg.get("chdb_path") or None, url=cfg.get("clickhouse_url") or None)
    from streams.catalog import CATALOG

    for ent in CATALOG:
        sink.ensure(ent)
    table = sink.sql(sql)
    with pa.OSFile(out, "wb") as f, pa.ipc.new_file(f, table.schema) as w:
        w.write_table(table)
    return 0


def receiver_health(cfg: dict) -> int:
    """Status file written by the running receiver: connected and fresh (< 10 s) means healthy."""
    import time

    path = Path(cfg.get("status_file") or "")
    if not cfg.get("status_file") or not path.exists():
        print(json.dumps({"healthy": False, "error": "no status_file (set status_file in the config)"}))
        return 1
    report = json.loads(path.read_text())
    report["status_age_s"] = round(time.time() - path.stat().st_mtime, 1)
    report["healthy"] = bool(report.get("connected")) and report["status_age_s"] < 10
    print(json.dumps(report))
    return 0 if report["healthy"] else 1


def receiver_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="serviceradar-receiver", description="cloud receiver: JetStream -> ClickHouse")
    p.add_argument("--config", required=True)
    p.add_argument("--query", help="run this SQL against the receiver's ClickHouse and exit")
    p.add_argument("--out", help="Arrow IPC file for --query results")
    p.add_argument("--health", action="store_true", help="print the running receiver's status; 0 = healthy")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    try:
        cfg = load_receiver_config(args.config)
    except (ReceiverConfigError, natsconf.FabricConfigError) as e:
        print(f"serviceradar-receiver: configuration error: {e}", file=sys.stderr)
        return 2
    if args.query:
        return query_main(cfg, args.query, args.out or "/dev/stdout")
    if args.health:
        return receiver_health(cfg)
    setup_logging(args.log_level)
    asyncio.run(run_receiver(cfg))
    return 0


def jwt_command(args) -> int:
    """``serviceradar-nats jwt init|tenant|hub``: keys in ``--dir``, account JWTs, creds, hub config."""
    from fabric.jwtmode import Operator, hub_config_jwt, push_account

    d = Path(args.dir)
    if args.action == "init":
        op = Operator()
        op.save(d)
        (d / "sys.creds").write_text(op.user_creds(None, "sys"))
        print(d / "operator-seeds.json")
        return 0
    op = Operator.load(d)
    if args.action == "tenant":
        if not args.tenant:
            raise ValueError("--tenant is required")
        pub, account_jwt = op.account_jwt(args.tenant, args.max_file, args.max_mem)
        op.save(d)
        (d / f"{args.tenant}.jwt").write_text(account_jwt)
        for role in ("leaf", "receiver"):
            (d / f"{args.tenant}-{role}.creds").write_text(op.user_creds(args.tenant, f"{args.tenant}-{role}"))
        if args.push:
            import nats

            async def push() -> None:
                nc = await nats.connect(args.push, user_credentials=str(d / "sys.creds"))
                try:
                    await push_account(nc, account_jwt)
                finally:
                    await nc.close()

            asyncio.run(push())
        print(pub)
        return 0
    if not args.store:
        raise ValueError("--store is required")
    preload = {}
    for tenant in op.accounts:
        path = d / f"{tenant}.jwt"
        if path.exists():
            preload[op.accounts[tenant].public_key.decode()] = path.read_text()
    print(hub_config_jwt(op, listen=args.listen, leaf_listen=args.leaf_listen, store_dir=args.store,
                         resolver_dir=str(Path(args.store) / "resolver"), preload=preload), end="")  # fmt: skip
    return 0


def nats_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="serviceradar-nats", description="NATS fabric configs and a dev SPIFFE CA")
    sub = p.add_subparsers(dest="cmd", required=True)
    hub = sub.add_parser("hub", help="cloud hub config")
    hub.add_argument("--listen", default="0.0.0.0:4222")
    hub.add_argument("--leaf-listen", default="0.0.0.0:7422")
    hub.add_argument("--store", required=True)
    hub.add_argument("--tenants", required=True, help="JSON file: list of {name, leaf_user, leaf_password, ...}")
    hub.add_argument("--tls-cert")
    hub.add_argument("--tls-key")
    hub.add_argument("--tls-ca")
    leaf = sub.add_parser("leaf", help="edge leaf config")
    leaf.add_argument("--tenant", required=True)
    leaf.add_argument("--node", default="")
    leaf.add_argument("--listen", default="127.0.0.1:4222")
    leaf.add_argument("--store", required=True)
    leaf.add_argument("--hub", required=True, help="hub leafnode URL, e.g. nats-leaf://hub:7422 or tls://hub:7422")
    leaf.add_argument("--user", default="")
    leaf.add_argument("--password", default="")
    leaf.add_argument("--tls-cert")
    leaf.add_argument("--tls-key")
    leaf.add_argument("--tls-ca")
    jwt = sub.add_parser("jwt", help="operator/JWT mode: tenants added to a running hub without restart")
    jwt.add_argument("action", choices=["init", "tenant", "hub"])
    jwt.add_argument("--dir", required=True, help="operator keys, account JWTs and .creds files")
    jwt.add_argument("--tenant")
    jwt.add_argument("--max-file", default="10G")
    jwt.add_argument("--max-mem", default="256M")
    jwt.add_argument("--push", help="hub URL: push the tenant's account now (system user creds from --dir)")
    jwt.add_argument("--listen", default="0.0.0.0:4222")
    jwt.add_argument("--leaf-listen", default="0.0.0.0:7422")
    jwt.add_argument("--store")
    ca = sub.add_parser("ca", help="development CA issuing X.509 SVIDs")
    ca.add_argument("--dir", required=True)
    ca.add_argument("--trust-domain", help="create the CA for this trust domain")
    ca.add_argument("--issue", help="SPIFFE path to issue, e.g. tenant/acme/edge/node1")
    ca.add_argument("--name", default="svid")
    ca.add_argument("--days", type=float, default=30)
    args = p.parse_args(argv)
    try:
        if args.cmd == "hub":
            tenants = [natsconf.Tenant(**t) for t in json.loads(Path(args.tenants).read_text())]
            tls = natsconf.TLSFiles(args.tls_cert, args.tls_key, args.tls_ca) if args.tls_cert else None
            print(natsconf.hub_config(listen=args.listen, leaf_listen=args.leaf_listen, store_dir=args.store,
                                      tenants=tenants, tls=tls), end="")  # fmt: skip
        elif args.cmd == "leaf":
            tls = natsconf.TLSFiles(args.tls_cert, args.tls_key, args.tls_ca) if args.tls_cert else None
            print(natsconf.leaf_config(tenant=args.tenant, node=args.node, listen=args.listen, store_dir=args.store,
                                       hub_leaf_url=args.hub, user=args.user, password=args.password, tls=tls), end="")
        elif args.cmd == "jwt":
            return jwt_command(args)
        else:
            from fabric.ca import DevCA

            d = Path(args.dir)
            ca_ = DevCA.create(args.trust_domain) if args.trust_domain else DevCA.load(d)
            if args.trust_domain:
                print(ca_.save(d))
            if args.issue:
                print(*ca_.issue(args.issue, days=args.days).write(d, args.name))
    except (natsconf.FabricConfigError, OSError, ValueError, TypeError) as e:
        print(f"serviceradar-nats: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(receiver_main())
