"""Defects of transactions: each one a new row beside a victim's first (recent, live, everyday) transaction.

They are inserted before daily_plan is derived, so the calendar agrees with them (no BUD001) unless a
defect is about the calendar itself. A defect row sits at second `bucket - 32 + i` of the first
transaction's slot, a second no clean transaction of that user uses, so DUP003 sees only intended copies.
"""

from __future__ import annotations

from .context import DAY, SeedRun
from .corrupt_people import defect_goal_id
from .hashing import quote
from .people import money
from .plan import BAD_CURRENCIES, ORPHAN_TX_USERS, VICTIM_DEFECTS

# kind: (code, column overrides of a copy of the first transaction at the kind's own second)
_TX_DEFECTS: dict[str, tuple[str, dict[str, str]]] = {
    "tx_blank_category": ("NUL004", {"category": "CASE WHEN k.slot % 2 = 0 THEN '' ELSE ' ' END"}),
    "tx_no_spent_at": ("NUL006", {"spent_at": "NULL"}),
    "tx_updated_before_created": ("TIM001", {"updated_at": "b.at + interval '1 minute' - interval '1 hour'"}),
    "tx_future": ("TIM003", {"spent_at": "b.future", "created_at": "to_timestamp({now} - 3600)",
                             "updated_at": "to_timestamp({now} - 3600)"}),
    "tx_deleted_before_created": ("TIM005", {"deleted_at": "b.at + interval '1 minute' - interval '2 hours'"}),
    "tx_bad_currency": ("AMT001", {"currency": "(ARRAY[{bad}])[1 + k.slot % {nbad}]"}),
    "tx_zero": ("AMT002", {"amount": "0"}),
    # A refund typed as a negative expense, on the same second and key as the purchase it refunds.
    "tx_negative": ("AMT003", {"amount": "-greatest(trunc(k.amount / 2, 2), 0.01)", "spent_at": "k.spent_at"}),
    "tx_huge": ("AMT004", {"amount": "1000000 + k.amount * 10000"}),
    "tx_deleted_goal": ("SDL002", {"category": "'savings'", "amount": "b.saving", "goal_id": "{goal}",
                                   "merchant": "NULL"}),
}


def collect_first_transactions(run: SeedRun) -> None:
    """Copies the first transaction of every transaction and calendar victim into seed_k1 (one scan)."""
    run.execute(f"""
CREATE TEMP TABLE seed_k1 ON COMMIT DROP AS
SELECT v.kind, v.slot, s.n, s.scale, s.whole, s.daily_budget, t.*
  FROM seed_victims v
  JOIN seed_users s ON s.n = v.n
  JOIN transactions t ON t.id = {run.h.uuid('t', 's.tx_start + 1')}
 WHERE v.kind LIKE 'tx\\_%' OR v.kind LIKE 'plan\\_%'""")
    run.execute("ANALYZE seed_k1")


def add_bad_transactions(run: SeedRun) -> None:
    """Inserts the transaction defects of every victim; DUP003 copies too (two copies for every third)."""
    now, width = run.now, run.bucket
    names = [d.name for d in VICTIM_DEFECTS]
    bad = ", ".join(quote(c) for c in BAD_CURRENCIES)
    for kind, (code, overrides) in _TX_DEFECTS.items():
        offset = width - 32 + names.index(kind) % 32
        columns = _base_columns(run, kind)
        columns.update({c: e.format(now=now, bad=bad, nbad=len(BAD_CURRENCIES),
                                    goal=defect_goal_id(run, "tx_deleted_goal", "k.slot"))
                        for c, e in overrides.items()})
        n = run.insert("transactions", f"""
INSERT INTO transactions ({', '.join(columns)})
SELECT {', '.join(columns.values())}
  FROM seed_k1 k
 CROSS JOIN LATERAL (
    SELECT to_timestamp(floor(extract(epoch FROM k.spent_at) / {width}) * {width} + {offset}) AS at,
           to_timestamp({now} + (3 + k.slot % 20) * {DAY} + {offset}) AS future,
           {money('100 * k.scale', 'k.whole')} AS saving) b
 WHERE k.kind = '{kind}'""")
        run.truth.add(code, n)
    _duplicates(run)


def _base_columns(run: SeedRun, kind: str) -> dict[str, str]:
    return {
        "id": run.h.uuid("tx-defect", quote(kind), "k.slot"), "user_id": "k.user_id", "category": "k.category",
        "amount": "k.amount", "currency": "k.currency", "spent_at": "b.at", "created_at": "b.at + interval '1 minute'",
        "merchant": "k.merchant", "is_recurring": "false", "updated_at": "b.at + interval '1 minute'",
        "goal_id": "NULL", "deleted_at": "NULL",
    }


def _duplicates(run: SeedRun) -> None:
    """Re-submits victims' first transactions: same user, category, amount and second (DUP003)."""
    n = run.insert("transactions", f"""
INSERT INTO transactions (id, user_id, category, amount, currency, spent_at, created_at, merchant, is_recurring,
                          updated_at, goal_id)
SELECT {run.h.uuid('tx-dup', 'k.slot', 'c.copy')}, k.user_id, k.category, k.amount, k.currency,
       k.spent_at + c.copy * interval '200 milliseconds', k.created_at + c.copy * interval '2 seconds',
       k.merchant, k.is_recurring, k.created_at + c.copy * interval '2 seconds', k.goal_id
  FROM seed_k1 k CROSS JOIN generate_series(1, 2) AS c(copy)
 WHERE k.kind = 'tx_duplicate' AND (c.copy = 1 OR k.slot % 3 = 1)""")
    run.truth.add("DUP003", n)
    run.truth.add("DUP003.groups", run.scalar("SELECT count(*) FROM seed_k1 WHERE kind = 'tx_duplicate'"))


def add_orphan_transactions(run: SeedRun) -> None:
    """Inserts spending of users who no longer exist, after the calendar was derived (REF001, BUD001).

    Three transactions per vanished user, in three categories, in the last two days: three calendar keys
    with spending and no plan row each.
    """
    users = ORPHAN_TX_USERS.size(run.options.users)
    now = run.now
    n = run.insert("transactions", f"""
INSERT INTO transactions (id, user_id, category, amount, currency, spent_at, created_at, merchant, is_recurring,
                          updated_at)
SELECT {run.h.uuid('orphan-tx', 'o.i', 'c.j')}, {run.h.uuid('orphan-user', 'o.i')},
       (ARRAY['food', 'transport', 'shopping'])[c.j], (ARRAY[12.40, 23.90, 64.99])[c.j] + o.i % 7,
       'USD', to_timestamp({now} - o.i * 600 - c.j * 7200 - 3600),
       to_timestamp({now} - o.i * 600 - c.j * 7200 - 3540), NULL, false,
       to_timestamp({now} - o.i * 600 - c.j * 7200 - 3540)
  FROM generate_series(1, {users}) AS o(i) CROSS JOIN generate_series(1, 3) AS c(j)""")
    run.truth.add("REF001", n)
    run.truth.add("BUD001", n)
