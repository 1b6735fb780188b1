"""Users and what hangs directly off a user's account: financial profile, onboarding answers, push tokens."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from .base import NOW, PRECISION_COMMENT, TZ, Base


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        Index("idx_users_password_reset_token", "password_reset_token"),
        Index("idx_users_email_verification_token", "email_verification_token"),
        Index("idx_users_email_verified", "email_verified"),
        Index("idx_users_currency", "currency"),
        Index("idx_users_region", "region"),
        Index("idx_users_has_onboarded", "has_onboarded"),
        Index("idx_users_updated_at", "updated_at"),
        Index("idx_users_token_version", "token_version"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    email: Mapped[str] = mapped_column(String, unique=True)
    password_hash: Mapped[str] = mapped_column(String)
    country: Mapped[str | None] = mapped_column(String(2))
    annual_income: Mapped[Decimal | None] = mapped_column(Numeric(12, 2), comment=PRECISION_COMMENT)
    is_premium: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[dt.datetime | None] = mapped_column(TZ)
    premium_until: Mapped[dt.datetime | None] = mapped_column(DateTime)
    password_reset_token: Mapped[str | None] = mapped_column(String)
    password_reset_expires: Mapped[dt.datetime | None] = mapped_column(TZ)
    password_reset_attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    email_verified: Mapped[bool] = mapped_column(Boolean, server_default="false")
    email_verification_token: Mapped[str | None] = mapped_column(String)
    email_verification_expires: Mapped[dt.datetime | None] = mapped_column(TZ)
    name: Mapped[str | None] = mapped_column(String)
    savings_goal: Mapped[Decimal] = mapped_column(Numeric, server_default="0")
    budget_method: Mapped[str] = mapped_column(String, server_default="50/30/20 Rule")
    currency: Mapped[str] = mapped_column(String(3), server_default="USD")
    region: Mapped[str | None] = mapped_column(String)
    notifications_enabled: Mapped[bool] = mapped_column(Boolean, server_default="true")
    dark_mode_enabled: Mapped[bool] = mapped_column(Boolean, server_default="false")
    monthly_income: Mapped[Decimal | None] = mapped_column(Numeric, server_default=text("0"))
    has_onboarded: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    timezone: Mapped[str | None] = mapped_column(String)
    failed_login_attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    account_locked_until: Mapped[dt.datetime | None] = mapped_column(TZ)
    updated_at: Mapped[dt.datetime] = mapped_column(TZ, server_default=NOW)
    token_version: Mapped[int] = mapped_column(Integer, server_default="1")


class UserFinancialProfile(Base):
    __tablename__ = "user_financial_profiles"
    # A unique constraint plus a separate plain index, as production has both.
    __table_args__ = (UniqueConstraint("user_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    monthly_income: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    current_balance: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    age_group: Mapped[str] = mapped_column(String(10), server_default="25-34")
    credit_card_debt: Mapped[bool] = mapped_column(Boolean, server_default="false")
    credit_card_payment: Mapped[Decimal] = mapped_column(Numeric(12, 2), server_default="0")
    other_loans_payment: Mapped[Decimal] = mapped_column(Numeric(12, 2), server_default="0")
    rent_payment: Mapped[Decimal] = mapped_column(Numeric(12, 2), server_default="0")
    subscriptions_payment: Mapped[Decimal] = mapped_column(Numeric(12, 2), server_default="0")
    planning_mortgage: Mapped[bool] = mapped_column(Boolean, server_default="false")
    updated_at: Mapped[dt.datetime | None] = mapped_column(TZ, server_default=NOW)


class UserAnswer(Base):
    """An onboarding answer; user_id is a varchar here, so no foreign key can hold it."""

    __tablename__ = "user_answers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[str] = mapped_column(String)
    question_key: Mapped[str] = mapped_column(String)
    answer_json: Mapped[str | None] = mapped_column(String)


class UserProfile(Base):
    """A free-form profile; user_id is a varchar, unique, without a foreign key."""

    __tablename__ = "user_profiles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[str] = mapped_column(String, unique=True)
    data: Mapped[str | None] = mapped_column(String)


class PushToken(Base):
    __tablename__ = "push_tokens"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    token: Mapped[str] = mapped_column(String, unique=True)
    created_at: Mapped[dt.datetime | None] = mapped_column(DateTime, server_default=NOW)
    platform: Mapped[str] = mapped_column(String)
