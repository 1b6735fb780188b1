"""Counts in words: "1 row", "2 rows", "3 boxes"."""

from __future__ import annotations


def counted(n: int, word: str) -> str:
    """Gives n with its noun, singular for exactly one."""
    plural = f"{word}es" if word.endswith(("x", "s")) else f"{word}s"
    return f"{n:,} {word if n == 1 else plural}"
