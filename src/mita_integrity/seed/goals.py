"""Savings goals with consistent numbers: progress = min(saved / target × 100, 100), status to match."""

from __future__ import annotations

from .context import DAY, SeedRun
from .hashing import num_array, text_array
from .people import money

# (title, category, typical target in USD)
GOAL_KINDS: tuple[tuple[str, str, float], ...] = (
    ("Emergency fund", "emergency", 3000), ("Summer vacation", "travel", 2500), ("New laptop", "electronics", 1500),
    ("Car", "car", 12000), ("Wedding", "wedding", 15000), ("House down payment", "house", 40000),
    ("Christmas gifts", "gifts", 600), ("Pay off credit card", "debt", 4000), ("New phone", "electronics", 1000),
    ("Education", "education", 5000),
)


def goal_number(user_n: str, j: str) -> str:
    """Gives SQL for a goal's global number (up to 3 goals per user; the first one's id is in seed_users)."""
    return f"({user_n} * 4 + {j})"


def insert_goals(run: SeedRun) -> None:
    """Inserts 0-3 goals per user: ~15 % completed (saved = target), the rest active or paused, ~5 % deleted.

    A user's first goal is never deleted: transactions in 'savings' link to it (so no live transaction
    points at a deleted goal). Timestamps are naive UTC wall-clock, as the goals table has them.
    """
    h, now = run.h, run.now
    titles = text_array(tuple(k[0] for k in GOAL_KINDS))
    cats = text_array(tuple(k[1] for k in GOAL_KINDS))
    targets = num_array(tuple(k[2] for k in GOAL_KINDS))
    gn = "x.gn"
    run.insert("goals", f"""
INSERT INTO goals (id, user_id, title, target_amount, saved_amount, created_at, description, category,
                   monthly_contribution, status, progress, target_date, last_updated, completed_at, priority,
                   deleted_at)
SELECT {h.uuid('g', gn)}, x.user_id, ({titles})[x.kind + 1], x.target, x.saved, {run.naive('x.created')},
       CASE WHEN x.r_desc < 0.3 THEN 'Saving up for ' || lower(({titles})[x.kind + 1]) END,
       ({cats})[x.kind + 1], round(x.target / 12, 2),
       CASE WHEN x.state = 0 THEN 'completed' WHEN x.state = 1 THEN 'paused' ELSE 'active' END,
       CASE WHEN x.state = 0 THEN 100 ELSE round(x.saved / x.target * 100, 2) END,
       (to_timestamp(x.created + (90 + (x.bits & 511)) * {DAY}) AT TIME ZONE 'UTC')::date,
       {run.naive('x.updated')},
       CASE WHEN x.state = 0 THEN {run.naive('x.updated')} END,
       (ARRAY['low', 'medium', 'medium', 'high'])[1 + ((x.bits >> 9) & 3)],
       CASE WHEN x.j > 1 AND ((x.bits >> 11) & 1023) < 150
            THEN to_timestamp(least({now}, x.updated + ((x.bits >> 21) & 255) * 3600)) END
  FROM (
    SELECT y.*, {money('y.target_f * 0.95 * y.r_saved', 'y.whole')} AS saved0,
           y.created + floor(y.r_upd * ({now} - y.created))::bigint AS updated
      FROM (
        SELECT s.id AS user_id, s.whole, g.j, {goal_number('s.n', 'g.j')} AS gn,
               {h.below(goal_number('s.n', 'g.j'), 301, len(GOAL_KINDS))} AS kind,
               ({targets})[1 + {h.below(goal_number('s.n', 'g.j'), 301, len(GOAL_KINDS))}]
                 * (0.5 + 1.5 * {h.unit(goal_number('s.n', 'g.j'), 302)}) * s.scale AS target_f,
               CASE WHEN {h.unit(goal_number('s.n', 'g.j'), 303)} < 0.15 THEN 0
                    WHEN {h.unit(goal_number('s.n', 'g.j'), 303)} < 0.32 THEN 1 ELSE 2 END AS state,
               {h.unit(goal_number('s.n', 'g.j'), 304)} AS r_saved,
               {h.unit(goal_number('s.n', 'g.j'), 305)} AS r_upd,
               {h.unit(goal_number('s.n', 'g.j'), 306)} AS r_desc,
               s.created_epoch + floor({h.unit(goal_number('s.n', 'g.j'), 307)}
                                       * ({now - DAY} - s.created_epoch))::bigint AS created,
               {h.bits(goal_number('s.n', 'g.j'), 308)} AS bits
          FROM seed_users s CROSS JOIN LATERAL generate_series(1, s.goals_n) AS g(j)) y) x0
  CROSS JOIN LATERAL (
    SELECT x0.*, {money('x0.target_f', 'x0.whole')} AS target,
           CASE WHEN x0.state = 0 THEN {money('x0.target_f', 'x0.whole')} ELSE x0.saved0 END AS saved) x""")
