"""The Redis engine on a redis-server that speaks only TLS (`--port 0`), wants a client
certificate and a password: messages and tasks work over `rediss://:password@...` with the
`engine.redis_tls_*` files; a wrong password or a missing client certificate fails the start
with an error naming engine.redis_url; the password never shows in errors, logs or what
`agentplex serve` prints."""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from agentplex.client import Client, TaskContext
from agentplex.config import Settings
from agentplex.errors import Unavailable
from agentplex.node import HubNode
from agentplex.v1 import agent_pb2
from tests.support.hubs import fast_settings, serve_process
from tests.support.redis_server import RedisServer, find_redis_server, redis_server
from tests.support.streams import take
from tests.support.tls import TlsFiles, certificates

pytestmark = pytest.mark.skipif(find_redis_server() is None, reason="no redis-server found")

PASSWORD = "s3cret-pa55"
WRONG = "wr0ng-pa55"
_prefixes = itertools.count()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def server(tls: TlsFiles) -> Iterator[RedisServer]:
    with redis_server(tls=tls, password=PASSWORD) as running:
        yield running


def on_redis(url: str, tls_files: dict[str, str], **more: object) -> Settings:
    engine = {"name": "redis", "redis_url": url, "redis_prefix": f"tls{next(_prefixes)}"}
    return fast_settings(engine={**engine, **tls_files}, **more)


def next_message(pubsub: redis.client.PubSub, timeout: float = 5) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.5)  # None for a subscribe confirmation too
        if message is not None:
            data: bytes = message["data"]
            return data
    raise TimeoutError("nothing mirrored over TLS")


async def test_messages_and_tasks_over_tls_with_a_password(
    server: RedisServer, tls: TlsFiles
) -> None:
    edge = {"enabled": True, "prefix": f"tls{next(_prefixes)}:"}
    settings = on_redis(server.url, tls.engine_settings(), redis_edge=edge)
    assert server.url.startswith("rediss://:")
    mirrored = server.client().pubsub(ignore_subscribe_messages=True)
    mirrored.subscribe(f"{edge['prefix']}msg:chat")  # the edge's mirror, over TLS too

    async def work(task: TaskContext) -> str:
        return f"done: {task.input.data.decode()}"

    async with HubNode(settings) as node, Client(node.grpc_address) as client:
        subscription = client.subscribe("chat")
        got = asyncio.create_task(take(subscription, 2))
        await asyncio.wait_for(subscription.ready.wait(), 5)
        await client.publish("chat", "one")
        await client.publish("chat", "two")
        assert [e.payload for e in await got] == [b"one", b"two"]
        for expected in ("b25l", "dHdv"):  # "one", "two"
            message = await asyncio.to_thread(next_message, mirrored)
            assert json.loads(message)["payload"] == expected
        async with client.session(agent_pb2.AgentCard(id="tls-agent", capabilities=["tls"])) as a:
            a.on_task(work)
            handle = await client.submit("job", require=["tls"])
            assert (await handle.result()).data == b"done: job"
    mirrored.close()
    with server.client() as direct:  # the state really lives in this Redis
        assert direct.exists(f"{settings.engine.redis_prefix}:{{ch:chat}}:log")


@pytest.mark.parametrize(
    ("refused", "cause"),
    [("wrong password", "invalid username-password"), ("no client certificate", "")],
)
async def test_a_refused_connection_fails_the_start_naming_the_setting(
    server: RedisServer,
    tls: TlsFiles,
    refused: str,
    cause: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, tls_files = server.url, tls.engine_settings()
    if refused == "wrong password":
        url = url.replace(PASSWORD, WRONG)
    else:
        tls_files = {"redis_tls_ca_file": tls.ca}
    with caplog.at_level(logging.DEBUG), pytest.raises(Unavailable) as failed:
        async with HubNode(on_redis(url, tls_files)):
            pass
    # Collect what the failed start left behind (its Redis client, the gRPC server that never
    # started) while this test's event loop still runs: collected later, under another test's
    # loop, it now and then crashed the interpreter (a segfault while garbage-collecting).
    gc.collect()
    message = str(failed.value)
    assert f"rediss://:***@{server.host}:{server.port}/0 (engine.redis_url)" in message
    assert cause in message
    for secret in (PASSWORD, WRONG):
        assert secret not in message and secret not in caplog.text


def config_file(folder: Path, tls: TlsFiles) -> str:
    path = folder / "agentplex.toml"
    lines = [f'{key} = "{value}"' for key, value in tls.engine_settings().items()]
    path.write_text("\n".join(["[default.engine]", *lines, ""]))
    return str(path)


def test_serve_never_prints_the_password(
    server: RedisServer, tls: TlsFiles, tmp_path: Path
) -> None:
    serve = ["--engine", "redis", "--config", config_file(tmp_path, tls)]
    with serve_process(*serve, "--redis-url", server.url) as (proc, _):
        pass
    proc.reader.join(5)  # type: ignore[attr-defined]
    printed = "".join(proc.output)  # type: ignore[attr-defined]
    assert PASSWORD not in printed
    wrong_url = server.url.replace(PASSWORD, WRONG)
    refused = subprocess.run(
        [sys.executable, "-m", "agentplex", "serve", "--grpc-port", "0", "--ws-port", "0",
         *serve, "--redis-url", wrong_url],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert refused.returncode != 0
    assert f"rediss://:***@{server.host}:{server.port}/0 (engine.redis_url)" in refused.stderr
    assert WRONG not in refused.stdout + refused.stderr
