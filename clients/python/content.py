"""Payloads given as text or bytes: one rule for envelopes and task payloads."""

from __future__ import annotations

TEXT = "text/plain; charset=utf-8"
BINARY = "application/octet-stream"


def as_bytes(value: bytes | str, content_type: str = "") -> tuple[bytes, str]:
    """The bytes to send and their content type: text is UTF-8 (`text/plain` unless said
    otherwise), bytes are `application/octet-stream` unless said otherwise."""
    if isinstance(value, str):
        return value.encode(), content_type or TEXT
    return value, content_type or BINARY
