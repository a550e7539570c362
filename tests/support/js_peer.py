"""The Python SDK on the far side of the JavaScript client's tests: `node --test` starts
`python -m tests.support.js_peer GRPC_ADDRESS` and sends it one JSON request per line
(`{"id", "op", ...}`); each answer is one JSON line `{"id", "result"}` or `{"id", "error"}`.

Operations: publish, subscribe + take (a gRPC subscription's envelopes), submit + wait + cancel
(tasks), and events (sample system events with their canonical JSON, for the JS decoder).
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from google.protobuf import json_format

from agentplex.client import Client
from agentplex.core.tasks import state_name
from agentplex.v1 import agent_pb2, envelope_pb2, task_pb2
from tests.support.streams import take

Json = dict[str, Any]


def _position(pos: envelope_pb2.StreamPosition) -> Json:
    return {"seq": str(pos.seq), "epoch": pos.epoch}


def sample_events() -> Json:
    """An AgentEvent and a TaskEvent with every field set, serialized, and as canonical JSON."""
    card = agent_pb2.AgentCard(
        id="a1", name="A", kind=agent_pb2.AGENT_KIND_GEMINI_CLI, capabilities=["x", "lang:go"],
        max_concurrent_tasks=3, labels={"team": "red", "os": "linux"}, version="1.2",
    )  # fmt: skip
    agent = agent_pb2.Agent(
        card=card, status=agent_pb2.AGENT_STATUS_BUSY, active_tasks=2,
        transport=agent_pb2.TRANSPORT_WEBSOCKET, node="n1", owner="anonymous",
    )  # fmt: skip
    agent.registered_at.FromNanoseconds(1_700_000_000_123_000_000)
    agent.last_seen.FromNanoseconds(1_700_000_001_000_000_000)
    agent.idle_since.FromNanoseconds(1_700_000_002_000_001_000)
    agent_event = agent_pb2.AgentEvent(
        type=agent_pb2.AGENT_EVENT_TYPE_STATUS_CHANGED, agent=agent, reason="heartbeat"
    )
    agent_event.time.FromNanoseconds(1_700_000_003_000_000_007)
    artifact = task_pb2.Artifact(
        id="art", name="out.txt", content_type="text/plain", data=b"\x00\xffdata", sha256="ab",
        metadata={"k": "v"}, chunk_index=2, last_chunk=True,
        file=task_pb2.FileRef(path="a/b.py", sha256="cd", content=b"print()", diff="+x"),
    )  # fmt: skip
    task = task_pb2.Task(
        id="t1", idempotency_key="k", required_capabilities=["x"],
        preferred_kinds=[agent_pb2.AGENT_KIND_CODEX, agent_pb2.AGENT_KIND_CUSTOM],
        target_agent_id="a1", priority=-5, max_attempts=4,
        input=task_pb2.Payload(content_type="text/plain", data=b"in"),
        context=task_pb2.ContextPackage(
            summary="s", decisions=["d1", "d2"], files=[artifact.file], git_ref="main",
            metadata={"m": "n"},
            prior_results=[task_pb2.PriorResult(
                task_id="t0", agent_id="a0", agent_kind=agent_pb2.AGENT_KIND_CURSOR,
                result=task_pb2.Payload(data=b"r"), artifacts=[artifact], summary="done",
            )],
        ),
        parent_task_id="t0", labels={"l": "1"}, state=task_pb2.TASK_STATE_FAILED,
        assigned_agent_id="a1", attempt=2, status_message="oops", artifacts=[artifact],
        result=task_pb2.Payload(content_type="application/json", data=b"{}"),
        error=task_pb2.TaskError(code="UNKNOWN", message="boom"), submitter="me",
        input_prompt="more?",
    )  # fmt: skip
    for stamp in (task.deadline, task.created_at, task.updated_at, task.completed_at):
        stamp.FromNanoseconds(1_700_000_000_500_000_000)
    task_event = task_pb2.TaskEvent(
        number=2**40 + 1, type=task_pb2.TASK_EVENT_TYPE_PROGRESS, task=task, message="half",
        percent=50.0, artifact=artifact,
    )  # fmt: skip
    task_event.time.FromSeconds(1_700_000_004)
    return {
        name: {
            "payload": base64.b64encode(event.SerializeToString()).decode(),
            "json": json_format.MessageToDict(event),
        }
        for name, event in (("agentEvent", agent_event), ("taskEvent", task_event))
    }


class Peer:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.readers: dict[str, asyncio.Task[list[envelope_pb2.Envelope]]] = {}
        self.ops: dict[str, Callable[..., Awaitable[Any]]] = {
            "publish": self.publish,
            "subscribe": self.subscribe,
            "take": self.take,
            "submit": self.submit,
            "wait": self.wait,
            "cancel": self.cancel,
            "events": self.events,
        }

    async def publish(self, channel: str, payloads: list[str]) -> list[Json]:
        return [_position((await self.client.publish(channel, p)).position) for p in payloads]

    async def subscribe(self, channel: str, count: int) -> bool:
        sub = self.client.subscribe(channel)
        self.readers[channel] = asyncio.create_task(take(sub, count, timeout=20))
        await asyncio.wait_for(sub.ready.wait(), 5)
        return True

    async def take(self, channel: str) -> list[Json]:
        envelopes = await self.readers.pop(channel)
        return [{"payload": e.payload.decode(), **_position(e.position)} for e in envelopes]

    async def submit(self, input: str, require: list[str]) -> str:
        return (await self.client.submit(input, require=require)).id

    async def wait(self, task: str) -> Json:
        done = await asyncio.wait_for(self.client.task(task).wait(), 20)
        return {
            "state": state_name(done.state),
            "result": done.result.data.decode(),
            "error": done.error.message,
            "attempt": done.attempt,
        }

    async def cancel(self, task: str, reason: str) -> str:
        return state_name((await self.client.cancel_task(task, reason)).state)

    async def events(self) -> Json:
        return sample_events()

    async def answer(self, line: bytes) -> None:
        request = json.loads(line)
        ident = request.pop("id")
        try:
            reply = {"id": ident, "result": await self.ops[request.pop("op")](**request)}
        except Exception as err:
            reply = {"id": ident, "error": f"{type(err).__name__}: {err}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


async def main(address: str) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    pending: set[asyncio.Task[None]] = set()
    async with Client(address) as client:
        peer = Peer(client)
        while line := await reader.readline():
            task = asyncio.create_task(peer.answer(line))
            pending.add(task)
            task.add_done_callback(pending.discard)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
