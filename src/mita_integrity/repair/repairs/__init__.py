"""Repairs: for every rule where one is sound, how its violations are mended — archived first."""

from .base import BatchOutcome, Repair, RepairContext
from .repair_registry import ORDER, REPAIRS, order_key

__all__ = ["ORDER", "REPAIRS", "BatchOutcome", "Repair", "RepairContext", "order_key"]
