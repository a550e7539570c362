from agentplex.client import Client


async def test_publish_then_history(client: Client) -> None:
    result = await client.publish("chat", b"hello")
    assert result.position.seq == 1
    page = await client.history("chat")
    assert [e.payload for e in page.envelopes] == [b"hello"]
