"""Append-only logs: feature usage and access, paywall impressions, delivered notifications."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from .base import TZ, Base


class FeatureUsageLog(Base):
    __tablename__ = "feature_usage_logs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    # NO ACTION: deleting a user with log rows fails (0026 turns these into CASCADE).
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id"), index=True)
    feature: Mapped[str] = mapped_column(String(100), index=True)
    screen: Mapped[str | None] = mapped_column(String(100), index=True)
    action: Mapped[str | None] = mapped_column(String(100))
    extra_data: Mapped[Any | None] = mapped_column(JSON)
    session_id: Mapped[str | None] = mapped_column(String(100), index=True)
    platform: Mapped[str | None] = mapped_column(String(20))
    app_version: Mapped[str | None] = mapped_column(String(20))
    timestamp: Mapped[dt.datetime | None] = mapped_column(TZ, index=True)


class FeatureAccessLog(Base):
    __tablename__ = "feature_access_logs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id"), index=True)
    feature: Mapped[str] = mapped_column(String(100), index=True)
    has_access: Mapped[bool] = mapped_column(Boolean)
    is_premium_feature: Mapped[bool] = mapped_column(Boolean)
    converted_to_premium: Mapped[bool | None] = mapped_column(Boolean)
    converted_at: Mapped[dt.datetime | None] = mapped_column(TZ)
    screen: Mapped[str | None] = mapped_column(String(100))
    extra_data: Mapped[Any | None] = mapped_column(JSON)
    timestamp: Mapped[dt.datetime | None] = mapped_column(TZ, index=True)


class PaywallImpressionLog(Base):
    __tablename__ = "paywall_impression_logs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id"), index=True)
    screen: Mapped[str] = mapped_column(String(100), index=True)
    feature: Mapped[str | None] = mapped_column(String(100))
    resulted_in_purchase: Mapped[bool | None] = mapped_column(Boolean)
    purchase_timestamp: Mapped[dt.datetime | None] = mapped_column(TZ)
    impression_context: Mapped[str | None] = mapped_column(String(200))
    extra_data: Mapped[Any | None] = mapped_column(JSON)
    timestamp: Mapped[dt.datetime | None] = mapped_column(TZ, index=True)


class NotificationLog(Base):
    __tablename__ = "notification_logs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    channel: Mapped[str] = mapped_column(String)
    message: Mapped[str] = mapped_column(String)
    success: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[dt.datetime | None] = mapped_column(TZ)
