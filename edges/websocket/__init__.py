"""The WebSocket edge: the session protocol for browsers and agents that speak WebSocket."""

from agentplex.edges.websocket.edge import WebSocketEdge

__all__ = ["WebSocketEdge"]
