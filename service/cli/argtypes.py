"""Argument types for numbers that end up in fixed-width protobuf fields: argparse refuses a value
out of range naming the option (exit 2), where protobuf would fail later with a message that
names nothing ("Value out of range") or Python would (OverflowError on an infinite deadline)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

INT32 = (-(2**31), 2**31 - 1)
UINT32 = (0, 2**32 - 1)
UINT64 = (0, 2**64 - 1)
CENTURY = 100 * 365 * 24 * 3600  # seconds: the longest deadline a task may be given


def integer(bounds: tuple[int, int]) -> Callable[[str], int]:
    """An int within `bounds` (inclusive)."""
    low, high = bounds

    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not between {low} and {high}")
        return value

    parse.__name__ = "int"  # argparse names the type for text that is no number: "invalid int"
    return parse


def seconds(text: str) -> float:
    """A deadline in seconds from now: positive, finite and at most a century."""
    value = float(text)
    if not 0 < value <= CENTURY:  # NaN too: it compares false
        raise argparse.ArgumentTypeError(
            f"{value} is not a number of seconds above 0 and at most {CENTURY} (a century)"
        )
    return value
