"""Golden vectors of specs/wrpc.md §1.3, round trips, and bad input for the value codec."""

from __future__ import annotations

import math

import pytest

import wrpc
from wrpc.codec import IncrementalDecoder, Limits, StreamDecoder, encode_async
from wrpc.types import parse_type

H = bytes.fromhex

# (type, value, hex) — every row of the §1.3 table that is a plain value.
VECTORS = [
    ("bool", True, "01"),
    ("bool", False, "00"),
    ("u8", 255, "ff"),
    ("s8", -1, "ff"),
    ("s8", -128, "80"),
    ("u16", 300, "ac 02"),
    ("u32", 624485, "e5 8e 26"),
    ("u32", 4294967295, "ff ff ff ff 0f"),
    ("u64", 2**64 - 1, "ff ff ff ff ff ff ff ff ff 01"),
    ("s32", 0, "00"),
    ("s32", 63, "3f"),
    ("s32", 64, "c0 00"),
    ("s32", -1, "7f"),
    ("s32", -64, "40"),
    ("s32", -65, "bf 7f"),
    ("s32", 127, "ff 00"),
    ("s32", -123456, "c0 bb 78"),
    ("s64", -(2**63), "80 80 80 80 80 80 80 80 80 7f"),
    ("f32", 1.5, "00 00 c0 3f"),
    ("f32", 9.0, "00 00 10 41"),
    ("f64", 1.5, "00 00 00 00 00 00 f8 3f"),
    ("f64", 10.0, "00 00 00 00 00 00 24 40"),
    ("char", "a", "61"),
    ("char", "é", "c3 a9"),
    ("char", "€", "e2 82 ac"),
    ("char", "😀", "f0 9f 98 80"),
    ("string", "", "00"),
    ("string", "hello", "05 68 65 6c 6c 6f"),
    ("string", "héllo", "06 68 c3 a9 6c 6c 6f"),
    ("string", "test", "04 74 65 73 74"),
    ("list<u8>", b"\x01\x02\x03", "03 01 02 03"),
    ("list<string>", ["a", "b"], "02 01 61 01 62"),
    ("list<u16>", [1, 300], "02 01 ac 02"),
    ("list<u32>", [], "00"),
    ("option<u32>", None, "00"),
    ("option<u32>", 42, "01 2a"),
    ("option<option<u8>>", wrpc.Some(None), "01 00"),
    ("result<bool, string>", wrpc.Ok(True), "00 01"),
    ("result<bool, string>", wrpc.Err("test"), "01 04 74 65 73 74"),
    ("result<_, string>", wrpc.Ok(), "00"),
    ("result", wrpc.Err(), "01"),
    ("tuple<u8, string, bool>", (7, "x", True), "07 01 78 01"),
    ("tuple<u8, u32>", (0x42, 0x42), "42 42"),
    (
        "record {keys: list<string>, cursor: option<string>}",
        {"keys": ["a", "b"], "cursor": "next"},
        "02 01 61 01 62 01 04 6e 65 78 74",
    ),
    ("enum {red, green, blue}", "green", "01"),
    (
        "variant {no-such-store, access-denied, other(string)}",
        wrpc.Variant("other", "boom"),
        "02 04 62 6f 6f 6d",
    ),
    ("variant {no-such-store, access-denied, other(string)}", wrpc.Variant("access-denied"), "01"),
    ("flags {read, write, exec}", {"read", "exec"}, "05"),
    ("flags {a, b, c, d, e, f, g, h, i}", {"i"}, "00 01"),
    ("flags {show-a, show-b, show-c, show-d, show-e, show-f}", {"show-a", "show-c"}, "05"),
    ("own<bucket>", b"\xde\xad\xbe\xef", "04 de ad be ef"),
]


@pytest.mark.parametrize(("wit", "value", "hexstr"), VECTORS, ids=[f"{v[0]}={v[2]}" for v in VECTORS])
def test_wrpc_vector_encode_and_decode(wit: str, value: object, hexstr: str) -> None:
    assert wrpc.encode(wit, value) == H(hexstr)
    assert wrpc.decode(wit, H(hexstr)) == value


def test_wrpc_200_byte_string_prefix() -> None:
    assert wrpc.encode("string", "x" * 200)[:2] == H("c8 01")


