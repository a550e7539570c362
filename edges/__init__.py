"""Edges translate other transports to the hub's session protocol: Redis (`agentplex.edges.redis`)
and, with its own issue, WebSocket (with the dashboard). They share the core's session logic
(`agentplex.hub.connection`) instead of having their own."""
