"""Size and count limits on every input, with the setting names that change them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """Each field is the setting `limits.<field>` (env `AGENTPLEX_LIMITS__<FIELD>`)."""

    max_payload_bytes: int = 1024 * 1024
    max_headers: int = 64
    max_header_bytes: int = 8 * 1024
    max_batch: int = 1000
    max_id_length: int = 190
    max_subscriptions: int = 1000
    max_capabilities: int = 64
    max_labels: int = 64
    max_text_length: int = 1024
    history_page: int = 1000
    session_queue: int = 10_000
    max_unacked: int = 10_000
