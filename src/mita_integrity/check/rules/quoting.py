"""Quoting of SQL identifiers for the rules and the context they run in."""

from __future__ import annotations


def ident(name: str) -> str:
    """Quotes an identifier from the catalog or the configuration (a name may hold any character, `"` too)."""
    return '"' + name.replace('"', '""') + '"'
