"""Masks e-mail addresses in whatever a report prints, as a last line of defence.

Rules sample primary keys, never personal data; but a duplicate rule's sample, a message or a
PostgreSQL error text (a unique violation's DETAIL quotes the offending value) can still carry an
address. Every renderer passes the report through `masked_report` first, so no format can leak one.
"""

from __future__ import annotations

import dataclasses
import re

from ..findings import Report, Result

# The local part must end right before "@": an already-masked "j***@x.com" does not match again, and
# neither does the "user:***@host" of a masked database URL.
_EMAIL = re.compile(r"(?<![\w.%+-])([A-Za-z0-9_%+-])[A-Za-z0-9._%+-]*@((?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,})")


def mask_email(text: str) -> str:
    """Gives `text` with every e-mail address shown as its first letter, `***` and its domain."""
    return _EMAIL.sub(r"\1***@\2", text)


def masked_result(result: Result) -> Result:
    """Gives the result with e-mail addresses masked in its sample, message, reason and hint."""
    return dataclasses.replace(
        result,
        sample=tuple(mask_email(str(key)) for key in result.sample),
        message=mask_email(result.message),
        reason=mask_email(result.reason) if result.reason is not None else None,
        hint=mask_email(result.hint),
    )


def masked_report(report: Report) -> Report:
    """Gives the report with every result masked (see `masked_result`)."""
    return dataclasses.replace(report, results=tuple(masked_result(r) for r in report.results))
