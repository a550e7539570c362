"""The engine interface every implementation honours (see tests/contract)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import NamedTuple

from agentplex.core.channel_log import Accepted, Replay
from agentplex.v1 import agent_pb2, envelope_pb2, task_pb2

# Called with every batch of envelopes accepted anywhere (this node or, with a shared engine,
# another one), in channel order.
PublicationHandler = Callable[[Sequence[Accepted]], None]
# Called with each message another node sent to this one (`send_to_node`, `broadcast`).
NodeMessageHandler = Callable[[bytes], None]
# An envelope's canonical JSON before and after its position (which the engine assigns).
JsonParts = Callable[[envelope_pb2.Envelope], tuple[str, str]]


class Outcome(NamedTuple):
    """What became of one published envelope (a tuple: made once per envelope)."""

    seq: int
    epoch: str
    sha256: str
    duplicate: bool


class Engine(ABC):
    """Shared state and fan-out. Implementations must be safe to call from one event loop."""

    name: str
    # False while the engine cannot reach its storage: the hub reports NOT_SERVING meanwhile.
    available: bool = True

    @abstractmethod
    async def start(
        self,
        on_publications: PublicationHandler,
        *,
        node: str = "",
        on_node_message: NodeMessageHandler | None = None,
    ) -> None:
        """Begin delivering publications (and messages addressed to `node`) to the handlers."""

    @abstractmethod
    async def close(self) -> None: ...

    def mirror(self, channel_prefix: str, parts: JsonParts | None) -> bool:
        """Publish every envelope this node accepts, as its JSON, on the pub/sub channel
        `channel_prefix + channel`, as part of accepting it (None stops). True when this engine
        does: one whose channels live in the Redis the edge mirrors into. Then each message
        reaches Redis subscribers in the same step that stores it, in seq order, once."""
        return False

    # Channels -------------------------------------------------------------------------------

    @abstractmethod
    async def publish(
        self, envelopes: Sequence[envelope_pb2.Envelope], now_ns: int
    ) -> list[Outcome]:
        """Accept envelopes whose id, sender, created_at and sha256 are set.

        Each gets the next position on its channel and is kept in history, unless its id is in
        the channel's dedup window: then the original position comes back, `duplicate=True`, and
        nothing is stored or delivered. Accepted envelopes reach the publication handler.
        """

    @abstractmethod
    async def history(self, channel: str, seq: int | None, epoch: str | None, limit: int) -> Replay:
        """Up to `limit` entries after (seq, epoch); see `ChannelLog.since` for the rules."""

    async def listen(self, channel: str) -> None:
        """This node has a subscriber for a channel or pattern (engines that fan out between
        nodes start receiving it)."""

    async def unlisten(self, channel: str) -> None:
        """This node has no subscriber left for a channel or pattern."""

    # Registry -------------------------------------------------------------------------------

    @abstractmethod
    async def put_agent(self, agent: agent_pb2.Agent) -> None: ...

    @abstractmethod
    async def get_agent(self, agent_id: str) -> agent_pb2.Agent | None: ...

    @abstractmethod
    async def delete_agent(self, agent_id: str) -> agent_pb2.Agent | None: ...

    @abstractmethod
    async def list_agents(self) -> list[agent_pb2.Agent]: ...

    # Tasks ----------------------------------------------------------------------------------

    @abstractmethod
    async def put_task(self, task: task_pb2.Task) -> None: ...

    @abstractmethod
    async def get_task(self, task_id: str) -> task_pb2.Task | None: ...

    @abstractmethod
    async def list_tasks(self) -> list[task_pb2.Task]: ...

    @abstractmethod
    async def delete_task(self, task_id: str) -> None:
        """Forget a task, its events and its idempotency key."""

    @abstractmethod
    async def claim_idempotency_key(self, key: str, task_id: str) -> str:
        """Bind `key` to `task_id` unless it is bound already; return the id it is bound to."""

    @abstractmethod
    async def release_idempotency_key(self, key: str, task_id: str) -> None:
        """Unbind `key` if it is bound to `task_id` (the submit that claimed it was refused)."""

    @abstractmethod
    async def append_task_event(self, event: task_pb2.TaskEvent, keep: int) -> int:
        """Number the event (1, 2, ... per task), store it keeping the last `keep`."""

    @abstractmethod
    async def task_events(self, task_id: str, after: int) -> list[task_pb2.TaskEvent]: ...

    @abstractmethod
    async def enqueue_task(self, task_id: str, priority: int, created_ns: int) -> None:
        """Queue a task for dispatch: higher priority first, then older first."""

    @abstractmethod
    async def dequeue_task(self, task_id: str) -> bool:
        """Take a task off the queue; False when it was not queued (someone else took it)."""

    @abstractmethod
    async def set_deadline(self, task_id: str, deadline_ns: int) -> None:
        """The task must be final by `deadline_ns`."""

    @abstractmethod
    async def due_deadlines(self, now_ns: int) -> list[str]:
        """Take the tasks whose deadline has come: each is handed to exactly one caller (one
        node), whichever node accepted it."""

    @abstractmethod
    async def pending_tasks(self, start: int = 0, count: int = 0) -> list[str]:
        """Queued task ids in dispatch order: `count` of them from position `start` (0: all)."""

    # Nodes ----------------------------------------------------------------------------------

    @abstractmethod
    async def beat(self, node: str, expires_ns: int) -> bool:
        """`node` is alive until `expires_ns`; it renews this well before then. False when the
        lease was not there: the first beat, or it lapsed (another node may have buried the
        node) or the storage lost it."""

    @abstractmethod
    async def expired_nodes(self, now_ns: int) -> list[str]:
        """Nodes whose lease ran out: they died without leaving."""

    @abstractmethod
    async def nodes(self) -> dict[str, int]:
        """Every node holding a lease, with the time (ns) the lease runs out."""

    @abstractmethod
    async def forget_node(self, node: str) -> bool:
        """Take a node off the list; True for exactly one caller, who cleans up after it."""

    @abstractmethod
    async def send_to_node(self, node: str, payload: bytes) -> None:
        """Hand `payload` to `node`'s message handler (at most once; lost if it is gone)."""

    @abstractmethod
    async def broadcast(self, payload: bytes) -> None:
        """Hand `payload` to every node's message handler, this node's included."""
