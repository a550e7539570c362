"""The operations every transport calls, with the caller's principal, over one engine."""

from agentplex.hub.hub import Hub

__all__ = ["Hub"]
