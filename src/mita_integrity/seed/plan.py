"""What the seed makes: the MITA tables, the people and spending it draws from, and the defect sizes."""

from __future__ import annotations

from dataclasses import dataclass

# Every table of the baseline schema (children first, so TRUNCATE order is obvious to a reader).
MITA_TABLES: tuple[str, ...] = (
    "habit_completions", "user_profiles", "user_answers", "notification_logs", "expenses", "budget_advice",
    "ai_advice_templates", "installment_achievements", "installment_calculations",
    "user_financial_profiles", "notifications", "paywall_impression_logs", "feature_access_logs",
    "feature_usage_logs", "challenge_participations", "push_tokens", "moods", "ai_analysis_snapshots",
    "subscriptions", "daily_plan", "transactions", "installments", "habits", "goals", "challenges", "users",
)

MAX_USERS = 2_000_000
MAX_DAYS = 3650
MAX_TRANSACTIONS = 120_000_000  # users × days × 1.7 on average: 2,000,000 users over 30 days fit
TRANSACTIONS_PER_USER_DAY = 1.7
MIN_CORRUPT_USERS = 10
SEED_RANGE = (-(2**31), 2**31 - 1)


@dataclass(frozen=True)
class Locale:
    """Where a user lives: what their money and clock look like."""

    country: str | None
    currency: str
    timezone: str | None
    region: str
    scale: float  # prices relative to USD
    whole_units: bool  # the currency has no minor unit in practice (JPY)
    weight: int  # users per 1000


LOCALES: tuple[Locale, ...] = (
    Locale("US", "USD", "America/New_York", "North America", 1.0, False, 150),
    Locale("US", "USD", "America/Los_Angeles", "North America", 1.0, False, 80),
    Locale("US", "USD", "America/Chicago", "North America", 1.0, False, 60),
    Locale("US", "USD", None, "North America", 1.0, False, 40),
    Locale("GB", "GBP", "Europe/London", "Europe", 0.8, False, 90),
    Locale("DE", "EUR", "Europe/Berlin", "Europe", 0.9, False, 70),
    Locale("FR", "EUR", "Europe/Paris", "Europe", 0.9, False, 45),
    Locale("ES", "EUR", "Europe/Madrid", "Europe", 0.9, False, 35),
    Locale("NL", "EUR", None, "Europe", 0.9, False, 20),
    Locale("BG", "BGN", "Europe/Sofia", "Europe", 1.8, False, 90),
    Locale("PL", "PLN", "Europe/Warsaw", "Europe", 4.0, False, 30),
    Locale("CA", "CAD", "America/Toronto", "North America", 1.35, False, 50),
    Locale("AU", "AUD", "Australia/Sydney", "Oceania", 1.5, False, 40),
    Locale("JP", "JPY", "Asia/Tokyo", "Asia", 150.0, True, 35),
    Locale("IN", "INR", "Asia/Kolkata", "Asia", 40.0, False, 40),
    Locale("BR", "BRL", "America/Sao_Paulo", "South America", 5.0, False, 30),
    Locale("MX", "MXN", "America/Mexico_City", "North America", 17.0, False, 20),
    Locale("SG", "SGD", "Asia/Singapore", "Asia", 1.35, False, 15),
    Locale("CH", "CHF", "Europe/Zurich", "Europe", 0.9, False, 15),
    Locale("SE", "SEK", "Europe/Stockholm", "Europe", 10.0, False, 15),
    Locale(None, "USD", "UTC", "Other", 1.0, False, 30),
    Locale(None, "EUR", None, "Other", 0.9, False, 10),
)


@dataclass(frozen=True)
class Category:
    """A spending category: how often it occurs, its price range in USD, its share of the daily budget."""

    name: str
    weight: int  # transactions per 1000
    low: float
    high: float
    budget_share: float
    merchants: tuple[str, ...]


CATEGORIES: tuple[Category, ...] = (
    Category("food", 280, 3, 40, 0.22, ("Starbucks", "McDonald's", "Subway", "Chipotle", "Local Cafe", "KFC")),
    Category("groceries", 200, 8, 150, 0.25, ("Walmart", "Tesco", "Lidl", "Kaufland", "Aldi", "Carrefour")),
    Category("transport", 150, 2, 60, 0.12, ("Uber", "Bolt", "Shell", "Metro", "BP", "Lyft")),
    Category("entertainment", 90, 8, 120, 0.08, ("Netflix", "Spotify", "Cinema City", "Steam", "Ticketmaster")),
    Category("shopping", 110, 10, 250, 0.12, ("Amazon", "IKEA", "Zara", "H&M", "eBay", "Decathlon")),
    Category("utilities", 50, 50, 300, 0.10, ("City Power", "Water Works", "Vodafone", "Comcast", "AT&T")),
    Category("health", 50, 10, 200, 0.05, ("CVS Pharmacy", "Walgreens", "Dental Clinic", "City Gym")),
    Category("savings", 60, 20, 300, 0.06, ("",)),
    Category("income", 10, 200, 4000, 0.0, ("Payroll", "Freelance client", "Tax refund")),
)
# The first transaction of every active user is an everyday purchase in one of these (never income).
EVERYDAY = 3
# Planned-but-unspent calendar rows: tomorrow, for these categories, for onboarded users.
PLANNED_AHEAD = ("food", "groceries", "transport")
# A calendar row plans a category's share of the daily budget times this: rows exist mostly for days with
# spending, which are bigger than the average day (about a third of rows end up overspent: CAL002).
PLAN_HEADROOM = 4

