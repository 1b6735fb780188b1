"""What users do besides spending: habits, moods, challenges, notifications, advice."""

from __future__ import annotations

from .context import DAY, SeedRun, per_user
from .hashing import quote

_HABITS = ("Track expenses daily", "No coffee out", "Cook at home", "Review the budget", "Walk instead of taxi",
           "No impulse buys")
_MOODS = ("happy", "calm", "neutral", "stressed", "anxious", "excited")
# The eight challenges production has (challenges is reference data: id, name, type, days, points, level).
CHALLENGES: tuple[tuple[str, str, str, int, int, str], ...] = (
    ("no_spend_weekend", "No-Spend Weekend", "spending", 2, 50, "easy"),
    ("coffee_free_week", "Coffee-Free Week", "spending", 7, 100, "easy"),
    ("cook_at_home", "Cook at Home", "habit", 14, 150, "medium"),
    ("track_every_expense", "Track Every Expense", "habit", 30, 200, "medium"),
    ("save_10_percent", "Save 10 Percent", "savings", 30, 300, "medium"),
    ("no_impulse_buys", "No Impulse Buys", "spending", 21, 250, "hard"),
    ("transport_saver", "Transport Saver", "spending", 14, 150, "medium"),
    ("subscription_cleanup", "Subscription Clean-up", "savings", 7, 100, "easy"),
)
_HABIT_COUNT = "CASE WHEN ((s.bits >> 5) & 7) < 2 THEN 1 + ((s.bits >> 8) & 1) ELSE 0 END"
_ADVICE = ("You spent 20% more on food this week than last.", "Great job staying under budget yesterday!",
           "Consider moving 50 to your emergency fund.", "Your transport spending is trending up.")


def _values(rows: tuple[tuple[object, ...], ...]) -> str:
    return ", ".join("(" + ", ".join(quote(v) if isinstance(v, str) else str(v) for v in row) + ")" for row in rows)


