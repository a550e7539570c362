"""Executable stand-ins for the coding CLIs (see standin.py), and reading what they recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DIR = Path(__file__).parent


def records(path: Path, *events: str) -> list[dict[str, Any]]:
    """The stand-ins' records of some kinds ("run" by default; "context", "signal", "answer",
    "start", "end", ...) in the order they were written."""
    if not path.exists():
        return []
    wanted = events or ("run",)
    lines = path.read_text().splitlines()
    return [entry for entry in map(json.loads, lines) if entry.get("event") in wanted]
