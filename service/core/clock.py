"""Timestamps set from nanoseconds since the epoch.

protobuf's `Timestamp.FromNanoseconds` is pure Python with a range check, about 0.8 µs a call;
the hub stamps its own records with the current time (always in range) several times per task
and per registration, so it sets the two fields directly, on a message's field or a new one.
"""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp


def set_time(stamp: Timestamp, ns: int) -> None:
    stamp.seconds, stamp.nanos = divmod(ns, 1_000_000_000)


def timestamp(ns: int) -> Timestamp:
    seconds, nanos = divmod(ns, 1_000_000_000)
    return Timestamp(seconds=seconds, nanos=nanos)