def test_wrpc_nan_is_canonical_on_encode_and_any_nan_decodes() -> None:
    assert wrpc.encode("f32", math.nan) == H("00 00 c0 7f")
    assert wrpc.encode("f64", math.nan) == H("00 00 00 00 00 00 f8 7f")
    assert wrpc.encode("f32", -math.nan) == H("00 00 c0 7f")
    assert math.isnan(wrpc.decode("f32", H("01 00 80 7f")))  # 0x7f800001, a signalling NaN


def test_wrpc_variant_accepts_plain_case_name_and_tuple() -> None:
    t = "variant {no-such-store, access-denied, other(string)}"
    assert wrpc.encode(t, "access-denied") == H("01")
    assert wrpc.encode(t, ("other", "boom")) == H("02 04 62 6f 6f 6d")


def test_wrpc_nested_option_forms() -> None:
    t = "option<option<u8>>"
    assert wrpc.encode(t, None) == H("00")
    assert wrpc.encode(t, wrpc.Some(wrpc.Some(5))) == H("01 01 05")
    assert wrpc.decode(t, H("01 01 05")) == wrpc.Some(5)


def test_wrpc_future_vectors() -> None:
    data, deferred = encode_async("future<string>", wrpc.Future("hi"), path=(0,))
    assert data == H("00")
    assert [(p, str(t)) for p, t, _ in deferred] == [((0,), "future<string>")]
    # the sub-stream carries one encoded string
    fut = wrpc.decode("future<string>", H("00"))
    assert not fut.done
    ready = wrpc.decode("future<string>", H("01 02 68 69"))
    assert ready.done and ready._value == "hi"


def test_wrpc_stream_vectors_inline_and_substream() -> None:
    for wit, chunk, expect in [
        ("stream<u64>", [1, 2, 3], [1, 2, 3]),
        ("stream<u8>", b"\x01\x02\x03", b"\x01\x02\x03"),
    ]:
        data, deferred = encode_async(wit, wrpc.Stream([chunk]), path=(0,))
        assert data == H("00") and deferred[0][0] == (0,)
        s = wrpc.Stream()
        dec = StreamDecoder(parse_type(wit), (0,), s, wrpc.codec.DecodeContext())
        assert dec.feed(H("03 01 02 03")) is False
        assert dec.feed(H("00")) is True
        assert list(s._chunks) == [expect] and s.closed


def test_wrpc_records_as_dataclass_like_objects() -> None:
    class Rec:
        def __init__(self) -> None:
            self.keys = ["a", "b"]
            self.cursor = None

    assert wrpc.encode("record {keys: list<string>, cursor: option<string>}", Rec()) == H("02 01 61 01 62 00")


def test_wrpc_named_types_from_the_wit_package() -> None:
    from wrpc import wit

    types = wit.telemetry().types
    batch = {"stream": "flows", "seq": 7, "arrow-ipc": b"\xff\x00"}
    data = wrpc.encode("batch", batch, types=types)
    assert data == H("05 66 6c 6f 77 73 07 02 ff 00")
    assert wrpc.decode("batch", data, types=types) == batch


BAD_DECODES = [
    ("bool", "02", "invalid bool"),
    ("u32", "ff ff ff ff 1f", "overflows"),
    ("u32", "80 80 80 80 80 00", "longer than"),
    ("s8", "", "truncated"),
    ("string", "05 68 65", "truncated"),
    ("string", "02 c3 28", "UTF-8"),
    ("char", "ff", "cannot start"),
    ("char", "ed a0 80", "UTF-8"),  # a surrogate
    ("option<u8>", "02", "option tag"),
    ("result<u8, u8>", "02 00", "result tag"),
    ("enum {a, b}", "02", "out of range"),
    ("variant {a, b(u8)}", "05", "out of range"),
    ("flags {show-a, show-b, show-c, show-d, show-e, show-f}", "80", "bit not associated"),
    ("list<u8>", "05 01", "truncated"),
    ("u8", "01 02", "remaining"),
]


@pytest.mark.parametrize(("wit", "hexstr", "msg"), BAD_DECODES)
def test_wrpc_bad_bytes_give_clear_errors(wit: str, hexstr: str, msg: str) -> None:
    with pytest.raises(wrpc.DecodeError, match=msg):
        wrpc.decode(wit, H(hexstr))


