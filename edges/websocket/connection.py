"""One WebSocket connection carrying a session: each WebSocket message is one session frame,
text frames in canonical JSON and binary frames in protobuf; what the hub sends follows the
negotiated subprotocol (`agentplex.v1.json`, the default, or `agentplex.v1.proto`).

A frame that does not parse gets an error frame naming the problem and the session goes on; a
session the hub ends (a slow consumer, a fatal error, shutdown) closes the WebSocket with a code
and the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import grpc
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from agentplex.background import cancel_and_wait
from agentplex.edges.frames import (
    Refused,
    json_frames,
    parse_json_frame,
    parse_proto_frame,
    proto_frames,
)
from agentplex.errors import InvalidArgument
from agentplex.hub import Hub
from agentplex.hub.connection import Connection
from agentplex.security.auth import bearer
from agentplex.v1 import agent_pb2, session_service_pb2 as ss

JSON, PROTO = "agentplex.v1.json", "agentplex.v1.proto"
SUBPROTOCOLS = (JSON, PROTO)
MAX_REASON = 120  # a close reason is at most 123 bytes

# How a session's end (its status code) closes the WebSocket.
_CLOSE_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT: CloseCode.INVALID_DATA,  # 1007
    grpc.StatusCode.UNAVAILABLE: CloseCode.GOING_AWAY,  # 1001
    grpc.StatusCode.INTERNAL: CloseCode.INTERNAL_ERROR,  # 1011
}


def close_code(status: grpc.StatusCode | None) -> int:
    if status is None:
        return CloseCode.NORMAL_CLOSURE
    return _CLOSE_CODES.get(status, CloseCode.POLICY_VIOLATION)  # 1008: limits, permissions


def close_reason(reason: str) -> str:
    encoded = reason.encode()[:MAX_REASON]
    return encoded.decode(errors="ignore")


def token_of(ws: ServerConnection) -> str:
    """The bearer token of the upgrade request: its Authorization header, else the `token`
    query parameter (browsers cannot set headers on a WebSocket)."""
    request = ws.request
    if request is None:
        return ""
    token = bearer(request.headers.get("Authorization", ""))
    if token:
        return token
    query = parse_qs(urlsplit(request.path).query)
    return query.get("token", [""])[0]


def peer_of(ws: ServerConnection) -> str:
    address = ws.remote_address
    return f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)


async def serve_websocket(hub: Hub, ws: ServerConnection) -> None:
    """Run one session over `ws` until either side ends it."""
    connection = Connection(
        hub, agent_pb2.TRANSPORT_WEBSOCKET, token=token_of(ws), peer=peer_of(ws)
    )
    reader = asyncio.get_running_loop().create_task(connection.serve(_frames(ws, connection)))
    try:
        await _write(ws, connection, ws.subprotocol == PROTO)
    finally:
        await cancel_and_wait(reader)
        connection.detach()


async def _frames(ws: ServerConnection, connection: Connection) -> AsyncIterator[ss.ConnectRequest]:
    try:
        async for message in ws:
            try:
                if isinstance(message, str):
                    yield parse_json_frame(message)
                else:
                    yield parse_proto_frame(message)
            except Refused as err:
                connection.refuse(InvalidArgument(err.reason), err.ref)
    except ConnectionClosed:
        return


async def _write(ws: ServerConnection, connection: Connection, binary: bool) -> None:
    outbox = connection.outbox
    encode = proto_frames if binary else json_frames
    try:
        while items := await outbox.take():
            for frame in encode(items):
                await ws.send(frame)
        await ws.close(close_code(outbox.code), close_reason(outbox.reason))
    except ConnectionClosed:
        outbox.close("connection lost")
