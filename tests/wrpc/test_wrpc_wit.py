"""The WIT package, validated by the real wasm-tools binary, and the type graph built from it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import wrpc
from wrpc import wit
from wrpc.types import EnumT, ListT, Prim, RecordT, ResultT

ROOT = Path(__file__).resolve().parents[2]
WIT_DIR = ROOT / "wit"


def run_wasm_tools(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([wit.wasm_tools(), *args], capture_output=True, text=True, check=False)


def test_wrpc_wasm_tools_is_the_real_binary() -> None:
    out = run_wasm_tools("--version")
    assert out.returncode == 0 and out.stdout.startswith("wasm-tools 1.")


@pytest.mark.parametrize("path", sorted(p.name for p in WIT_DIR.glob("*.wit")))
def test_wrpc_every_wit_file_validates(path: str) -> None:
    # one file alone may `use` another interface of the package, so validate it within the package
    out = run_wasm_tools("component", "wit", str(WIT_DIR))
    assert out.returncode == 0, out.stderr
    assert "package serviceradar:telemetry@0.1.0;" in (WIT_DIR / path).read_text()


def test_wrpc_standalone_wit_files_validate(tmp_path: Path) -> None:
    for name in ("proton.wit", "types.wit"):
        out = run_wasm_tools("component", "wit", str(WIT_DIR / name))
        assert out.returncode == 0, f"{name}: {out.stderr}"


def test_wrpc_checked_in_json_matches_wasm_tools_output() -> None:
    fresh = wit.wit_json(WIT_DIR)
    assert json.loads(wit.TELEMETRY_JSON.read_text()) == fresh, "run: python -m wrpc.wit wit/ > " + str(
        wit.TELEMETRY_JSON.relative_to(ROOT)
    )


def test_wrpc_seed_draft_mistakes_are_rejected(tmp_path: Path) -> None:
    bad = {
        "datetime": "record s { timestamp: datetime }",
        "unit": "f: func() -> result<unit, string>;",
    }
    for word, body in bad.items():
        f = tmp_path / f"{word}.wit"
        f.write_text(f"package x:y@0.1.0;\ninterface i {{ {body} }}\n")
        with pytest.raises(wrpc.WitTypeError, match=word):
            wit.load(f)


def test_wrpc_proton_interface_is_exactly_the_contract() -> None:
    pkg = wit.telemetry()
    proton = pkg.interfaces["proton"]
    assert proton.instance == "serviceradar:telemetry/proton@0.1.0"
    batch = proton.types["batch"]
    assert batch == RecordT((("stream", Prim("string")), ("seq", Prim("u64")), ("arrow-ipc", ListT(Prim("u8")))))
    f = proton.func("publish")
    assert f.params == (("b", batch),) and f.result == ResultT(None, Prim("string"))


def test_wrpc_pull_chain_interfaces_and_worlds() -> None:
    pkg = wit.telemetry()
    get_status = pkg.func("checker", "get-status")
    assert get_status.instance == "serviceradar:telemetry/checker@0.1.0"
    status = pkg.types["service-status"]
    assert isinstance(status, RecordT)
    assert dict(status.fields)["timestamp"] == Prim("u64")
    assert dict(status.fields)["service-type"] == EnumT(("port", "http", "host-metrics"))
    assert get_status.result == ResultT(status, Prim("string"))
    assert pkg.func("agent", "poll").result == pkg.types["agent-report"]
    assert pkg.func("core", "report-status").result == ResultT(None, Prim("string"))
    assert pkg.worlds["checker-service"]["exports"] == ["checker"]
    assert "checker" in pkg.worlds["agent-service"]["imports"] and pkg.worlds["agent-service"]["exports"] == ["agent"]
    assert set(pkg.worlds["core-service"]["exports"]) == {"core", "proton"}


def test_wrpc_resource_functions_get_wire_names(tmp_path: Path) -> None:
    f = tmp_path / "r.wit"
    f.write_text(
        "package acme:kv@0.2.0;\ninterface store {\n resource bucket {\n  constructor(name: string);\n"
        "  get: func(key: string) -> option<list<u8>>;\n  open: static func(name: string) -> bucket;\n }\n}\n"
    )
    iface = wit.load(f).interfaces["store"]
    assert sorted(iface.functions) == ["bucket", "bucket.get", "bucket.open"]
    assert str(iface.func("bucket.get").params[0][1]) == "borrow<bucket>"
    assert iface.instance == "acme:kv/store@0.2.0"