def test_wrpc_oversized_lengths_hit_limits_before_allocation() -> None:
    limits = Limits(max_bytes=1000, max_items=100)
    with pytest.raises(wrpc.LimitExceeded):
        wrpc.decode("string", H("ff ff ff ff 0f"), limits=limits)
    with pytest.raises(wrpc.LimitExceeded):
        wrpc.decode("list<tuple<>>", H("ff ff 03"), limits=limits)
    # the incremental decoder refuses at once, without waiting for the claimed bytes
    dec = IncrementalDecoder(parse_type("list<u8>"), limits=limits)
    with pytest.raises(wrpc.LimitExceeded):
        dec.feed(H("ff ff ff ff 0f"))
    # a huge count of non-empty elements with little data is a truncation, not a long loop
    with pytest.raises(wrpc.DecodeError):
        wrpc.decode("list<u32>", H("ff ff ff ff 0f 01"))


BAD_ENCODES = [
    ("u8", 256),
    ("s8", -129),
    ("u32", -1),
    ("u64", 2**64),
    ("u8", True),
    ("bool", 1),
    ("f32", 1e300),
    ("char", "ab"),
    ("string", b"bytes"),
    ("string", "\ud800"),
    ("list<u8>", "text"),
    ("list<u32>", 5),
    ("enum {a, b}", "c"),
    ("flags {a, b}", {"c"}),
    ("variant {a, b(u8)}", ("z", 1)),
    ("result<u8, u8>", 3),
    ("tuple<u8, u8>", (1,)),
    ("record {a: u8}", {"b": 1}),
    ("future<u8>", 3),
]


@pytest.mark.parametrize(("wit", "value"), BAD_ENCODES)
def test_wrpc_bad_values_give_encode_errors(wit: str, value: object) -> None:
    with pytest.raises(wrpc.EncodeError):
        wrpc.encode(wit, value)


@pytest.mark.parametrize(
    "text",
    [
        "list<",
        "list<u8",
        "tuple<u8,,>",
        "nope",
        "list<u8> extra",
        "option<_>",
        "u8 $",
        "list<" * 100 + "u8" + ">" * 100,
    ],
)
def test_wrpc_bad_type_expressions(text: str) -> None:
    with pytest.raises(wrpc.WitTypeError):
        wrpc.parse_type(text)


def test_wrpc_type_expression_round_trips_through_str() -> None:
    for text in [
        "list<tuple<u8, string>>",
        "result<_, string>",
        "result",
        "option<future<u8>>",
        "stream<u8>",
    ]:
        assert str(wrpc.parse_type(text)) == text


REC = "list<record {name: string, kind: enum {a, b}, up: bool, n: u64, note: option<string>, t: tuple<u8, f32>}>"


@pytest.mark.parametrize(
    ("hexstr", "err", "msg"),
    [
        ("01 01 61 00 02 00 00 00 00 00 00 00", wrpc.DecodeError, "invalid bool"),
        ("01 01 61 05 01 00 00 00 00 00 00 00", wrpc.DecodeError, "out of range"),
        ("01 01 ff 00 01 00 00 00 00 00 00 00", wrpc.DecodeError, "UTF-8"),
        ("01 01 61 00 01 00 03 00 00 00 00 00", wrpc.DecodeError, "option tag"),
        ("01 01 61 00 01 00 00 00 00 00", wrpc.DecodeError, "truncated"),
        ("ff ff ff ff 0f", wrpc.LimitExceeded, "exceeds"),
    ],
)
def test_wrpc_generated_record_list_decoder_rejects_bad_bytes(hexstr: str, err: type, msg: str) -> None:
    good = [{"name": "a", "kind": "a", "up": True, "n": 2**40, "note": "x", "t": (1, 1.5)}]
    assert wrpc.decode(REC, wrpc.encode(REC, good)) == good
    with pytest.raises(err, match=msg):
        wrpc.decode(REC, H(hexstr))


def test_wrpc_resumed_decoding_does_not_retain_memory() -> None:
    """Each 'need more bytes' is an exception; none may keep frames (and buffers) alive."""
    import gc
    import tracemalloc

    t = parse_type("list<record {a: string, b: u64, c: list<u8>}>")
    data = wrpc.encode(t, [{"a": "x" * 20, "b": 2**60, "c": b"\x01" * 30}] * 10)

    def rounds(n: int) -> None:
        for _ in range(n):
            dec = IncrementalDecoder(t)
            for i in range(0, len(data), 7):
                dec.feed(data[i : i + 7])
            assert dec.done

    rounds(50)
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        rounds(60)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, f"{grown} bytes retained by 60 decodes"


