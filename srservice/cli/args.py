"""Argument types shared by the command groups."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """Parse an integer >= 1 (an ``argparse`` type)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value