def insert_activity(run: SeedRun) -> None:
    """Inserts habits and their completions, moods, challenges and participations, notifications, advice."""
    h, now, today = run.h, run.now, run.today
    recent = min(run.options.days, 7)
    run.insert("habits", f"""
INSERT INTO habits (id, user_id, title, description, created_at)
SELECT {h.uuid('habit', 'r.rk')}, s.id, {h.pick(_HABITS, 'r.rk', 501)}, NULL,
       to_timestamp(s.created_epoch + j.j * {DAY}) AT TIME ZONE 'UTC'
  FROM {per_user(_HABIT_COUNT)}
 ORDER BY s.n, j.j""")
    run.insert("habit_completions", f"""
INSERT INTO habit_completions (id, habit_id, user_id, completed_at, notes, created_at)
SELECT {h.uuid('done', 'r.rk', 'd.d')}, {h.uuid('habit', 'r.rk')}, s.id, x.at, NULL, x.at
  FROM {per_user(_HABIT_COUNT)}
 CROSS JOIN generate_series(1, {recent}) AS d(d)
 CROSS JOIN LATERAL (SELECT to_timestamp({today} - d.d * {DAY} + 72000 + {h.below('r.rk * 64 + d.d', 502, 7200)})
                            AS at) x
 WHERE {h.unit('r.rk * 64 + d.d', 503)} < 0.35
 ORDER BY s.n, j.j, d.d""")
    run.insert("moods", f"""
INSERT INTO moods (id, user_id, date, mood)
SELECT {h.uuid('mood', 'r.rk')}, s.id, (to_timestamp({today} - j.j * {DAY}) AT TIME ZONE 'UTC')::date,
       {h.pick(_MOODS, 'r.rk', 511)}
  FROM {per_user("CASE WHEN ((s.bits >> 9) & 3) = 0 THEN 1 + ((s.bits >> 10) & 1) ELSE 0 END")}
 ORDER BY s.n, j.j""")
    month = run.anchor.strftime("%Y-%m")
    run.insert("challenges", f"""
INSERT INTO challenges (id, name, description, type, duration_days, reward_points, difficulty, start_month,
                        end_month, created_at, updated_at)
SELECT c.id, c.name, c.name || ': a ' || c.days || '-day challenge.', c.type, c.days, c.points, c.level,
       '{month}', '{month}', to_timestamp({today} - {60 * DAY}), to_timestamp({today} - {60 * DAY})
  FROM (VALUES {_values(CHALLENGES)}) AS c(id, name, type, days, points, level)
ON CONFLICT (id) DO NOTHING""")
    ids = "ARRAY[" + ", ".join(quote(c[0]) for c in CHALLENGES) + "]"
    run.insert("challenge_participations", f"""
INSERT INTO challenge_participations (id, user_id, challenge_id, month, status, progress_percentage,
                                      days_completed, current_streak, best_streak, started_at, completed_at,
                                      last_updated)
SELECT {h.uuid('part', 's.n')}, s.id, ({ids})[1 + {h.below('s.n', 521, len(CHALLENGES))}], '{month}',
       CASE WHEN x.p = 100 THEN 'completed' ELSE 'active' END, x.p, x.p / 10, x.p / 20, x.p / 10,
       to_timestamp({today} - {5 * DAY}), CASE WHEN x.p = 100 THEN to_timestamp({now} - 3600) END,
       to_timestamp({now} - 3600)
  FROM seed_users s CROSS JOIN LATERAL (SELECT 10 * {h.below('s.n', 522, 11)} AS p) x
 WHERE ((s.bits >> 12) & 7) < 2
 ORDER BY s.n""")
    run.insert("notifications", f"""
INSERT INTO notifications (id, user_id, title, message, type, priority, status, channel, is_read, read_at,
                           scheduled_for, sent_at, created_at, updated_at, category, retry_count)
SELECT {h.uuid('note', 'r.rk')}, s.id, x.title, x.title || ' — open MITA to see details.', x.kind, 'medium',
       'sent', 'push', x.read, CASE WHEN x.read THEN to_timestamp(x.at + 3600) END, to_timestamp(x.at),
       to_timestamp(x.at), to_timestamp(x.at), to_timestamp(x.at), x.kind, '0'
  FROM {per_user("CASE WHEN ((s.bits >> 14) & 3) = 1 THEN 1 + ((s.bits >> 16) & 1) ELSE 0 END")}
 CROSS JOIN LATERAL (
    SELECT {h.pick(('Budget alert', 'Daily summary', 'Goal progress', 'Weekly report'), 'r.rk', 531)} AS title,
           {h.pick(('alert', 'info', 'reminder'), 'r.rk', 532)} AS kind, {h.unit('r.rk', 533)} < 0.6 AS read,
           {now} - {h.below('r.rk', 534, 14 * DAY)} AS at) x
 ORDER BY s.n, j.j""")
    run.insert("notification_logs", f"""
INSERT INTO notification_logs (id, user_id, channel, message, success, created_at)
SELECT {h.uuid('nlog', 's.n')}, s.id, CASE WHEN (s.bits & 32) = 0 THEN 'apns' ELSE 'fcm' END,
       'Daily summary', ((s.bits >> 17) & 15) > 0, to_timestamp({now} - {h.below('s.n', 541, 7 * DAY)})
  FROM seed_users s WHERE ((s.bits >> 14) & 3) = 2
 ORDER BY s.n""")
    run.insert("budget_advice", f"""
INSERT INTO budget_advice (id, user_id, date, type, text)
SELECT {h.uuid('advice', 's.n')}, s.id, to_timestamp({today} - {h.below('s.n', 551, 7)} * {DAY}),
       {h.pick(('tip', 'warning', 'praise'), 's.n', 552)}, {h.pick(_ADVICE, 's.n', 553)}
  FROM seed_users s WHERE s.onboarded AND ((s.bits >> 18) & 3) = 0
 ORDER BY s.n""")
