"""The Redis edge: hub traffic out on `<prefix>msg:<channel>`, publishes in from
`<prefix>pub:<channel>`, and the session protocol on `<prefix>session:<id>:in|out`."""

from agentplex.edges.redis.edge import RedisEdge

__all__ = ["RedisEdge"]
