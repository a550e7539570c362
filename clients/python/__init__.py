"""The agentplex Python SDK: async first, with a synchronous facade.

from agentplex.client import Client

async with Client("127.0.0.1:50051") as hub:
    await hub.publish("chat", "hello")
"""

from agentplex.client.channel import Tls
from agentplex.client.client import DEFAULT_HUB, Client, Subscription, envelope
from agentplex.client.errors import HubError, SessionClosed
from agentplex.client.session import Message, Session, SessionSubscription
from agentplex.client.sync import SyncClient
from agentplex.client.tasks import TaskContext, TaskFailed, TaskHandle, TaskRejected

__all__ = [
    "DEFAULT_HUB",
    "Client",
    "HubError",
    "Message",
    "Session",
    "SessionClosed",
    "SessionSubscription",
    "Subscription",
    "SyncClient",
    "TaskContext",
    "TaskFailed",
    "TaskHandle",
    "TaskRejected",
    "Tls",
    "envelope",
]
