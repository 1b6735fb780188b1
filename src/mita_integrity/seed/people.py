"""Users: a temporary table of per-user parameters (seed_users) that every later stage reads, then users."""

from __future__ import annotations

from .context import DAY, SeedRun
from .hashing import quote, text_array
from .plan import FIRST_NAMES, LAST_NAMES, LOCALES, MAIL_DOMAINS


def _locale_values() -> str:
    rows = []
    for i, loc in enumerate(LOCALES, start=1):
        country = quote(loc.country) if loc.country else "NULL"
        zone = quote(loc.timezone) if loc.timezone else "NULL"
        rows.append(f"({i}, {country}, {quote(loc.currency)}, {zone}, {quote(loc.region)}, "
                    f"{loc.scale!r}::float8, {'true' if loc.whole_units else 'false'})")
    return ",\n".join(rows)


def _locale_by_permille() -> str:
    """Gives a SQL int[] of 1000 locale numbers, each repeated by its weight."""
    slots: list[int] = []
    for i, loc in enumerate(LOCALES, start=1):
        slots += [i] * loc.weight
    slots += [1] * (1000 - len(slots))
    return "ARRAY[" + ",".join(map(str, slots[:1000])) + "]"


def money(amount: str, whole: str) -> str:
    """Gives SQL for a float amount as numeric money: whole units for whole-unit currencies, else cents."""
    return f"(CASE WHEN {whole} THEN round(({amount})::numeric, 0) ELSE round(({amount})::numeric, 2) END)"


def create_seed_users(run: SeedRun) -> None:
    """Creates the temporary table seed_users: one row of parameters per user to be (n = 1..users)."""
    h, days, users = run.h, run.options.days, run.options.users
    run.execute("CREATE TEMP TABLE seed_locales (li int PRIMARY KEY, country text, currency text, zone text, "
                f"region text, scale float8, whole boolean) ON COMMIT DROP; INSERT INTO seed_locales VALUES "
                f"{_locale_values()}")
    run.execute(f"""
CREATE TEMP TABLE seed_users ON COMMIT DROP AS
SELECT x.*, (sum(x.n_tx) OVER (ORDER BY x.n) - x.n_tx)::bigint AS tx_start,
       (x.monthly * 12)::numeric(12,2) AS annual
  FROM (
    SELECT b.*, l.country, l.currency, l.zone, l.region, l.scale, l.whole,
           CASE WHEN b.active THEN greatest(1, floor({days} * b.rate + b.r_round))::int ELSE 0 END AS n_tx,
           CASE WHEN b.onboarded THEN {money('(1500 + 7500 * b.r_income ^ 1.5) * l.scale', 'l.whole')}
                ELSE 0 END AS monthly,
           {money('(CASE WHEN b.onboarded THEN (1500 + 7500 * b.r_income ^ 1.5) * 0.7 / 30 ELSE 40 END) * l.scale',
                  'l.whole')}::numeric(12,2) AS daily_budget,
           CASE WHEN b.r_goals < 0.35 THEN 0 WHEN b.r_goals < 0.75 THEN 1 WHEN b.r_goals < 0.93 THEN 2 ELSE 3 END
             AS goals_n,
           {h.uuid('g', 'b.n * 4 + 1')} AS first_goal_id
      FROM (
        SELECT n::bigint AS n, {h.uuid('u', 'n')} AS id,
               ({_locale_by_permille()})[1 + {h.below('n', 101, 1000)}] AS li,
               {h.unit('n', 102)} < 0.85 AS onboarded,
               {h.unit('n', 103)} >= 0.02 AS active,
               0.35 + 2.7 * {h.unit('n', 104)} AS rate,
               {h.unit('n', 105)} AS r_round,
               {h.unit('n', 106)} AS r_income,
               {h.unit('n', 112)} AS r_goals,
               {h.pick(FIRST_NAMES, 'n', 107)} AS first_name,
               {h.pick(LAST_NAMES, 'n', 108)} AS last_name,
               {h.pick(MAIL_DOMAINS, 'n', 109)} AS domain,
               {h.below('n', 110, 3)} AS style,
               ({run.now - (days + 2) * DAY} - floor({h.unit('n', 111)} * {400 * DAY}))::bigint AS created_epoch,
               {h.bits('n', 113)} AS bits
          FROM generate_series(1, {users}) AS n) b
      JOIN seed_locales l USING (li)) x""")
    run.execute("CREATE UNIQUE INDEX ON seed_users (n); CREATE UNIQUE INDEX ON seed_users (id); ANALYZE seed_users")


def insert_users(run: SeedRun) -> None:
    """Inserts one users row per seed_users row (emails unique and lower-case, onboarding ~85 %)."""
    now = run.now
    methods = text_array(("50/30/20 Rule", "50/30/20 Rule", "50/30/20 Rule", "Zero-Based", "Envelope"))
    run.insert("users", f"""
INSERT INTO users (id, email, password_hash, country, annual_income, is_premium, created_at, premium_until,
                   password_reset_token, password_reset_expires, password_reset_attempts, email_verified,
                   email_verification_token, email_verification_expires, name, savings_goal, budget_method,
                   currency, region, notifications_enabled, dark_mode_enabled, monthly_income, has_onboarded,
                   timezone, failed_login_attempts, account_locked_until, updated_at, token_version)
SELECT s.id,
       CASE s.style WHEN 0 THEN s.first_name || '.' || s.last_name
                    WHEN 1 THEN s.first_name || s.last_name
                    ELSE left(s.first_name, 1) || s.last_name END || s.n || '@' || s.domain,
       '$2b$12$' || left(translate(encode(sha512(('{run.options.seed}:pw:' || s.n)::bytea), 'base64'),
                                   E'+=\\n', '.'), 53),
       s.country,
       CASE WHEN s.onboarded THEN s.annual END,
       (s.bits & 15) < 3,
       to_timestamp(s.created_epoch),
       CASE WHEN (s.bits & 15) < 3 THEN to_timestamp({now} + ((s.bits >> 4) & 255) * {DAY}) AT TIME ZONE 'UTC' END,
       NULL, NULL, 0,
       ((s.bits >> 12) & 15) > 0,
       CASE WHEN ((s.bits >> 12) & 15) = 0 THEN md5('{run.options.seed}:verify:' || s.n) END,
       CASE WHEN ((s.bits >> 12) & 15) = 0 THEN to_timestamp(s.created_epoch + {DAY}) END,
       initcap(s.first_name) || ' ' || initcap(s.last_name),
       coalesce(CASE WHEN s.onboarded THEN round(s.monthly * 0.1, 2) END, 0),
       ({methods})[1 + ((s.bits >> 16) & 65535) % 5],
       s.currency, s.region,
       ((s.bits >> 32) & 7) > 0,
       ((s.bits >> 35) & 3) = 0,
       s.monthly, s.onboarded, s.zone,
       CASE WHEN ((s.bits >> 37) & 31) = 0 THEN 1 ELSE 0 END,
       NULL,
       to_timestamp(least({now}, s.created_epoch + ((s.bits >> 42) & 1023) * 3600)),
       1 + ((s.bits >> 52) & 3)
  FROM seed_users s
 ORDER BY s.n""")

