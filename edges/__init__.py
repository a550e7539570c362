"""Edges translate other transports to the hub's session protocol: WebSocket (with the
dashboard) and Redis. They arrive with their own issues; the hub core does not change for them."""
