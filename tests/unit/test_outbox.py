"""Outbox: the bounded per-connection queue, its batching, closing and pacing."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from hypothesis import given, settings, strategies as st

from agentplex.core.channel_log import Accepted
from agentplex.core.outbox import Item, Outbox, Overflow
from agentplex.v1 import envelope_pb2, session_service_pb2


def delivery(seq: int) -> tuple[Accepted, int]:
    env = envelope_pb2.Envelope(id=f"m{seq}", channel="c")
    env.position.seq = seq
    return Accepted(env, seq, "", 0), 1


def control(ref: str) -> session_service_pb2.ConnectResponse:
    return session_service_pb2.ConnectResponse(ref=ref, ping=session_service_pb2.Ping())


async def settle() -> None:
    """Let every ready task run until it blocks again."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_put_beyond_limit_overflows() -> None:
    box = Outbox(limit=3)
    for i in range(3):
        box.put(delivery(i))
    with pytest.raises(Overflow) as err:
        box.put(control("x"))
    assert "limits.session_queue" in str(err.value)
    assert "3" in str(err.value)
    assert len(box) == 3  # nothing was added
    assert [item[1] for item in await box.take()] == [1, 1, 1]  # type: ignore[index]
    box.put(control("after"))  # room again after the writer took the batch
    assert len(box) == 1


async def test_take_returns_everything_in_order() -> None:
    box = Outbox(limit=10)
    items: list[Item] = [delivery(1), control("a"), delivery(2), control("b")]
    for item in items:
        box.put(item)
    assert await box.take() == items
    assert len(box) == 0


async def test_take_waits_for_an_item() -> None:
    box = Outbox(limit=10)
    taker = asyncio.create_task(box.take())
    await settle()
    assert not taker.done()
    first = control("first")
    box.put(first)
    box.put(control("second"))  # put synchronously, before the writer wakes: one batch
    batch = await asyncio.wait_for(taker, 1)
    assert [f.ref for f in batch] == ["first", "second"]  # type: ignore[union-attr]
    # The next take waits again: the event is re-armed, not stuck set.
    again = asyncio.create_task(box.take())
    await settle()
    assert not again.done()
    box.close()
    assert await asyncio.wait_for(again, 1) == []


async def test_close_drains_then_ends() -> None:
    box = Outbox(limit=10)
    box.put(control("a"))
    box.close("slow consumer", grpc.StatusCode.RESOURCE_EXHAUSTED)
    box.put(control("ignored"))  # dropped silently once closed
    assert len(box) == 1
    assert box.closed
    assert (box.reason, box.code) == ("slow consumer", grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert [f.ref for f in await box.take()] == ["a"]  # type: ignore[union-attr]
    assert await box.take() == []
    assert await box.take() == []
    box.close("second reason", grpc.StatusCode.INTERNAL)  # the first close wins
    assert (box.reason, box.code) == ("slow consumer", grpc.StatusCode.RESOURCE_EXHAUSTED)


async def test_close_while_full_does_not_raise() -> None:
    box = Outbox(limit=1)
    box.put(control("a"))
    box.close()
    box.put(control("b"))  # closed: neither stored nor an Overflow
    assert len(box) == 1
    assert box.code is None and box.reason == ""


async def test_wait_for_room_paces_above_half() -> None:
    box = Outbox(limit=4)
    box.put(delivery(1))
    box.put(delivery(2))  # 2 == limit // 2: still room
    await asyncio.wait_for(box.wait_for_room(), 1)
    box.put(delivery(3))  # more than half full
    waiter = asyncio.create_task(box.wait_for_room())
    await settle()
    assert not waiter.done()
    await box.take()
    await asyncio.wait_for(waiter, 1)


async def test_close_releases_wait_for_room() -> None:
    box = Outbox(limit=2)
    box.put(delivery(1))
    box.put(delivery(2))
    waiter = asyncio.create_task(box.wait_for_room())
    await settle()
    assert not waiter.done()
    box.close("bye")
    await asyncio.wait_for(waiter, 1)
    await asyncio.wait_for(box.wait_for_room(), 1)


@settings(max_examples=100, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=6),
    ops=st.lists(st.integers(min_value=0, max_value=4), max_size=30),
)
def test_outbox_is_a_bounded_fifo(limit: int, ops: list[int]) -> None:
    """Op n > 0 puts n items, op 0 takes a batch: FIFO, never more than `limit` queued."""

    async def scenario() -> None:
        box = Outbox(limit)
        queued: list[int] = []
        counter = 0
        for op in ops:
            if op == 0:
                batch = await asyncio.wait_for(box.take(), 1) if queued else []
                assert [item[0].seq for item in batch] == queued  # type: ignore[index]
                queued = []
                continue
            for _ in range(op):
                counter += 1
                if len(queued) >= limit:
                    with pytest.raises(Overflow):
                        box.put(delivery(counter))
                else:
                    box.put(delivery(counter))
                    queued.append(counter)
            assert len(box) == len(queued) <= limit

    asyncio.run(scenario())
