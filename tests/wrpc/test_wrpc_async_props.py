"""Property tests of async values (futures and streams on index-path sub-streams), in memory:
what the sender writes, fed to a receiver in any chunking and interleaving, gives the same values."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wrpc
from wrpc.session import Receiver, Sender
from wrpc.types import TupleT, parse_type

SIG = parse_type(
    "tuple<u32, future<string>, stream<u8>, option<stream<list<u16>>>, record {a: future<u64>, b: stream<s32>}>"
)


class Collect:
    """An Outgoing that records every write as (path, bytes)."""

    def __init__(self) -> None:
        self.writes: list[tuple[tuple[int, ...], bytes]] = []

    async def write(self, path: tuple[int, ...], data: bytes) -> None:
        self.writes.append((path, data))

    async def end(self, path: tuple[int, ...]) -> None:
        pass

    async def close(self) -> None:
        pass


values = st.tuples(
    st.integers(0, 2**32 - 1),
    st.text(max_size=10),
    st.lists(st.binary(max_size=8), max_size=4),
    st.none() | st.lists(st.lists(st.lists(st.integers(0, 2**16 - 1), max_size=3), max_size=3), max_size=3),
    st.integers(0, 2**64 - 1),
    st.lists(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=4), max_size=3),
)


def to_wire(v: tuple) -> tuple:
    n, s, blobs, lists, a, b = v
    return (
        n,
        wrpc.Future(s),
        wrpc.Stream(blobs),
        None if lists is None else wrpc.Stream(lists),
        {"a": wrpc.Future(a), "b": wrpc.Stream(b)},
    )


async def read_back(got: tuple) -> tuple:
    n, fs, blobs, lists, rec = got
    return (
        n,
        await fs,
        await blobs.read_all(),
        None if lists is None else await lists.read_all(),
        await rec["a"],
        await rec["b"].read_all(),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values, st.randoms(use_true_random=False), st.integers(1, 9))
def test_wrpc_async_values_survive_any_chunking_and_interleaving(v: tuple, rnd: Any, step: int) -> None:
    async def main() -> None:
        out = Collect()
        await Sender(out).send(SIG, to_wire(v))
        # re-cut every path's bytes into pieces of `step` and interleave paths at random,
        # keeping each path's own order (as TCP frames or NATS subjects would)
        per_path: dict[tuple[int, ...], bytes] = {}
        for path, data in out.writes:
            per_path[path] = per_path.get(path, b"") + data
        queues = {p: [d[i : i + step] for i in range(0, len(d), step)] for p, d in per_path.items()}
        recv = Receiver(TupleT(SIG.elems), what="params")
        while queues:
            p = rnd.choice(sorted(queues))
            recv.feed(p, queues[p].pop(0))
            if not queues[p]:
                del queues[p]
        recv.eof()
        assert recv.values is not None
        n, s, blobs, lists, a, b = v
        expect = (
            n,
            s,
            b"".join(blobs),
            None if lists is None else [x for c in lists for x in c],
            a,
            [x for c in b for x in c],
        )
        assert await read_back(recv.values) == expect

    asyncio.run(asyncio.wait_for(main(), 20))
