"""SQLAlchemy models of the MITA schema at the baseline (revision 0021_add_habit_completions).

They describe the database as it is, defects included (varchar user_ids, NO ACTION foreign keys,
no FK on daily_plan); the migrations change the database, and these models follow them. Alembic's
environment compares the database with `metadata`. Not expressible here, and so only in the baseline
migration: the `update_updated_at_column()` trigger function and its two triggers.
"""

from __future__ import annotations

from .base import NAMING_CONVENTION, Base
from .engagement import (
    AiAdviceTemplate,
    AiAnalysisSnapshot,
    Challenge,
    ChallengeParticipation,
    Habit,
    HabitCompletion,
    Mood,
    Notification,
)
from .installments import Installment, InstallmentAchievement, InstallmentCalculation
from .logs import FeatureAccessLog, FeatureUsageLog, NotificationLog, PaywallImpressionLog
from .money import BudgetAdvice, DailyPlan, Expense, Goal, Subscription, Transaction
from .users import PushToken, User, UserAnswer, UserFinancialProfile, UserProfile

metadata = Base.metadata

__all__ = [
    "NAMING_CONVENTION",
    "AiAdviceTemplate",
    "AiAnalysisSnapshot",
    "Base",
    "BudgetAdvice",
    "Challenge",
    "ChallengeParticipation",
    "DailyPlan",
    "Expense",
    "FeatureAccessLog",
    "FeatureUsageLog",
    "Goal",
    "Habit",
    "HabitCompletion",
    "Installment",
    "InstallmentAchievement",
    "InstallmentCalculation",
    "Mood",
    "Notification",
    "NotificationLog",
    "PaywallImpressionLog",
    "PushToken",
    "Subscription",
    "Transaction",
    "User",
    "UserAnswer",
    "UserFinancialProfile",
    "UserProfile",
    "metadata",
]
