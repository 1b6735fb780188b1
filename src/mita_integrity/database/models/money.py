"""Money: transactions, goals, the daily plan, subscriptions, the legacy expenses and budget advice."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ARRAY,
    Boolean,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from .base import CURRENT_TIMESTAMP, NOW, PRECISION_COMMENT, TZ, Base

_LIVE = text("deleted_at IS NULL")


class Transaction(Base):
    """A spend; amount is unbounded numeric and spent_at nullable, exactly as production has them."""

    __tablename__ = "transactions"
    __table_args__ = (
        Index("ix_transactions_user_id_spent_at", "user_id", "spent_at"),
        Index("idx_transactions_merchant", "merchant"),
        Index("idx_transactions_is_recurring", "is_recurring"),
        Index("idx_transactions_updated_at", "updated_at"),
        Index("idx_transactions_deleted_at", "deleted_at", postgresql_where=_LIVE),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    # No FK to users before 0026.
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    category: Mapped[str] = mapped_column(String)
    amount: Mapped[Decimal] = mapped_column(Numeric)
    currency: Mapped[str | None] = mapped_column(String(3))
    spent_at: Mapped[dt.datetime | None] = mapped_column(TZ, index=True)
    created_at: Mapped[dt.datetime | None] = mapped_column(TZ)
    merchant: Mapped[str | None] = mapped_column(String(200))
    location: Mapped[str | None] = mapped_column(String(200))
    tags: Mapped[list[str] | None] = mapped_column(ARRAY(String))
    is_recurring: Mapped[bool] = mapped_column(Boolean, server_default="false")
    confidence_score: Mapped[float | None] = mapped_column(Double)
    receipt_url: Mapped[str | None] = mapped_column(String(500))
    notes: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(TZ, server_default=NOW)
    goal_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("goals.id", ondelete="SET NULL", name="fk_transactions_goal_id"), index=True
    )
    deleted_at: Mapped[dt.datetime | None] = mapped_column(TZ)


class Goal(Base):
    """A savings goal; numeric(10,2) amounts and naive timestamps (the comments outlived 0006's (12,2))."""

    __tablename__ = "goals"
    __table_args__ = (Index("idx_goals_deleted_at", "deleted_at", postgresql_where=_LIVE),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE", name="fk_goals_user_id"), index=True
    )
    title: Mapped[str] = mapped_column(String(200))
    target_amount: Mapped[Decimal] = mapped_column(Numeric(10, 2), comment=PRECISION_COMMENT)
    saved_amount: Mapped[Decimal] = mapped_column(
        Numeric(10, 2), server_default="0", comment=PRECISION_COMMENT
    )
    created_at: Mapped[dt.datetime | None] = mapped_column(DateTime, server_default=NOW)
    description: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(50), index=True)
    monthly_contribution: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    status: Mapped[str] = mapped_column(String(20), server_default="active", index=True)
    progress: Mapped[Decimal] = mapped_column(Numeric(5, 2), server_default="0")
    target_date: Mapped[dt.date | None] = mapped_column(Date)
    last_updated: Mapped[dt.datetime] = mapped_column(DateTime, server_default=NOW)
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    priority: Mapped[str | None] = mapped_column(String(10), server_default="medium")
    deleted_at: Mapped[dt.datetime | None] = mapped_column(TZ)


class DailyPlan(Base):
    """One row per (user, day, category) by convention only: no FK and no unique key before 0022/0023."""

    __tablename__ = "daily_plan"
    __table_args__ = (
        Index("idx_daily_plan_category", "category"),
        Index("idx_daily_plan_user_date_category", "user_id", "date", "category"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, server_default=text("gen_random_uuid()"))
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    date: Mapped[dt.datetime] = mapped_column(TZ, index=True)
    plan_json: Mapped[Any | None] = mapped_column(JSONB)
    created_at: Mapped[dt.datetime | None] = mapped_column(TZ, server_default=CURRENT_TIMESTAMP)
    category: Mapped[str | None] = mapped_column(String(100))
    planned_amount: Mapped[Decimal | None] = mapped_column(Numeric(12, 2), server_default=text("0.00"))
    spent_amount: Mapped[Decimal | None] = mapped_column(Numeric(12, 2), server_default=text("0.00"))
    daily_budget: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    status: Mapped[str | None] = mapped_column(String(20), server_default="green")


class Subscription(Base):
    __tablename__ = "subscriptions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    platform: Mapped[str] = mapped_column(String)
    receipt: Mapped[Any] = mapped_column(JSONB)
    status: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[dt.datetime | None] = mapped_column(TZ)
    plan: Mapped[str | None] = mapped_column(String)
    starts_at: Mapped[dt.datetime | None] = mapped_column(TZ)
    expires_at: Mapped[dt.datetime | None] = mapped_column(TZ)


class Expense(Base):
    """The legacy expense log; user_id is a varchar, so no foreign key can hold it."""

    __tablename__ = "expenses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, index=True)
    user_id: Mapped[str] = mapped_column(String, index=True)
    action: Mapped[str] = mapped_column(String)
    amount: Mapped[float] = mapped_column(Double)
    date: Mapped[dt.date] = mapped_column(Date)


class BudgetAdvice(Base):
    __tablename__ = "budget_advice"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    date: Mapped[dt.datetime | None] = mapped_column(TZ, index=True)
    type: Mapped[str] = mapped_column(String)
    text: Mapped[str] = mapped_column(String)
