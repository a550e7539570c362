"""Executable stand-ins for the coding CLIs (see standin.py), and reading what they recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DIR = Path(__file__).parent


def records(path: Path, event: str = "run") -> list[dict[str, Any]]:
    """The stand-ins' records of one kind ("run", "context", "signal", "answer", ...)."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [entry for entry in map(json.loads, lines) if entry.get("event") == event]
