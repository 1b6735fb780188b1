"""`config`, and the one place the project file's settings meet a command's flags (the flags win).

Layers, lowest first: the built-in default, the project file, the environment (MITA_INTEGRITY_*), the
flags the user typed. A flag left at its default does not count as typed: click says where each value came
from. `--select` and `--ignore` are one choice: typing either replaces the file's select and ignore both.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from click.core import ParameterSource

from .app import App, console

if TYPE_CHECKING:
    from ..check.project import Project

R = TypeVar("R")
SELECTION = ("select", "ignore")


def typed_flags(keys: Sequence[str]) -> dict[str, Any]:
    """Gives the current command's flags among `keys` that the user typed (not left at their default)."""
    ctx = click.get_current_context()
    typed = {k: ctx.params[k] for k in keys
             if k in ctx.params and ctx.get_parameter_source(k) not in (ParameterSource.DEFAULT, None)}
    if any(k in typed for k in SELECTION):
        typed = {**{k: () for k in SELECTION if k in ctx.params}, **typed}
    return typed


def flag_name(key: str) -> str:
    return "--" + key.replace("_", "-")


def settled(app: App, request: R, config: Path | None = None) -> R:
    """Gives a command's request (CheckRequest, FixRequest) with the project's settings under its typed flags.

    Raises UsageError, before anything runs, for a bad project file or a bad combination.
    """
    from ..check.project import CHECK_DEFAULTS

    project = app.project(config)
    flags = typed_flags([k for k in CHECK_DEFAULTS if hasattr(request, k)])
    project = project.layered(flags, lambda key: "--select/--ignore" if key in SELECTION else flag_name(key))
    project.validate_check()
    values = {k: project.value(k) for k in CHECK_DEFAULTS if hasattr(request, k) and k != "exclude_tables"}
    return replace(request, project=project, **values)  # type: ignore[type-var]


def alert_config(project: Project, env: Mapping[str, str] | None = None) -> Any:
    """Gives the validated AlertConfig: the project file's [alerts] table under the MITA_* variables."""
    from ..alerts import load_config

    return load_config(os.environ if env is None else env, table=project.alerts,
                       where=project.label)


def _alert_settings(project: Project, env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Gives each configured alert key: its value, masked, and where it came from."""
    from ..alerts.config import KEYS
    from ..alerts.mail import parse_smtp_url
    from ..alerts.webhook import redact_url

    config = alert_config(project, env)  # raises on a bad value: `config` validates as the commands do
    table = project.alerts or {}
    out: dict[str, dict[str, Any]] = {}
    for key, variable in KEYS.items():
        if env.get(variable, "").strip():
            raw, source = env[variable], variable
        elif key in table:
            raw, source = table[key], f"{project.label} [alerts] {key}"
        else:
            continue
        value: Any = getattr(config, key)
        if key in ("slack_webhook_url", "webhook_url", "sentry_dsn") and value:
            value = redact_url(str(raw))
        elif key == "smtp_url" and value:
            value = parse_smtp_url(str(raw)).display()
        elif isinstance(value, tuple):
            value = list(value)
        out[key] = {"value": value, "source": source}
    if "routing" in table:
        out["routing"] = {"value": {s.value: list(c) for s, c in config.routing},
                          "source": f"{project.label} [alerts] routing"}
    return out


def _database(app: App) -> dict[str, str]:
    from ..database.connection import Database

    if app.db_option is not None:
        return {"value": Database.from_url(app.db_option).display, "source": "--db"}
    if os.environ.get("DATABASE_URL"):
        return {"value": Database.from_url(os.environ["DATABASE_URL"], origin="DATABASE_URL").display,
                "source": "DATABASE_URL"}
    from ..database import embedded

    return {"value": f"the embedded PostgreSQL (data in {embedded.home()})", "source": "default"}


def effective(app: App) -> dict[str, Any]:
    """Gives every effective setting with where it came from, as `config --format json` prints it."""
    from ..check.rule_registry import BY_CODE

    project = app.project()
    rules = {}
    for code, settings in project.rules.items():
        entry: dict[str, Any] = {"source": settings.source}
        if settings.severity is not None:
            builtin = BY_CODE.get(code)
            entry["severity"] = settings.severity.value
            entry["declared_severity"] = (builtin or project.rule(code)).severity.value
        if settings.fail_above is not None:
            entry["fail_above"] = settings.fail_above
        rules[code] = entry
    custom = []
    for rule in project.custom:
        sql = getattr(rule, "query", None) or getattr(rule, "predicate", "")
        custom.append({"code": rule.code, "name": rule.name, "section": rule.section,
                       "severity": rule.severity.value, "table": rule.table,
                       "kind": "query" if hasattr(rule, "query") else "where", "sql": sql,
                       "hint": rule.hint, "source": getattr(rule, "source", "")})
    return {
        "project_file": str(project.path) if project.path else None,
        "found": project.found,
        "database": _database(app),
        "check": {k: {"value": list(s.value) if isinstance(s.value, tuple) else s.value, "source": s.source}
                  for k, s in project.check.items()},
        "rules": rules,
        "custom_rules": custom,
        "alerts": _alert_settings(project, os.environ),
    }


def render(doc: Mapping[str, Any]) -> str:
    """Gives the effective settings as text: one setting a line, its source on the right."""
    def value(v: Any) -> str:
        if isinstance(v, list):
            return ", ".join(map(str, v)) or "(none)"
        if isinstance(v, dict):
            return "; ".join(f"{k}: {', '.join(c) or '-'}" for k, c in v.items())
        return "(none)" if v is None else str(v)

    rows: list[tuple[str, str, str]] = []
    path = doc["project_file"]
    rows.append(("project file", path or "(none: built-in defaults)", doc["found"] if path else
                 "no mita-integrity.toml or [tool.mita-integrity] from here upward"))
    rows.append(("database", doc["database"]["value"], doc["database"]["source"]))
    rows += [(f"check.{k}", value(s["value"]), s["source"]) for k, s in doc["check"].items()]
    for code, entry in doc["rules"].items():
        if "severity" in entry:
            rows.append((f"rules.{code}.severity", f"{entry['severity']} (declared {entry['declared_severity']})",
                         entry["source"]))
        if "fail_above" in entry:
            rows.append((f"rules.{code}.fail_above", str(entry["fail_above"]), entry["source"]))
    for rule in doc["custom_rules"]:
        on = f"{rule['table']}: {rule['sql']}" if rule["kind"] == "where" else rule["sql"]
        rows.append((f"custom {rule['code']}", f"{rule['name']} [{rule['severity']}, section {rule['section']}] {on}",
                     rule["source"]))
    rows += [(f"alerts.{k}", value(s["value"]), s["source"]) for k, s in doc["alerts"].items()]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {val}  ({source})" for name, val, source in rows) + "\n"


@click.command("config")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_obj
def config_command(app: App, fmt: str) -> int:
    """Print the effective settings (project file, environment, defaults) and where each came from."""
    doc = effective(app)
    if fmt == "json":
        console.print_json(json.dumps(doc))
    else:
        console.print(render(doc), markup=False, end="")
    return 0