FIRST_NAMES = ("james", "mary", "john", "patricia", "robert", "jennifer", "michael", "linda", "david",
               "elena", "ivan", "maria", "georgi", "nadia", "peter", "anna", "lukas", "sofia", "hiro",
               "yuki", "arjun", "priya", "lucas", "camila", "noah", "emma", "oliver", "mia", "dimitar",
               "viktoria", "tom", "lena", "carlos", "ana", "wei", "li", "omar", "sara", "jan", "eva")
LAST_NAMES = ("smith", "johnson", "brown", "garcia", "miller", "davis", "ivanov", "petrova", "georgiev",
              "dimitrova", "mueller", "schmidt", "tanaka", "sato", "sharma", "patel", "silva", "santos",
              "martin", "bernard", "nowak", "kowalska", "wilson", "taylor", "lopez", "gonzalez", "kim",
              "nguyen", "rossi", "bianchi", "jensen", "larsen", "novak", "horvat", "popescu", "young")
MAIL_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "proton.me", "abv.bg", "gmx.de",
                "hotmail.co.uk", "mail.com", "yandex.com")


@dataclass(frozen=True)
class Defect:
    """One kind of injected defect: which users it lands on and how many (scaling mildly with users)."""

    name: str
    lane: str  # which users qualify: any, onboarded, active (has transactions), plan (active, exclusive)
    minimum: int
    divisor: int

    def size(self, users: int) -> int:
        """Gives how many of this defect a seed of `users` users injects."""
        return max(self.minimum, users // self.divisor)


# Defects that land on existing users. Within a lane victims are spread over distinct users; the plan
# lane never reuses a user, because two calendar defects on one (user, day, category) would blur counts.
VICTIM_DEFECTS: tuple[Defect, ...] = (
    Defect("no_monthly_income", "onboarded", 1, 800),
    Defect("no_annual_income", "onboarded", 1, 1200),
    Defect("duplicate_email", "any", 2, 1000),
    Defect("goal_blank_title", "any", 1, 1500),
    Defect("goal_stale_progress", "any", 1, 700),
    Defect("goal_not_completed", "any", 1, 1200),
    Defect("goal_over_saved", "any", 1, 1000),
    Defect("goal_negative_saved", "any", 1, 1800),
    Defect("goal_zero_target", "any", 1, 1500),
    Defect("goal_bad_status", "any", 1, 1300),
    Defect("goal_updated_before_created", "any", 1, 1100),
    Defect("goal_completed_before_created", "any", 1, 1700),
    Defect("tx_deleted_goal", "active", 1, 1600),
    Defect("tx_blank_category", "active", 1, 1500),
    Defect("tx_no_spent_at", "active", 1, 1000),
    Defect("tx_duplicate", "active", 2, 700),
    Defect("tx_updated_before_created", "active", 1, 900),
    Defect("tx_future", "active", 1, 1100),
    Defect("tx_deleted_before_created", "active", 1, 1300),
    Defect("tx_bad_currency", "active", 1, 1000),
    Defect("tx_zero", "active", 1, 1400),
    Defect("tx_negative", "active", 1, 900),
    Defect("tx_huge", "active", 1, 2000),
    Defect("plan_drift", "plan", 1, 600),
    Defect("plan_missing", "plan", 1, 900),
    Defect("plan_negative_planned", "plan", 1, 1500),
    Defect("plan_negative_spent", "plan", 1, 1300),
    Defect("plan_time_of_day", "plan", 1, 1000),
    Defect("plan_resubmitted", "plan", 1, 800),
    Defect("plan_time_duplicate", "plan", 1, 1000),
    Defect("plan_null_category", "plan", 1, 1500),
)
LANES = ("any", "onboarded", "active", "plan")

# Defects that bring rows of their own (no victim): new users, and rows of users who do not exist.
BLANK_EMAILS = Defect("blank_email", "none", 1, 2500)
ORPHAN_TX_USERS = Defect("orphan_transactions", "none", 1, 2000)  # three transactions each
ORPHAN_PLAN_USERS = Defect("orphan_plan", "none", 1, 1000)  # three calendar rows each
ORPHAN_ROWS: tuple[tuple[str, str, Defect], ...] = (
    ("REF004", "subscriptions", Defect("orphan_subscriptions", "none", 1, 1500)),
    ("REF005", "habits", Defect("orphan_habits", "none", 1, 1200)),
    ("REF010", "moods", Defect("orphan_moods", "none", 1, 900)),
    ("REF010", "push_tokens", Defect("orphan_push_tokens", "none", 1, 1400)),
    ("REF010", "budget_advice", Defect("orphan_budget_advice", "none", 1, 1100)),
    ("REF010", "notification_logs", Defect("orphan_notification_logs", "none", 1, 1000)),
    ("REF011", "expenses", Defect("bad_expense_user", "none", 2, 800)),
    ("REF011", "user_answers", Defect("bad_answer_user", "none", 2, 1200)),
    ("REF011", "user_profiles", Defect("bad_profile_user", "none", 2, 1000)),
)
# Text user ids that are not UUIDs, as the legacy endpoints wrote them.
NOT_UUIDS = ("", "abc", "42", "undefined", "null", "None", "user_123", "me")
# Currency values that are not ISO 4217 codes (old, colloquial or symbols).
BAD_CURRENCIES = ("RMB", "UKP", "NIS", "BGL", "US", "€", "XYZ")
