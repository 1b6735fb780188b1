"""mita-integrity: the data-integrity system for the MITA PostgreSQL database."""

from __future__ import annotations

__version__ = "0.1.0"
