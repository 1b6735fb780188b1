"""A comparable picture of a schema from PostgreSQL's system catalogs, and the differences of two pictures.

Migrations are proven reversible by comparing `snapshot()` before an upgrade with `snapshot()` after the
downgrade. Everything is read through the server's own deparsers (`format_type`, `pg_get_expr`,
`pg_get_constraintdef`, `pg_get_indexdef`, `pg_get_triggerdef`, `pg_get_functiondef`), so two schemas
built by different DDL text compare equal exactly when PostgreSQL sees them as the same.
"""

from __future__ import annotations

from typing import Any

import psycopg

EXCLUDED_TABLES = frozenset({"alembic_version"})

_TABLES = """
SELECT c.oid, c.relname, obj_description(c.oid, 'pg_class')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p')
ORDER BY c.relname
"""

# attnum order, dropped columns skipped: the relative order of the surviving columns is what counts.
_COLUMNS = """
SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), col_description(a.attrelid, a.attnum),
       a.attidentity::text, a.attgenerated::text
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""

_CONSTRAINTS = """
SELECT co.conrelid, co.conname, co.contype::text, pg_get_constraintdef(co.oid), co.convalidated
FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace
WHERE n.nspname = %(schema)s AND co.conrelid <> 0
"""

_INDEXES = """
SELECT i.indrelid, ic.relname, pg_get_indexdef(i.indexrelid), i.indisvalid, i.indisunique
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_namespace n ON n.oid = ic.relnamespace
WHERE n.nspname = %(schema)s
"""

# Internal triggers are the machinery of foreign keys; the constraints section already covers them.
_TRIGGERS = """
SELECT t.tgrelid, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled::text
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND NOT t.tgisinternal
"""

# Functions installed by an extension belong to the extension, not to the schema we migrate.
_FUNCTIONS = """
SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', pg_get_functiondef(p.oid)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = %(schema)s AND p.prokind IN ('f', 'p')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                  AND d.objid = p.oid AND d.deptype = 'e')
"""

_SEQUENCES = """
SELECT c.relname, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin, s.seqmax,
       s.seqcache, s.seqcycle,
       (SELECT oc.relname || '.' || a.attname
        FROM pg_depend d JOIN pg_class oc ON oc.oid = d.refobjid
        JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
        WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
          AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
        LIMIT 1)
FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s
"""


def _rows(conn: psycopg.Connection, query: str, schema: str) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(query, {"schema": schema})
        return cur.fetchall()


def snapshot(conn: psycopg.Connection, schema: str = "public") -> dict[str, Any]:
    """Gives the schema's tables, columns, constraints, indexes, triggers, functions and sequences."""
    tables: dict[str, dict[str, Any]] = {}
    by_oid: dict[int, dict[str, Any]] = {}
    for oid, name, comment in _rows(conn, _TABLES, schema):
        if name in EXCLUDED_TABLES:
            continue
        entry: dict[str, Any] = {"comment": comment, "columns": [], "constraints": {}, "indexes": {},
                                 "triggers": {}}
        tables[name] = by_oid[oid] = entry
    for rel, name, type_, not_null, default, comment, identity, generated in _rows(conn, _COLUMNS, schema):
        if rel in by_oid:
            by_oid[rel]["columns"].append({
                "name": name, "type": type_, "not_null": not_null, "default": default, "comment": comment,
                "identity": identity or None, "generated": generated or None,
            })
    for rel, name, kind, definition, validated in _rows(conn, _CONSTRAINTS, schema):
        if rel in by_oid:
            by_oid[rel]["constraints"][name] = {
                "type": kind, "definition": definition, "validated": validated,
            }
    for rel, name, definition, valid, unique in _rows(conn, _INDEXES, schema):
        if rel in by_oid:
            by_oid[rel]["indexes"][name] = {"definition": definition, "valid": valid, "unique": unique}
    for rel, name, definition, enabled in _rows(conn, _TRIGGERS, schema):
        if rel in by_oid:
            by_oid[rel]["triggers"][name] = {"definition": definition, "enabled": enabled}
    functions = {sig: {"definition": definition} for sig, definition in _rows(conn, _FUNCTIONS, schema)}
    sequences = {
        name: {"type": type_, "start": start, "increment": inc, "min": min_, "max": max_, "cache": cache,
               "cycle": cycle, "owned_by": owner}
        for name, type_, start, inc, min_, max_, cache, cycle, owner in _rows(conn, _SEQUENCES, schema)
    }
    return _sorted({"tables": tables, "functions": functions, "sequences": sequences})


def _sorted(value: Any) -> Any:
    """Gives value with every dict's keys in sorted order (lists keep their order: it is meaningful)."""
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


def diff(a: dict[str, Any], b: dict[str, Any], labels: tuple[str, str] = ("a", "b")) -> list[str]:
    """Gives the differences between two snapshots, one readable line each (empty when they are equal)."""
    out: list[str] = []
    _diff(a, b, "", labels, out)
    return out


def _named(items: list[Any]) -> dict[str, Any] | None:
    """Gives a list of {"name": …} dicts as a name-keyed dict, or None when the list is not of that shape."""
    if all(isinstance(item, dict) and "name" in item for item in items):
        return {item["name"]: {k: v for k, v in item.items() if k != "name"} for item in items}
    return None


def _diff(a: Any, b: Any, path: str, labels: tuple[str, str], out: list[str]) -> None:
    where = path or "(root)"
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(a.keys() - b.keys()):
            out.append(f"{path}{key}: only in {labels[0]}")
        for key in sorted(b.keys() - a.keys()):
            out.append(f"{path}{key}: only in {labels[1]}")
        for key in sorted(a.keys() & b.keys()):
            _diff(a[key], b[key], f"{path}{key}.", labels, out)
        return
    if isinstance(a, list) and isinstance(b, list):
        named_a, named_b = _named(a), _named(b)
        if named_a is not None and named_b is not None:
            common = named_a.keys() & named_b.keys()
            order_a = [name for name in named_a if name in common]
            order_b = [name for name in named_b if name in common]
            if order_a != order_b:
                orders = f"{labels[0]} {order_a}, {labels[1]} {order_b}"
                out.append(f"{where.rstrip('.')}: order differs: {orders}")
            _diff(named_a, named_b, path, labels, out)
            return
    if a != b:
        out.append(f"{where.rstrip('.')}: {labels[0]} {a!r} != {labels[1]} {b!r}")
