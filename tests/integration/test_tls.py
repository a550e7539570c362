"""TLS on the hub's ports, with certificates made per test module (tests/support/certs.py): gRPC
over TLS end to end through the SDK, refusing plain-text clients and clients that do not trust
the hub's CA; mutual TLS refusing clients without a certificate of the configured CA; sessions
and the dashboard over wss:// and https://; and `agentplex serve` configured from the
environment."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidMessage

from agentplex.client import Client, HubError, Tls
from agentplex.node import HubNode
from tests.support.certs import Certs, make_certs
from tests.support.http import get, http_url
from tests.support.hubs import fast_settings, serve_process
from tests.support.streams import take
from tests.support.ws_sessions import answer


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def tls_settings(certs: Certs, *, client_ca: str = "") -> dict[str, str]:
    """The `tls` section: both ports on the server certificate; mutual TLS with `client_ca`."""
    server = certs.server
    return {
        "grpc_cert_file": server.cert,
        "grpc_key_file": server.key,
        "grpc_client_ca_file": client_ca,
        "ws_cert_file": server.cert,
        "ws_key_file": server.key,
    }


@pytest.fixture
async def node(certs: Certs) -> AsyncIterator[HubNode]:
    async with HubNode(fast_settings(tls=tls_settings(certs))) as running:
        yield running


@pytest.fixture
async def mutual(certs: Certs) -> AsyncIterator[HubNode]:
    async with HubNode(fast_settings(tls=tls_settings(certs, client_ca=certs.ca))) as running:
        yield running


def trusting(ca: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca)


async def publish_and_receive(address: str, tls: Tls | None) -> None:
    """A subscriber and a publisher over `tls` see the same message."""
    async with Client(address, tls=tls, timeout=3) as client:
        subscription = client.subscribe("secure")
        got = asyncio.create_task(take(subscription, 1))
        await asyncio.wait_for(subscription.ready.wait(), 5)
        await client.publish("secure", "over tls")
        assert [e.payload for e in await got] == [b"over tls"]


async def refused(address: str, tls: Tls | None) -> HubError:
    async with Client(address, tls=tls, timeout=3) as client:
        with pytest.raises(HubError) as failed:
            await client.publish("secure", "never")
    assert failed.value.code == grpc.StatusCode.UNAVAILABLE
    return failed.value


async def hello(url: str, context: ssl.SSLContext | None) -> dict[str, object]:
    """The welcome a hello gets on a session at `url`."""
    async with connect(url, ssl=context) as ws:
        await ws.send(json.dumps({"ref": "h", "hello": {"card": {"id": "tls-web"}}}))
        return (await answer(ws, "h"))["welcome"]  # type: ignore[no-any-return]


# gRPC ----------------------------------------------------------------------------------------


async def test_publish_and_subscribe_over_tls(node: HubNode, certs: Certs) -> None:
    await publish_and_receive(node.grpc_address, Tls(ca_file=certs.ca))


async def test_the_server_name_can_differ_from_the_address(node: HubNode, certs: Certs) -> None:
    address = f"127.0.0.1:{node.grpc_port}"
    await publish_and_receive(address, Tls(ca_file=certs.ca, server_name="localhost"))


async def test_a_plain_text_client_is_refused(node: HubNode) -> None:
    await refused(node.grpc_address, None)


async def test_a_client_trusting_another_ca_is_refused(node: HubNode, certs: Certs) -> None:
    await refused(node.grpc_address, Tls(ca_file=certs.other_ca))


# Mutual TLS ----------------------------------------------------------------------------------


async def test_mutual_tls_serves_a_client_with_a_certificate_of_the_ca(
    mutual: HubNode, certs: Certs
) -> None:
    tls = Tls(ca_file=certs.ca, cert_file=certs.client.cert, key_file=certs.client.key)
    await publish_and_receive(mutual.grpc_address, tls)


async def test_mutual_tls_refuses_a_client_without_a_certificate(
    mutual: HubNode, certs: Certs
) -> None:
    await refused(mutual.grpc_address, Tls(ca_file=certs.ca))


async def test_mutual_tls_refuses_a_certificate_of_another_ca(
    mutual: HubNode, certs: Certs
) -> None:
    other = certs.other_client
    await refused(
        mutual.grpc_address, Tls(ca_file=certs.ca, cert_file=other.cert, key_file=other.key)
    )


# WebSocket -----------------------------------------------------------------------------------


async def test_a_session_over_wss(node: HubNode, certs: Certs) -> None:
    assert node.ws_url.startswith("wss://")
    welcome = await hello(f"{node.ws_url}/v1/connect", trusting(certs.ca))
    assert welcome["agentId"] == "tls-web"


async def test_the_dashboard_over_https(node: HubNode, certs: Certs) -> None:
    status, page = await get(http_url(node), context=trusting(certs.ca))
    assert status == 200 and "<html" in page.lower()


async def test_wss_refuses_plain_text_and_clients_trusting_another_ca(
    node: HubNode, certs: Certs
) -> None:
    plain = node.ws_url.replace("wss://", "ws://", 1) + "/v1/connect"
    with pytest.raises(InvalidMessage):  # plain text gets no HTTP answer
        await hello(plain, None)
    with pytest.raises(ssl.SSLCertVerificationError):
        await hello(f"{node.ws_url}/v1/connect", trusting(certs.other_ca))


# agentplex serve -----------------------------------------------------------------------------


async def test_serve_takes_tls_from_the_environment(certs: Certs) -> None:
    env = {f"AGENTPLEX_TLS__{key.upper()}": value for key, value in tls_settings(certs).items()}
    with serve_process(env=env) as (proc, address):
        url: str = proc.ws_url  # type: ignore[attr-defined]
        assert url.startswith("wss://127.0.0.1:") and url.endswith("/v1/connect")
        assert (await hello(url, trusting(certs.ca)))["agentId"] == "tls-web"
        await publish_and_receive(address, Tls(ca_file=certs.ca))
        await refused(address, None)


@pytest.mark.parametrize("port", ["grpc", "ws"])
def test_a_key_of_another_certificate_stops_serve_naming_the_settings(
    certs: Certs, port: str
) -> None:
    env = {
        f"AGENTPLEX_TLS__{port.upper()}_CERT_FILE": certs.server.cert,
        f"AGENTPLEX_TLS__{port.upper()}_KEY_FILE": certs.client.key,
    }
    serve = [sys.executable, "-m", "agentplex", "serve", "--grpc-port", "0", "--ws-port", "0"]
    done = subprocess.run(
        serve, capture_output=True, text=True, timeout=30, env={**os.environ, **env}
    )
    assert done.returncode == 1
    assert f"cannot load tls.{port}_cert_file {certs.server.cert} with tls.{port}_key_file" in (
        done.stderr
    )


def test_the_readme_example_runs_as_written(tmp_path: Path) -> None:
    """The README's TLS lines in bash, the hub on free ports: a self-signed certificate made by
    openssl, a hub serving it on both ports, a publish trusting it."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = next(b for b in re.findall(r"```sh\n(.*?)```", readme, re.S) if "TLS__WS" in b)
    log = tmp_path / "serve.log"
    script = re.sub(
        r"^agentplex serve &.*$",
        f"agentplex serve --grpc-port 0 --ws-port 0 > {log} 2>&1 &\n"
        "hub=$!; trap 'kill $hub' EXIT\n"
        f"for _ in $(seq 400); do grep -q 'grpc ' {log} && break; sleep 0.05; done\n"
        f"export AGENTPLEX_HUB=$(sed -n 's/^ *grpc *//p' {log})",
        block,
        flags=re.M,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTPLEX")}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    out = subprocess.run(
        ["bash", "-euc", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr + log.read_text()
    assert out.stdout.startswith("secure #1 "), out.stdout
    assert re.search(r"ws +wss://127\.0\.0\.1:\d+/v1/connect", log.read_text())
