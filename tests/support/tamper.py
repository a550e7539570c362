"""Alter a stored history entry behind the hub's back, as a bad disk or a hostile store would:
in the memory engine's log, or inside Redis (a stream entry cannot be edited, so the stream is
written again with one entry changed)."""

from __future__ import annotations

import redis

from agentplex.engine import Engine, MemoryEngine
from agentplex.engine.redis import RedisEngine


async def tamper(engine: Engine, channel: str, seq: int, old: bytes, new: bytes) -> None:
    """Replace `old` with `new` (same length keeps the entry decodable) in entry `seq`."""
    if isinstance(engine, MemoryEngine):
        for entry in (await engine.history(channel, None, None, 10_000)).entries:
            if entry.seq == seq:
                entry.envelope.payload = entry.envelope.payload.replace(old, new)
        return
    assert isinstance(engine, RedisEngine)
    rewrite_stream(engine, channel, lambda s, raw: raw.replace(old, new) if s == seq else raw)


def rewrite_stream(engine: RedisEngine, channel: str, change: object) -> None:
    """Write a channel's stream again, passing each (seq, stored bytes) through `change`."""
    log_key = engine.keys.channel(channel)[1]
    client = redis.Redis.from_url(engine.settings.redis_url)
    try:
        entries = client.xrange(log_key)
        client.delete(log_key)
        for stream_id, fields in entries:
            seq = int(stream_id.split(b"-")[0])
            fields[b"e"] = change(seq, fields[b"e"])  # type: ignore[operator]
            client.xadd(log_key, fields, id=stream_id)
    finally:
        client.close()