@pytest.mark.parametrize(
    ("field", "value", "msg"),
    [
        ("name", 5, "string needs a str"),
        ("name", "\ud800", "surrogate"),
        ("kind", "c", "not a case"),
        ("kind", ["a"], "not a case"),
        ("up", 1, "bool needs"),
        ("n", -1, "out of range"),
        ("n", 2**64, "out of range"),
        ("n", "7", "needs an int"),
        ("n", True, "needs an int"),
        ("t", (1,), "2-tuple"),
        ("t", (1, "x"), "f32 needs a number"),
        ("note", 3, "string needs a str"),
    ],
)
def test_wrpc_generated_record_list_encoder_rejects_bad_values(field: str, value: object, msg: str) -> None:
    good = {"name": "a", "kind": "a", "up": True, "n": 2**40, "note": "x", "t": (1, 1.5)}
    with pytest.raises(wrpc.EncodeError, match=msg):
        wrpc.encode(REC, [good, {**good, field: value}])
    missing = dict(good)
    del missing[field]
    with pytest.raises(wrpc.EncodeError, match=f"missing field '{field}'"):
        wrpc.encode(REC, [missing])
    with pytest.raises(wrpc.EncodeError, match="sequence"):
        wrpc.encode(REC, good)


def test_wrpc_future_and_stream_sub_stream_bytes_as_sent() -> None:
    """§1.3 rows for async values: the inline byte and the sub-stream bytes the sender writes."""
    import asyncio

    from wrpc.session import Sender
    from wrpc.types import TupleT

    class Collect:
        def __init__(self) -> None:
            self.by_path: dict[tuple[int, ...], bytes] = {}

        async def write(self, path: tuple[int, ...], data: bytes) -> None:
            self.by_path[path] = self.by_path.get(path, b"") + data

        async def end(self, path: tuple[int, ...]) -> None:
            pass

        async def close(self) -> None:
            pass

    async def sent(wit: str, value: object) -> dict:
        out = Collect()
        await Sender(out).send(TupleT((parse_type(wit),)), (value,))
        return out.by_path

    async def main() -> None:
        assert await sent("future<string>", wrpc.Future("hi")) == {(): H("00"), (0,): H("02 68 69")}
        assert await sent("stream<u64>", wrpc.Stream([[1, 2, 3]])) == {(): H("00"), (0,): H("03 01 02 03 00")}
        assert await sent("stream<u8>", wrpc.Stream([b"\x01\x02\x03"])) == {(): H("00"), (0,): H("03 01 02 03 00")}
        # empty chunks are never sent: an empty chunk would read as the end marker
        assert await sent("stream<u8>", wrpc.Stream([b"", b"\x01", b""])) == {(): H("00"), (0,): H("01 01 00")}

    asyncio.run(main())


def test_wrpc_lists_of_zero_size_elements_inside_records() -> None:
    """Found by hypothesis: a record holding a list of empty-flags tuples (0 bytes per element)."""
    t = "record { fw: list<tuple<flags { }>>, v: u8 }"
    v = {"fw": [(set(),), (set(),)], "v": 3}
    assert wrpc.encode(t, v) == H("02 03")
    assert wrpc.decode(t, H("02 03")) == v


def test_wrpc_incremental_decoder_of_zero_size_values_is_done_without_input() -> None:
    for wit in ("tuple<>", "flags { }", "tuple<flags { }, tuple<>>"):
        dec = IncrementalDecoder(parse_type(wit))
        assert dec.done, wit
    dec = IncrementalDecoder(parse_type("tuple<u8>"))
    assert not dec.done and dec.feed(b"\x07") and dec.value == (7,)


def test_wrpc_stream_head_forms() -> None:
    """§1.4.3: 00 is pending; a non-zero head is read the Rust/JS way, as one inline list<T> chunk."""
    import asyncio

    pending = wrpc.decode("stream<u8>", H("00"))
    assert not pending.closed
    ready = wrpc.decode("stream<u8>", H("03 01 02 03"))
    assert ready.closed and asyncio.run(ready.read_all()) == b"\x01\x02\x03"
    ready64 = wrpc.decode("stream<u64>", H("02 05 ac 02"))
    assert asyncio.run(ready64.read_all()) == [5, 300]
    with pytest.raises(wrpc.DecodeError):
        wrpc.decode("stream<u8>", H("03 01 02"))
