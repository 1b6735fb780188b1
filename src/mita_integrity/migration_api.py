"""The stable, versioned API that the files `migrate export` writes into an application's chain
import (`from mita_integrity import migration_api`). It lives in `mita_integrity.migration.api`;
this name stays because files exported into applications' repositories name it.

May import: migration.
"""

from __future__ import annotations

from .migration.api import API_VERSION, downgrade, require, upgrade

__all__ = ["API_VERSION", "require", "upgrade", "downgrade"]
