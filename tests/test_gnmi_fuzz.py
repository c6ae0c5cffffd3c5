"""Hypothesis: the vectorised SubscribeResponse decoder equals the generated-classes decoder on valid
input, and on garbage never raises, counts what it drops and keeps its caches bounded; JSON flattening
never raises."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.core import Counters, Packet
from ingest.gnmi import GnmiDecoder
from ingest.gnmi_proto import gnmi_pb2 as g
from ingest.gnmi_wire import SCHEMA, PathCache, decode_responses, reference_decode, typed_leaves

pytestmark = pytest.mark.timeout(240)
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

names = st.sampled_from(["interfaces", "interface", "state", "counters", "in-octets", "name", "a", "b-c", "ü"])
text = st.text(max_size=12)
elems = st.builds(lambda n, k: g.PathElem(name=n, key=k), names, st.dictionaries(st.sampled_from(["name", "id", "k"]),
                                                                                 text, max_size=2))  # fmt: skip
paths = st.builds(lambda es, tgt: g.Path(elem=es, target=tgt), st.lists(elems, max_size=4),
                  st.sampled_from(["", "", "", "other-dev"]))  # fmt: skip
json_docs = st.recursive(st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False,
                         allow_infinity=False) | text, lambda c: st.lists(c, max_size=3) | st.dictionaries(
                         st.sampled_from(["x", "m:y", "z"]), c, max_size=3), max_leaves=8)  # fmt: skip
values = st.one_of(
    st.builds(lambda v: g.TypedValue(int_val=v), st.integers(-(2**63), 2**63 - 1)),
    st.builds(lambda v: g.TypedValue(uint_val=v), st.integers(0, 2**64 - 1)),
    st.builds(lambda v: g.TypedValue(bool_val=v), st.booleans()),
    st.builds(lambda v: g.TypedValue(double_val=v), st.floats(allow_nan=False)),
    st.builds(lambda v: g.TypedValue(float_val=v), st.floats(width=32, allow_nan=False)),
    st.builds(lambda v: g.TypedValue(string_val=v), text),
    st.builds(lambda v: g.TypedValue(ascii_val=v), st.text(alphabet="abc-_ 09", max_size=8)),
    st.builds(lambda v: g.TypedValue(bytes_val=v), st.binary(max_size=6)),
    st.builds(lambda d, p: g.TypedValue(decimal_val=g.Decimal64(digits=d, precision=p)), st.integers(-(10**12), 10**12),
              st.integers(0, 6)),
    st.builds(lambda d: g.TypedValue(json_ietf_val=json.dumps(d).encode()), json_docs),
    st.builds(lambda d: g.TypedValue(json_val=json.dumps(d).encode()), json_docs),
    st.builds(lambda v: g.TypedValue(leaflist_val=g.ScalarArray(element=[g.TypedValue(uint_val=x) for x in v])),
              st.lists(st.integers(0, 99), max_size=3)),
    st.just(g.TypedValue()),
)
updates = st.builds(lambda p, v: g.Update(path=p, val=v), paths, values)
notifications = st.builds(
    lambda ts, pre, ups, dels: g.Notification(timestamp=ts, prefix=pre, update=ups, delete=dels),
    st.integers(1, 2**62), st.one_of(st.none(), paths), st.lists(updates, max_size=8), st.lists(paths, max_size=2))
responses = st.one_of(st.builds(lambda n: g.SubscribeResponse(update=n), notifications),
                      st.just(g.SubscribeResponse(sync_response=True)))  # fmt: skip


def _key(r: dict) -> str:
    v = r["value"]
    return repr((r["timestamp"], r["device"], r["metric"], "nan" if v is None or math.isnan(v) else v, r["value_str"],
                 tuple(dict(r["labels"]).items()), r["deleted"]))  # fmt: skip


@FUZZ
@given(st.lists(responses, min_size=1, max_size=12), st.integers(1, 3))
def test_vectorised_equals_generated_classes(resps: list, ndev: int) -> None:
    raw = [r.SerializeToString() for r in resps]
    devices = [f"d{i % ndev}" for i in range(len(raw))]
    labels = {"d0": {"site": "x"}}
    ours, bad = decode_responses(raw, devices, PathCache(), labels, now_ms=7)
    ref, ref_bad = reference_decode(raw, devices, labels, now_ms=7)
    assert bad == ref_bad == []
    assert ours.schema == SCHEMA
    assert sorted(map(_key, ours.to_pylist())) == sorted(map(_key, ref.to_pylist()))


@st.composite
def garbage(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=80))
    msg = bytearray(draw(responses).SerializeToString())
    for _ in range(draw(st.integers(1, 3))):
        if not msg:
            break
        i = draw(st.integers(0, len(msg) - 1))
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip":
            msg[i] = draw(st.integers(0, 255))
        elif op == "cut":
            del msg[i:]
        else:
            msg[i:i] = draw(st.binary(min_size=1, max_size=4))
    return bytes(msg)


@FUZZ
@given(st.lists(st.one_of(garbage(), responses.map(lambda r: r.SerializeToString())), min_size=1, max_size=10))
def test_garbage_never_raises_and_drops_are_counted(raw: list[bytes]) -> None:
    cache = PathCache(max_entries=16)
    dec = GnmiDecoder()
    dec.cache = cache
    counters = Counters()
    result = dec.decode([Packet(raw, "dev", 0, 0, "grpc")], counters)
    _, bad = decode_responses(raw, ["dev"] * len(raw), PathCache())
    assert counters.drops().get("malformed", 0) == len(bad)
    assert all(b.schema == SCHEMA for b in result.batches)
    assert len(cache.metric) <= 16 + len(raw) * 64  # cleared when full: bounded by one chunk's distinct paths
    # Not asserted: equal verdicts with the generated classes on garbage. The wire walk checks structure
    # (varints, lengths, wire types, UTF-8 of what it reads) but not fields it skips (alias), and keeps the
    # last of a repeated singular message where protobuf merges them; valid input is compared above.


@FUZZ
@given(json_docs)
def test_json_flattening_never_raises(doc: object) -> None:
    leaves = typed_leaves(g.TypedValue(json_ietf_val=json.dumps(doc).encode()))
    assert len(leaves) == _leaf_count(doc)  # one row per leaf; an empty container has none
    assert all(isinstance(v, float) for _, _, v, _ in leaves)


def _leaf_count(doc: object) -> int:
    if isinstance(doc, dict):
        return sum(map(_leaf_count, doc.values()))
    if isinstance(doc, list) and any(isinstance(x, dict | list) for x in doc):
        return sum(map(_leaf_count, doc))
    return 1


def test_path_cache_is_bounded() -> None:
    cache = PathCache(max_entries=100)
    for i in range(30):
        n = g.Notification(timestamp=1, update=[g.Update(path=g.Path(elem=[g.PathElem(name=f"p{i}-{j}")]),
                                                        val=g.TypedValue(uint_val=j)) for j in range(10)])  # fmt: skip
        batch, bad = decode_responses([g.SubscribeResponse(update=n).SerializeToString()], ["d"], cache)
        assert batch.num_rows == 10 and not bad
        assert len(cache.metric) <= 100


def _field(num: int, payload: bytes) -> bytes:
    """A length-delimited field (num ≤ 15, payload < 128 bytes) in raw wire form."""
    return bytes([num << 3 | 2, len(payload)]) + payload


def test_non_canonical_layouts_match_the_generated_classes() -> None:
    """Fields out of order, a oneof set twice, unknown fields: the vectorised fast paths fall back correctly."""
    path = g.Path(elem=[g.PathElem(name="a", key={"k": "v"})]).SerializeToString()
    val = g.TypedValue(uint_val=7).SerializeToString()
    two_kinds = g.TypedValue(string_val="x").SerializeToString() + g.TypedValue(int_val=-3).SerializeToString()
    unknown = bytes([15 << 3 | 0, 1])  # field 15, varint 1: unknown to gNMI's Update and TypedValue
    updates = [
        _field(3, val) + _field(1, path),  # val before path
        _field(1, path) + _field(3, two_kinds),  # the last oneof member wins
        unknown + _field(1, path) + _field(3, val),
        _field(1, path) + _field(3, val + unknown),
        _field(1, path),  # no value
        _field(1, path) + _field(3, b""),  # an empty TypedValue
    ]
    raw = []
    for u in updates:
        notif = bytes([1 << 3, 5]) + _field(4, u)  # timestamp 5, one update
        raw.append(_field(1, notif))
    ours, bad = decode_responses(raw, ["d"] * len(raw), PathCache())
    ref, ref_bad = reference_decode(raw, ["d"] * len(raw))
    assert bad == ref_bad == []
    assert sorted(map(_key, ours.to_pylist())) == sorted(map(_key, ref.to_pylist()))
    assert ours.num_rows == len(updates)


def test_notification_without_timestamp_gets_the_receive_time() -> None:
    n = g.Notification(update=[g.Update(path=g.Path(elem=[g.PathElem(name="x")]), val=g.TypedValue(uint_val=1))])
    raw = [g.SubscribeResponse(update=n).SerializeToString()] * 2
    dec = GnmiDecoder()
    res = dec.decode([Packet([raw[0]], "a", 0, 1_000, "grpc"), Packet([raw[1]], "a", 0, 2_000, "grpc")], Counters())
    assert [t.timestamp() for t in res.batches[0].column("timestamp").to_pylist()] == [1.0, 2.0]
