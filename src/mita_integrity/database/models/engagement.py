"""Engagement: habits and their completions, moods, challenges, notifications and the AI's outputs."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, Boolean, Date, DateTime, ForeignKey, Index, Integer, String, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from .base import CURRENT_TIMESTAMP, NOW, TZ, Base


class Habit(Base):
    __tablename__ = "habits"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    title: Mapped[str] = mapped_column(String)
    description: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class HabitCompletion(Base):
    __tablename__ = "habit_completions"
    __table_args__ = (Index("ix_habit_completions_user_date", "user_id", "completed_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, server_default=text("gen_random_uuid()"))
    habit_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("habits.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    completed_at: Mapped[dt.datetime] = mapped_column(TZ, server_default=NOW, index=True)
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(TZ, server_default=NOW)


class Mood(Base):
    __tablename__ = "moods"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    date: Mapped[dt.date] = mapped_column(Date, index=True)
    mood: Mapped[str] = mapped_column(String)


class Challenge(Base):
    __tablename__ = "challenges"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(50))
    duration_days: Mapped[int] = mapped_column(Integer)
    reward_points: Mapped[int | None] = mapped_column(Integer)
    difficulty: Mapped[str] = mapped_column(String(20))
    start_month: Mapped[str] = mapped_column(String(7))
    end_month: Mapped[str] = mapped_column(String(7))
    created_at: Mapped[dt.datetime | None] = mapped_column(TZ, server_default=CURRENT_TIMESTAMP)
    updated_at: Mapped[dt.datetime | None] = mapped_column(TZ, server_default=CURRENT_TIMESTAMP)


class ChallengeParticipation(Base):
    __tablename__ = "challenge_participations"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    challenge_id: Mapped[str] = mapped_column(
        String, ForeignKey("challenges.id", ondelete="CASCADE"), index=True
    )
    month: Mapped[str] = mapped_column(String(7), index=True)
    status: Mapped[str | None] = mapped_column(String(20), index=True)
    progress_percentage: Mapped[int | None] = mapped_column(Integer)
    days_completed: Mapped[int | None] = mapped_column(Integer)
    current_streak: Mapped[int | None] = mapped_column(Integer)
    best_streak: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[dt.datetime | None] = mapped_column(TZ, server_default=CURRENT_TIMESTAMP)
    completed_at: Mapped[dt.datetime | None] = mapped_column(TZ)
    last_updated: Mapped[dt.datetime | None] = mapped_column(TZ, server_default=CURRENT_TIMESTAMP)


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_user_id_is_read_created_at", "user_id", "is_read", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(50), server_default="info")
    priority: Mapped[str] = mapped_column(String(20), server_default="medium")
    image_url: Mapped[str | None] = mapped_column(String(500))
    action_url: Mapped[str | None] = mapped_column(String(500))
    data: Mapped[Any | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), server_default="pending")
    channel: Mapped[str | None] = mapped_column(String(20))
    is_read: Mapped[bool] = mapped_column(Boolean, server_default="false", index=True)
    read_at: Mapped[dt.datetime | None] = mapped_column(TZ)
    scheduled_for: Mapped[dt.datetime | None] = mapped_column(TZ, index=True)
    sent_at: Mapped[dt.datetime | None] = mapped_column(TZ)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(TZ)
    error_message: Mapped[str | None] = mapped_column(Text)
    # A varchar, not an integer: so production has it.
    retry_count: Mapped[str] = mapped_column(String, server_default="0")
    created_at: Mapped[dt.datetime | None] = mapped_column(TZ, server_default=NOW, index=True)
    updated_at: Mapped[dt.datetime | None] = mapped_column(TZ, server_default=NOW)
    expires_at: Mapped[dt.datetime | None] = mapped_column(TZ)
    category: Mapped[str | None] = mapped_column(String(50))
    group_key: Mapped[str | None] = mapped_column(String(100), index=True)


class AiAnalysisSnapshot(Base):
    __tablename__ = "ai_analysis_snapshots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id"))
    rating: Mapped[str | None] = mapped_column(String)
    risk: Mapped[str | None] = mapped_column(String)
    summary: Mapped[str | None] = mapped_column(String)
    full_profile: Mapped[Any | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime | None] = mapped_column(DateTime, server_default=NOW)


class AiAdviceTemplate(Base):
    __tablename__ = "ai_advice_templates"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    # A unique index (not a constraint), as production has it.
    key: Mapped[str] = mapped_column(String, unique=True, index=True)
    text: Mapped[str] = mapped_column(String)
