"""The least a Python process can do between two Redis pub/sub hops: what arrives on a pattern
is PUBLISHed again under another prefix, with nothing in between.

Raw asyncio protocols and hiredis (no client library, no checks, replies never awaited), in its
own process as the hub is. Benchmarks measure a round trip through it beside the hub's Redis
edge: the edge holds two hops through Redis and one through a Python process, so this relay
is the floor for that path on the machine at hand, and the edge's ratio to it is the hub's own
cost.

    python -m tests.support.redis_relay HOST PORT IN_PREFIX OUT_PREFIX

prints "ready" once subscribed to `IN_PREFIX*`, then relays `IN_PREFIX<name>` to
`OUT_PREFIX<name>` until killed.
"""

from __future__ import annotations

import asyncio
import sys

import hiredis

from agentplex.redisdirect import command  # RESP packing alone: no client, no hub


class Replies(asyncio.Protocol):
    """The publishing connection: replies (receiver counts) are read and dropped."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while self.reader.gets() is not False:
            pass


class Relay(asyncio.Protocol):
    """The subscribed connection: every pmessage is written out at once."""

    def __init__(self, out: asyncio.Transport, in_prefix: bytes, out_prefix: bytes) -> None:
        self.out = out
        self.skip = len(in_prefix)
        self.out_prefix = out_prefix
        self.reader = hiredis.Reader()
        self.ready = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            if reply[0] == b"pmessage":
                name = reply[2][self.skip :]
                self.out.write(command(b"PUBLISH", self.out_prefix + name, reply[3]))
            elif reply[0] == b"psubscribe" and not self.ready.done():
                self.ready.set_result(None)


async def main(host: str, port: int, in_prefix: bytes, out_prefix: bytes) -> None:
    loop = asyncio.get_running_loop()
    out, _ = await loop.create_connection(Replies, host, port)
    transport, relay = await loop.create_connection(
        lambda: Relay(out, in_prefix, out_prefix),
        host,
        port,
    )
    transport.write(command(b"PSUBSCRIBE", in_prefix + b"*"))
    await relay.ready
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    host, port, in_prefix, out_prefix = sys.argv[1:5]
    asyncio.run(main(host, int(port), in_prefix.encode(), out_prefix.encode()))
