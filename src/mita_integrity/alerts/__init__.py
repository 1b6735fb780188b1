"""Alerts of recorded checks: Slack, e-mail, Sentry and a generic webhook, routed by severity.

`load_config(os.environ, path)` validates the targets at start-up; `deliver(config, delta, report,
database=…)` sends what the run's `Delta` (history.py) makes worth saying and gives one `Delivery` per
channel tried. Nothing here raises for a failed channel, and no alert carries a password or an e-mail
address of a user.
"""

from __future__ import annotations

from .config import CHANNELS, DEFAULT_ROUTING, KEYS, AlertConfig, load_config
from .dispatch import Alert, Delivery, deliver, plan

__all__ = ["CHANNELS", "DEFAULT_ROUTING", "KEYS", "Alert", "AlertConfig", "Delivery", "deliver", "load_config",
           "plan"]
