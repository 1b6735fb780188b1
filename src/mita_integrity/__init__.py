"""mita-integrity: the data-integrity system for the MITA PostgreSQL database.

Packages by concern, dependencies pointing one way (cli -> schedule -> alerts -> report/verify/migration ->
repair -> check -> runs/seed -> database -> findings): `database`, `runs`, `check`, `repair`, `migration`
(the chain in `migrations`; the frozen code its revisions run, `migrations.frozen`, imports nothing of the
package), `verify`, `report`, `alerts`, `schedule`, `seed`, `cli`. The top-level modules
(`findings`, `wording`) are the base layer: they import nothing of the package. Each package's docstring
ends with what it may import; tests/test_architecture.py enforces it and forbids import cycles.
"""

from __future__ import annotations

__version__ = "0.1.0"
