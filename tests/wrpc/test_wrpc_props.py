"""Property tests: random WIT types and values round-trip; every chunking decodes the same."""

from __future__ import annotations

import contextlib
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wrpc
from wrpc.codec import IncrementalDecoder
from wrpc.types import (
    EnumT,
    FlagsT,
    ListT,
    OptionT,
    Prim,
    RecordT,
    ResultT,
    TupleT,
    Type,
    VariantT,
)

INT_BOUNDS = {
    "u8": (0, 255),
    "s8": (-128, 127),
    "u16": (0, 2**16 - 1),
    "s16": (-(2**15), 2**15 - 1),
    "u32": (0, 2**32 - 1),
    "s32": (-(2**31), 2**31 - 1),
    "u64": (0, 2**64 - 1),
    "s64": (-(2**63), 2**63 - 1),
}
NAMES = st.from_regex(r"\A[a-z][a-z0-9]{0,5}(-[a-z][a-z0-9]{0,3})?\Z")
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def unique_names(min_size: int = 1, max_size: int = 5) -> st.SearchStrategy[list[str]]:
    return st.lists(NAMES, min_size=min_size, max_size=max_size, unique=True)


prims = st.sampled_from(sorted([*INT_BOUNDS, "bool", "f32", "f64", "char", "string"])).map(Prim)


def _compound(children: st.SearchStrategy[Type]) -> st.SearchStrategy[Type]:
    return st.one_of(
        children.map(ListT),
        children.map(OptionT),
        st.tuples(st.none() | children, st.none() | children).map(lambda p: ResultT(*p)),
        st.lists(children, min_size=1, max_size=4).map(lambda xs: TupleT(tuple(xs))),
        unique_names().flatmap(
            lambda ns: st.tuples(*[children for _ in ns]).map(lambda ts: RecordT(tuple(zip(ns, ts, strict=True))))
        ),
        unique_names().flatmap(
            lambda ns: st.tuples(*[st.none() | children for _ in ns]).map(
                lambda ts: VariantT(tuple(zip(ns, ts, strict=True)))
            )
        ),
    )


wit_types = st.recursive(
    st.one_of(
        prims,
        unique_names().map(lambda ns: EnumT(tuple(ns))),
        unique_names(0, 20).map(lambda ns: FlagsT(tuple(ns))),
        st.just(ListT(Prim("u8"))),
    ),
    _compound,
    max_leaves=8,
)


def values(t: Type) -> st.SearchStrategy:
    if isinstance(t, Prim):
        if t.name in INT_BOUNDS:
            return st.integers(*INT_BOUNDS[t.name])
        return {
            "bool": st.booleans(),
            "f32": st.floats(width=32, allow_nan=False),
            "f64": st.floats(allow_nan=False),
            "char": st.characters(exclude_categories=["Cs"]),
            "string": st.text(max_size=20),
        }[t.name]
    if isinstance(t, ListT):
        if t.elem == Prim("u8"):
            return st.binary(max_size=40)
        return st.lists(values(t.elem), max_size=5)
    if isinstance(t, OptionT):
        inner = values(t.inner)
        if isinstance(t.inner, OptionT):
            inner = inner.map(wrpc.Some)
        return st.none() | inner
    if isinstance(t, ResultT):
        ok = st.just(None) if t.ok is None else values(t.ok)
        err = st.just(None) if t.err is None else values(t.err)
        return ok.map(wrpc.Ok) | err.map(wrpc.Err)
    if isinstance(t, TupleT):
        return st.tuples(*[values(x) for x in t.elems])
    if isinstance(t, RecordT):
        return st.fixed_dictionaries({n: values(ft) for n, ft in t.fields})
    if isinstance(t, VariantT):
        return st.one_of(
            *[(st.just(None) if ct is None else values(ct)).map(lambda v, n=n: wrpc.Variant(n, v)) for n, ct in t.cases]
        )
    if isinstance(t, EnumT):
        return st.sampled_from(t.cases)
    if isinstance(t, FlagsT):
        return st.sets(st.sampled_from(t.names)) if t.names else st.just(set())
    raise AssertionError(t)


typed_values = wit_types.flatmap(lambda t: st.tuples(st.just(t), values(t)))


def same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


@SETTINGS
@given(typed_values)
def test_wrpc_random_types_and_values_round_trip(tv: tuple[Type, object]) -> None:
    t, v = tv
    data = wrpc.encode(t, v)
    back = wrpc.decode(t, data)
    assert same(back, v) or (isinstance(t, Prim) and t.name == "f32")
    # encoding is deterministic: re-encoding the decoded value gives the same bytes
    assert wrpc.encode(t, back) == data
    # the type survives its own text form (what users pass to wrpc.encode)
    if not isinstance(t, EnumT | FlagsT | RecordT | VariantT) or t.name is None:
        assert wrpc.parse_type(str(t)) == t


@SETTINGS
@given(typed_values, st.data())
def test_wrpc_every_chunking_decodes_the_same(tv: tuple[Type, object], data: st.DataObject) -> None:
    t, v = tv
    raw = wrpc.encode(t, v)
    whole = wrpc.decode(t, raw)
    cuts = sorted(data.draw(st.sets(st.integers(0, len(raw)), max_size=8)))
    dec = IncrementalDecoder(t)
    prev = 0
    for c in [*cuts, len(raw)]:
        dec.feed(raw[prev:c])
        prev = c
    assert dec.done and dec.remaining() == b""
    assert wrpc.encode(t, dec.value) == wrpc.encode(t, whole)


@SETTINGS
@given(typed_values)
def test_wrpc_byte_by_byte_feeding_is_never_complete_early(tv: tuple[Type, object]) -> None:
    t, v = tv
    raw = wrpc.encode(t, v)
    dec = IncrementalDecoder(t)
    for i in range(len(raw)):
        assert not dec.done, f"complete after {i} of {len(raw)} bytes"
        dec.feed(raw[i : i + 1])
    assert dec.done


@settings(max_examples=100, deadline=None)
@given(wit_types, st.binary(max_size=64))
def test_wrpc_random_bytes_never_crash(t: Type, raw: bytes) -> None:
    with contextlib.suppress(wrpc.DecodeError):
        wrpc.decode(t, raw)
    dec = IncrementalDecoder(t)
    with contextlib.suppress(wrpc.DecodeError):
        dec.feed(raw)
