"""Defects of users and goals: missing incomes, blank and duplicated e-mails, goals whose numbers disagree."""

from __future__ import annotations

from .context import DAY, SeedRun
from .people import money
from .plan import BLANK_EMAILS, VICTIM_DEFECTS
from .victims import victims_of


def break_incomes(run: SeedRun) -> None:
    """Clears monthly or annual income of some onboarded users (before users are inserted): USR001, USR002."""
    for kind, column, code in (("no_monthly_income", "monthly", "USR001"), ("no_annual_income", "annual", "USR002")):
        # Half of them NULL (never asked), half 0 (the form's default saved as an answer).
        n = run.execute(f"UPDATE seed_users s SET {column} = CASE WHEN v.slot % 2 = 0 THEN NULL ELSE 0 END "
                        f"FROM seed_victims v WHERE v.kind = '{kind}' AND v.n = s.n")
        run.truth.add(code, n)


def _new_user(run: SeedRun, email: str, source: str, tag: str) -> str:
    """Gives an INSERT of not-onboarded sign-ups with the given e-mail expression, one per source row."""
    return f"""
INSERT INTO users (id, email, password_hash, created_at, name, currency, has_onboarded, updated_at,
                   email_verified, monthly_income)
SELECT {run.h.uuid(tag, 'x.i')}, {email},
       '$2b$12$' || left(translate(encode(sha512(('{run.options.seed}:{tag}:' || x.i)::bytea), 'base64'),
                                   E'+=\\n', '.'), 53),
       to_timestamp({run.now} - (x.i % 20 + 1) * {DAY}), NULL, 'USD', false,
       to_timestamp({run.now} - (x.i % 20 + 1) * {DAY}), false, 0
  FROM ({source}) x"""


def add_bad_users(run: SeedRun) -> None:
    """Adds sign-ups whose e-mail is blank (NUL001) or another account's in other case or spacing (DUP001).

    Blank e-mails are '' , ' ', '  ' … (distinct for the UNIQUE constraint). They are not counted as
    duplicates of each other: a blank is not an address two accounts share (NUL001 reports them).
    """
    blanks = BLANK_EMAILS.size(run.options.users)
    n = run.insert("users", _new_user(run, "repeat(' ', (x.i - 1)::int)",
                                      f"SELECT i FROM generate_series(1, {blanks}) AS i", "blank-user"))
    run.truth.add("NUL001", n)
    # Every victim's address comes back once in another case; every third one also with a trailing space.
    source = (f"SELECT v.slot * 2 + c.copy AS i, u.email, c.copy FROM {victims_of('duplicate_email')} "
              "JOIN users u ON u.id = s.id CROSS JOIN generate_series(1, 2) AS c(copy) "
              "WHERE c.copy = 1 OR v.slot % 3 = 2")
    variant = "CASE WHEN x.copy = 1 THEN upper(left(x.email, 1)) || substr(x.email, 2) ELSE x.email || ' ' END"
    n = run.insert("users", _new_user(run, variant, source, "dup-user"))
    run.truth.add("DUP001", n)
    run.truth.add("DUP001.groups", run.scalar("SELECT count(*) FROM seed_victims WHERE kind = 'duplicate_email'"))


# kind: (code, column overrides of a clean active goal at 40 % progress)
_GOAL_DEFECTS: dict[str, tuple[str, dict[str, str]]] = {
    "goal_blank_title": ("NUL008", {"title": "CASE WHEN v.slot % 2 = 0 THEN '' ELSE '   ' END"}),
    "goal_stale_progress": ("GOL001", {"progress": "25.00"}),
    "goal_not_completed": ("GOL002", {"saved_amount": "b.target", "progress": "100"}),
    "goal_over_saved": ("GOL003", {"saved_amount": "b.target * 1.2", "progress": "100", "status": "'completed'",
                                   "completed_at": "b.updated"}),
    "goal_negative_saved": ("GOL004", {"saved_amount": "-b.minus", "progress": "round(-b.minus / b.target * 100, 2)"}),
    "goal_zero_target": ("GOL005", {"target_amount": "0", "saved_amount": "0", "progress": "0",
                                    "monthly_contribution": "NULL"}),
    "goal_bad_status": ("GOL006", {"status": "(ARRAY['in_progress', 'archived', 'pending', 'done'])[1 + v.slot % 4]"}),
    "goal_updated_before_created": ("TIM002", {"last_updated": "b.created - interval '3 days'"}),
    "goal_completed_before_created": ("TIM004", {"saved_amount": "b.target", "progress": "100",
                                                 "status": "'completed'",
                                                 "completed_at": "b.created - interval '2 days'"}),
    "tx_deleted_goal": ("", {"deleted_at": f"to_timestamp({{now}} - {DAY})"}),
}


def defect_goal_id(run: SeedRun, kind: str, slot: str) -> str:
    """Gives SQL for the id of the defect goal of a kind's victim (slot)."""
    index = [d.name for d in VICTIM_DEFECTS].index(kind)
    return run.h.uuid("goal-defect", str(index), slot)


def add_bad_goals(run: SeedRun) -> None:
    """Adds one goal per victim of each goal defect; every other number of the goal is consistent."""
    now = run.now
    for kind, (code, overrides) in _GOAL_DEFECTS.items():
        columns = {
            "id": defect_goal_id(run, kind, "v.slot"), "user_id": "s.id", "title": "'Emergency fund'",
            "target_amount": "b.target", "saved_amount": "b.saved", "created_at": "b.created",
            "category": "'emergency'", "monthly_contribution": "round(b.target / 12, 2)", "status": "'active'",
            "progress": "round(b.saved / b.target * 100, 2)", "last_updated": "b.updated", "completed_at": "NULL",
            "priority": "'high'", "deleted_at": "NULL",
        }
        columns.update({k: v.replace("{now}", str(now)) for k, v in overrides.items()})
        n = run.insert("goals", f"""
INSERT INTO goals ({', '.join(columns)})
SELECT {', '.join(columns.values())}
  FROM {victims_of(kind)}
 CROSS JOIN LATERAL (
    SELECT {money('1000 * s.scale', 's.whole')} AS target, {money('400 * s.scale', 's.whole')} AS saved,
           {money('50 * s.scale', 's.whole')} AS minus,
           {run.naive(f'{now - 20 * DAY} - v.slot * 3600')} AS created,
           {run.naive(f'{now - 2 * DAY} - v.slot * 60')} AS updated) b""")
        if code:
            run.truth.add(code, n)
