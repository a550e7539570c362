"""What Redis clients publish into the hub, as agentplex.v1 messages, with no I/O (session
frames and envelopes going out are encoded by `agentplex.edges.frames`).

A publish into the hub is either a JSON envelope or raw bytes: data whose first non-blank byte
is `{` is meant as an envelope (and refused if it is not one); anything else is the payload.
"""

from __future__ import annotations

from google.protobuf import json_format

from agentplex.edges.frames import Refused
from agentplex.v1 import envelope_pb2

RAW_CONTENT_TYPE = "application/octet-stream"


def decode_publish(channel: str, data: bytes) -> envelope_pb2.Envelope:
    """The envelope a Redis client published on `<prefix>pub:<channel>`."""
    if data.lstrip()[:1] != b"{":
        return envelope_pb2.Envelope(channel=channel, content_type=RAW_CONTENT_TYPE, payload=data)
    env = envelope_pb2.Envelope()
    try:
        json_format.Parse(data, env)
    except (json_format.ParseError, UnicodeDecodeError) as err:
        raise Refused(
            f"not an agentplex.v1.Envelope in JSON ({err}); data not starting with '{{' "
            "is taken as a raw payload"
        ) from None
    if not env.channel:
        env.channel = channel
    elif env.channel != channel:
        raise Refused(
            f"envelope.channel {env.channel!r} differs from {channel!r}, the channel it was "
            "published to"
        )
    return env
