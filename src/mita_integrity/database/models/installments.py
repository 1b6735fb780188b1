"""Buy-now-pay-later: installments, the calculator's history, and the achievements built on them."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from sqlalchemy import Boolean, ForeignKey, Index, Integer, Numeric, String, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from .base import NOW, TZ, Base


class Installment(Base):
    __tablename__ = "installments"
    __table_args__ = (
        Index("idx_installments_deleted_at", "deleted_at", postgresql_where=text("deleted_at IS NULL")),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    item_name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(50), server_default="other")
    total_amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    payment_amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    interest_rate: Mapped[Decimal] = mapped_column(Numeric(5, 2), server_default="0")
    total_payments: Mapped[int] = mapped_column(Integer)
    payments_made: Mapped[int] = mapped_column(Integer, server_default="0")
    payment_frequency: Mapped[str] = mapped_column(String(20), server_default="monthly")
    first_payment_date: Mapped[dt.datetime] = mapped_column(TZ)
    next_payment_date: Mapped[dt.datetime] = mapped_column(TZ)
    final_payment_date: Mapped[dt.datetime] = mapped_column(TZ)
    status: Mapped[str] = mapped_column(String(20), server_default="active")
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime | None] = mapped_column(TZ, server_default=NOW, index=True)
    updated_at: Mapped[dt.datetime | None] = mapped_column(TZ, server_default=NOW)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(TZ)


class InstallmentCalculation(Base):
    __tablename__ = "installment_calculations"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    installment_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("installments.id", ondelete="SET NULL"), index=True
    )
    purchase_amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    category: Mapped[str] = mapped_column(String(50))
    num_payments: Mapped[int] = mapped_column(Integer)
    interest_rate: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    monthly_payment: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    total_interest: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    risk_level: Mapped[str] = mapped_column(String(10))
    dti_ratio: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    payment_to_income_ratio: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    remaining_balance: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    risk_factors: Mapped[str | None] = mapped_column(Text)
    user_proceeded: Mapped[bool] = mapped_column(Boolean, server_default="false")
    calculated_at: Mapped[dt.datetime | None] = mapped_column(TZ, server_default=NOW, index=True)


class InstallmentAchievement(Base):
    __tablename__ = "installment_achievements"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    installments_completed: Mapped[int] = mapped_column(Integer, server_default="0")
    calculations_performed: Mapped[int] = mapped_column(Integer, server_default="0")
    calculations_declined: Mapped[int] = mapped_column(Integer, server_default="0")
    days_without_new_installment: Mapped[int] = mapped_column(Integer, server_default="0")
    max_days_streak: Mapped[int] = mapped_column(Integer, server_default="0")
    interest_saved: Mapped[Decimal] = mapped_column(Numeric(12, 2), server_default="0")
    achievement_level: Mapped[str] = mapped_column(String(20), server_default="beginner")
    last_calculation_date: Mapped[dt.datetime | None] = mapped_column(TZ)
    updated_at: Mapped[dt.datetime | None] = mapped_column(TZ, server_default=NOW)
