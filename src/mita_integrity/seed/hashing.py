"""Deterministic pseudo-randomness as SQL text: every value is a hash of (seed, purpose, row number).

No `random()` anywhere: a row's content depends only on the seed and its own numbers, never on the order
in which PostgreSQL happens to produce rows, so two seeds with the same options give the same database.
`hashint8extended` is cheap (no text) and platform independent; `md5` makes the uuids.
"""

from __future__ import annotations

from dataclasses import dataclass

# 2**52: the fraction keeps 52 bits of the hash, exactly representable in a float8.
_MASK = 4503599627370495
_SCALE = "4503599627370496.0"


@dataclass(frozen=True)
class Hasher:
    """Builds SQL expressions of deterministic pseudo-random values for one seed."""

    seed: int

    def salt(self, purpose: int) -> int:
        """Gives the hash seed of one purpose (a small int per kind of value)."""
        return self.seed * 4096 + purpose

    def bits(self, expr: str, purpose: int) -> str:
        """Gives SQL for a bigint hash of expr (a bigint SQL expression)."""
        return f"hashint8extended(({expr})::bigint, {self.salt(purpose)})"

    def unit(self, expr: str, purpose: int) -> str:
        """Gives SQL for a float8 in [0, 1) drawn from expr."""
        return f"(({self.bits(expr, purpose)} & {_MASK})::float8 / {_SCALE})"

    def below(self, expr: str, purpose: int, n: int) -> str:
        """Gives SQL for an int in [0, n) drawn from expr."""
        return f"(({self.bits(expr, purpose)} & {_MASK}) % {int(n)})::int"

    def uuid(self, tag: str, *exprs: str) -> str:
        """Gives SQL for a uuid that is md5 of the seed, a tag and the text of exprs (uuid4-looking)."""
        parts = " || ':' || ".join(f"({e})::text" for e in exprs) if exprs else "''"
        return f"md5('{self.seed}:{tag}:' || {parts})::uuid"

    def pick(self, values: tuple[str, ...], expr: str, purpose: int) -> str:
        """Gives SQL for one of the literal strings in values, chosen by expr."""
        array = ", ".join(quote(v) for v in values)
        return f"(ARRAY[{array}])[1 + {self.below(expr, purpose, len(values))}]"


def quote(value: str) -> str:
    """Gives a SQL string literal for a trusted constant of this package (doubles single quotes)."""
    return "'" + value.replace("'", "''") + "'"


def text_array(values: tuple[str, ...]) -> str:
    """Gives a SQL text[] literal of trusted constants."""
    return "ARRAY[" + ", ".join(quote(v) for v in values) + "]::text[]"


def num_array(values: tuple[float, ...]) -> str:
    """Gives a SQL float8[] literal."""
    return "ARRAY[" + ", ".join(repr(float(v)) for v in values) + "]::float8[]"
