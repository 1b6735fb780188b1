"""Alerts of recorded checks: Slack, e-mail, Sentry and a generic webhook, routed by severity.

`load_config(os.environ, path)` validates the targets at start-up; `deliver_due(db, config, report,
database=…)` tells each channel what is due to it since it was last told (outbox.py: at least once per
channel) and gives one `Delivery` per channel tried; `deliver(config, delta, report, database=…)` sends one
`Delta` (history.py) as it is. Nothing here raises for a failed channel, and no alert carries a password or
an e-mail address of a user.

May import: report, runs, database, findings, wording.
"""

from __future__ import annotations

from .alert import Alert
from .config import CHANNELS, DEFAULT_ROUTING, KEYS, AlertConfig, load_config
from .dispatch import Delivery, deliver, failure_alerts, plan, send_all
from .outbox import deliver_due

__all__ = ["CHANNELS", "DEFAULT_ROUTING", "KEYS", "Alert", "AlertConfig", "Delivery", "deliver", "deliver_due",
           "failure_alerts", "load_config", "plan", "send_all"]
