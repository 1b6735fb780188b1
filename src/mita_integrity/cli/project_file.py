"""The project file: the team's settings and its own rules, kept in its repository, found and validated.

`mita-integrity.toml`, or the `[tool.mita-integrity]` table of `pyproject.toml`, in the working directory
or the nearest folder above it (the first folder holding either wins; in one folder `mita-integrity.toml`
wins over `pyproject.toml`), or the file `--config FILE` names. Its format is a contract (docs/configuration.md):

    [check]            select, ignore, budget_days, day_boundary, exclude_tables
    [rules.CODE]       severity, fail_above
    [[custom_rules]]   code, name, section, severity, hint, finds, why, and table + where, or query
    [alerts]           as alerts/config.py reads it

Everything that can be checked without a database is checked here, when the file is loaded: an unknown
key, a value of the wrong kind, a bad or colliding code. What needs the database (custom SQL that does
not parse, or writes) is checked by custom_rules.validate_sql inside the check's snapshot, before any
rule runs. The settings it gives (project.Project) are layered: built-in default, then the file, then
the environment (MITA_INTEGRITY_SELECT…), then the command's flags.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..check import rule_registry as catalogue
from ..check.project import CHECK_DEFAULTS, LIST_KEYS, Project, RuleSettings
from ..check.rules.base import Rule
from ..database.errors import UsageError
from ..findings import SECTIONS, Severity

FILE_NAME = "mita-integrity.toml"
PYPROJECT = "pyproject.toml"
TOOL_TABLE = "tool.mita-integrity"

RULE_KEYS = ("severity", "fail_above")
CUSTOM_KEYS = ("code", "name", "section", "severity", "table", "where", "query", "hint", "finds", "why")
CUSTOM_REQUIRED = ("code", "name", "section", "severity")
TOP_KEYS = ("check", "rules", "custom_rules", "alerts")
CUSTOM_CODE = re.compile(r"^X[A-Z]{0,3}[0-9]{3}$")
RULE_NAME = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
RULE_SECTIONS = tuple(n for n in SECTIONS if n not in (1, 2, 13))  # 1, 2 and 13 are report headers


# ---------------------------------------------------------------------------- finding and reading the file

def find(start: Path) -> tuple[Path, str] | None:
    """Gives the project file nearest to start (start, then each folder above it), and how it was found."""
    for folder in (start, *start.parents):
        own = folder / FILE_NAME
        if own.is_file():
            return own, f"found from {start} upward"
        pyproject = folder / PYPROJECT
        if pyproject.is_file() and _has_tool_table(pyproject):
            return pyproject, f"found from {start} upward ([{TOOL_TABLE}])"
    return None


def _has_tool_table(path: Path) -> bool:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False  # another tool's broken pyproject.toml is not ours to judge unless it names us
    tool = data.get("tool")
    return isinstance(tool, dict) and "mita-integrity" in tool


def load(config: Path | None = None, *, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> Project:
    """Gives the validated project: the file `config` names, else the one found from cwd upward, else defaults.

    Raises UsageError (one line naming the file and the key) for anything wrong in it.
    """
    env = os.environ if env is None else env
    if config is not None:
        path = Path(config).expanduser()
        if not path.is_file():
            raise UsageError(f"--config {config}: no such file" if not path.exists()
                             else f"--config {config}: not a file", "give the path of a TOML project file")
        found: tuple[Path, str] | None = (path, "--config")
    else:
        found = find((cwd or Path.cwd()).resolve())
    if found is None:
        return Project().with_environment(env)
    path, how = found
    data = _read(path)
    return parse(data, path, how).with_environment(env)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the project file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        from ..database.urls import mask_secrets

        raise UsageError(f"the project file {path} is not valid TOML: {mask_secrets(str(exc))}") from None
    if path.name == PYPROJECT and path.suffix == ".toml" and "tool" in data:
        tool = data.get("tool")
        table = tool.get("mita-integrity") if isinstance(tool, dict) else None
        if not isinstance(table, dict):
            raise UsageError(f"{path} has no [{TOOL_TABLE}] table", f"add [{TOOL_TABLE}.check] and the rest there")
        return table
    return data


def _where(path: Path, table: str) -> str:
    prefix = f"{TOOL_TABLE}." if path.name == PYPROJECT else ""
    return f"{path.name} [{prefix}{table}]"


def _unknown(key: str, known: Sequence[str], where: str) -> UsageError:
    close = difflib.get_close_matches(key, known, n=1)
    return UsageError(f"{where}: unknown key {key!r}",
                      f"did you mean {close[0]}?" if close else f"known keys: {', '.join(known)}")


def _strings(value: Any, where: str, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise UsageError(f"{where} {key} must be a list of strings, e.g. {key} = [\"REF\", \"DUP001\"]")
    return tuple(v.strip() for v in value)


def _text(entry: Mapping[str, Any], key: str, where: str) -> str:
    value = entry[key]
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{where}: {key} must be a non-empty string")
    return value


def parse(data: Mapping[str, Any], path: Path, how: str = "--config") -> Project:
    """Gives the Project a parsed TOML document declares; raises UsageError at the first mistake."""
    from ..alerts.config import FILE_ONLY_KEYS
    from ..alerts.config import KEYS as ALERT_KEYS

    for key in data:
        if key in ALERT_KEYS or key in FILE_ONLY_KEYS:
            raise UsageError(f"{path.name}: {key} is outside the [alerts] table", "put it under [alerts]")
        if key not in TOP_KEYS:
            raise _unknown(key, TOP_KEYS, f"{path.name}")
    custom = _custom_rules(data.get("custom_rules", []), path)
    project = Project(path=path, found=how, custom=custom)
    project = project.layered(_check_table(data.get("check", {}), path), lambda key: f"{_where(path, 'check')} {key}")
    project = replace(project, rules=_rules_table(data.get("rules", {}), path, project))
    alerts = data.get("alerts")
    if alerts is not None:
        if not isinstance(alerts, dict):
            raise UsageError(f"{path.name}: alerts must be a table", "write [alerts] on a line of its own")
        known = (*ALERT_KEYS, *FILE_ONLY_KEYS)
        for key in alerts:
            if key not in known:
                raise _unknown(key, known, _where(path, "alerts"))
        project = replace(project, alerts=alerts)
    return project


def _check_table(table: Any, path: Path) -> dict[str, Any]:
    where = _where(path, "check")
    if not isinstance(table, dict):
        raise UsageError(f"{path.name}: check must be a table", "write [check] on a line of its own")
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in CHECK_DEFAULTS:
            raise _unknown(key, tuple(CHECK_DEFAULTS), where)
        if key in LIST_KEYS:
            values[key] = _strings(value, where, key)
        elif key == "budget_days" and (isinstance(value, bool) or not isinstance(value, int)):
            raise UsageError(f"{where} budget_days must be a whole number of days, e.g. budget_days = 30")
        elif key == "day_boundary" and not isinstance(value, str):
            raise UsageError(f"{where} day_boundary must be \"utc\" or \"user-timezone\"")
        else:
            values[key] = value
    return values


def _rules_table(table: Any, path: Path, project: Project) -> dict[str, RuleSettings]:
    if not isinstance(table, dict):
        raise UsageError(f"{path.name}: rules must hold one table per code, e.g. [rules.AMT004]")
    known = {r.code for r in project.all_rules()}
    out: dict[str, RuleSettings] = {}
    for code, settings in table.items():
        where = _where(path, f"rules.{code}")
        if code not in known:
            close = difflib.get_close_matches(code.upper(), sorted(known), n=1)
            raise UsageError(f"{where}: {code!r} is not a rule code",
                             f"did you mean {close[0]}?" if close else "`mita-integrity rules` lists the codes")
        if not isinstance(settings, dict):
            raise UsageError(f"{where} must be a table of severity and fail_above")
        for key in settings:
            if key not in RULE_KEYS:
                raise _unknown(key, RULE_KEYS, where)
        severity = _severity(settings["severity"], where) if "severity" in settings else None
        fail_above = settings.get("fail_above")
        if fail_above is not None and (isinstance(fail_above, bool) or not isinstance(fail_above, int)
                                       or fail_above < 0):
            raise UsageError(f"{where} fail_above must be a whole number of violations, 0 or more")
        out[code] = RuleSettings(code, severity, fail_above, where)
    return out


def _severity(value: Any, where: str) -> Severity:
    names = [s.value for s in Severity]
    if value not in names:
        raise UsageError(f"{where}: severity {value!r} is not a severity", f"use one of {', '.join(names)}")
    return Severity(value)


def _custom_rules(entries: Any, path: Path) -> tuple[Rule, ...]:
    from ..check import custom_rules

    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise UsageError(f"{path.name}: custom_rules must be an array of tables: write [[custom_rules]]")
    builtin_names = {r.name for r in catalogue.ALL_RULES}
    codes: dict[str, str] = {}
    names: dict[str, str] = {}
    out = []
    for number, entry in enumerate(entries, 1):
        code = entry.get("code")
        where = f"{path.name} [[{'tool.mita-integrity.' if path.name == PYPROJECT else ''}custom_rules]] #{number}" + (
            f" {code}" if isinstance(code, str) else "")
        for key in entry:
            if key not in CUSTOM_KEYS:
                raise _unknown(key, CUSTOM_KEYS, where)
        for key in CUSTOM_REQUIRED:
            if key not in entry:
                raise UsageError(f"{where}: {key} is missing", f"a custom rule needs {', '.join(CUSTOM_REQUIRED)}")
        for key in ("code", "name", "table", "where", "query", "hint", "finds", "why"):
            if key in entry:
                _text(entry, key, where)
        if code in catalogue.BY_CODE:
            raise UsageError(f"{where}: code {code} collides with a built-in rule",
                             "team rules take codes of their own namespace, e.g. X001")
        if not CUSTOM_CODE.match(code):
            raise UsageError(f"{where}: code {code!r} is not a team rule code",
                             "write X, up to three more capital letters, and three digits: X001, XFIN001")
        if code in codes:
            raise UsageError(f"{where}: code {code} is already used by {codes[code]}", "give each rule its own code")
        name = entry["name"]
        if not RULE_NAME.match(name):
            raise UsageError(f"{where}: name {name!r} is not a rule name", "write lower-case words joined by -, "
                             "e.g. large-usd-spend")
        if name in builtin_names or name in names:
            raise UsageError(f"{where}: name {name!r} is already used by "
                             f"{names.get(name) or catalogue.rule(name).code}", "give each rule its own name")
        section = entry["section"]
        if isinstance(section, bool) or not isinstance(section, int) or section not in RULE_SECTIONS:
            raise UsageError(f"{where}: section {section!r} is not a section that holds rules",
                             f"use one of {', '.join(map(str, RULE_SECTIONS))} (`mita-integrity rules` shows them)")
        _severity(entry["severity"], where)
        if ("where" in entry) == ("query" in entry):
            raise UsageError(f"{where}: give either table + where (a predicate on the row t) or query "
                             "(returning the violating rows' keys)")
        if "where" in entry and "table" not in entry:
            raise UsageError(f"{where}: where needs the table its row t comes from", "add table = \"…\"")
        sql_key = "where" if "where" in entry else "query"
        text = custom_rules.query_text(entry[sql_key]) if sql_key == "query" else entry[sql_key]
        problem = custom_rules.lexical_problem(text)
        if problem:
            raise UsageError(f"{where}: {sql_key} is not one SQL {'expression' if sql_key == 'where' else 'query'}: "
                             f"{problem}")
        codes[code], names[name] = where, code
        out.append(custom_rules.declare(entry, where))
    return tuple(out)
