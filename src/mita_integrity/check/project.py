"""The project's settings as one value: the team's choices layered over the defaults, and what they do.

A `Project` is what project_file.load gives: the [check] settings (each with where its value came from:
the default, the file, a MITA_INTEGRITY_* variable, a flag), the [rules.CODE] settings, the team's own
rules and the raw [alerts] table. It chooses the rules a run takes (built-in and the team's, by
select/ignore, exclude_tables aside), gives the engine the families it needs for them, and settles the
results: excluded tables left out, severities overridden, accepted backlogs (fail_above) passed with
their count shown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..database.errors import UsageError
from ..findings import Result, Severity, Status
from ..wording import counted
from . import rule_registry as catalogue
from .rules.base import Expander, Family, Rule
from .rules.context import Schema
from .rules.dayboundary import BOUNDARIES

CHECK_DEFAULTS: dict[str, Any] = {"select": (), "ignore": (), "budget_days": 30, "day_boundary": "utc",
                                  "exclude_tables": ()}
LIST_KEYS = ("select", "ignore", "exclude_tables")
ENVIRONMENT: dict[str, str] = {key: f"MITA_INTEGRITY_{key.upper()}" for key in CHECK_DEFAULTS}


@dataclass(frozen=True)
class Setting:
    """One effective setting and where its value came from (default, the file, a variable, a flag)."""

    value: Any
    source: str = "default"


@dataclass(frozen=True)
class RuleSettings:
    """A rule's settings from `[rules.CODE]`: its severity and the violations accepted before it fails."""

    code: str
    severity: Severity | None = None
    fail_above: int | None = None
    source: str = ""


@dataclass(frozen=True)
class Project:
    """The effective project settings: the file's, layered with the environment and the flags."""

    path: Path | None = None
    found: str = "no project file"  # how the file was found, for `config`
    check: Mapping[str, Setting] = field(default_factory=lambda: {k: Setting(v) for k, v in CHECK_DEFAULTS.items()})
    rules: Mapping[str, RuleSettings] = field(default_factory=dict)
    custom: tuple[Rule, ...] = ()
    alerts: Mapping[str, Any] | None = None  # the raw [alerts] table; None when the file has none

    @property
    def label(self) -> str:
        return str(self.path) if self.path else "no project file"

    def value(self, key: str) -> Any:
        return self.check[key].value

    def layered(self, values: Mapping[str, Any], source: str | Callable[[str], str]) -> Project:
        """Gives the project with these [check] values on top (the environment's, or the flags')."""
        check = dict(self.check)
        for key, value in values.items():
            check[key] = Setting(tuple(value) if key in LIST_KEYS else value,
                                 source if isinstance(source, str) else source(key))
        return replace(self, check=check)

    def with_environment(self, env: Mapping[str, str]) -> Project:
        """Gives the project with the MITA_INTEGRITY_* variables on top; raises UsageError on a bad one."""
        values: dict[str, Any] = {}
        for key, variable in ENVIRONMENT.items():
            text = env.get(variable, "").strip()
            if not text:
                continue
            if key in LIST_KEYS:
                values[key] = tuple(t.strip() for t in text.split(",") if t.strip())
            elif key == "budget_days":
                if not text.isdigit():
                    raise UsageError(f"{variable}={text!r} is not a number of days", "use 1 to 3650")
                values[key] = int(text)
            else:
                values[key] = text
        project = self.layered(values, lambda key: ENVIRONMENT[key])
        project.validate_check()
        return project

    # ------------------------------------------------------------------ what the engine consumes

    @property
    def custom_family(self) -> Family | None:
        """Gives the family that evaluates the team's query rules, or None when there are none."""
        from . import custom_rules

        queries = [r for r in self.custom if isinstance(r, custom_rules.CustomQueryRule)]
        return custom_rules.family(queries) if queries else None

    def families(self) -> tuple[Family, ...]:
        """Gives the families the engine takes on top of the catalogue's: the team's query rules, and every
        built-in family that expands per table with exclude_tables left out of its expansion (never scanned).
        """
        out = [family] if (family := self.custom_family) else []
        excluded = frozenset(self.value("exclude_tables"))
        if excluded:
            out += [replace(f, expand=_without(f.expand, excluded)) for f in catalogue.FAMILIES if f.expand]
        return tuple(out)

    def all_rules(self) -> tuple[Rule, ...]:
        return tuple(sorted((*catalogue.ALL_RULES, *self.custom), key=lambda r: (r.section, r.code)))

    def rule(self, code: str) -> Rule:
        """Gives the built-in or team rule with this code or name; raises UsageError when unknown."""
        token = code.strip()
        for rule in self.custom:
            if rule.code == token.upper() or rule.name == token.lower():
                return rule
        return catalogue.rule(code)

    def _match(self, token: str) -> list[Rule]:
        upper = token.upper()
        if token == "*":
            return list(self.all_rules())
        custom = [r for r in self.custom if r.code == upper or r.name == token.lower()
                  or (upper.isalpha() and r.code.startswith(upper))]
        try:
            builtin = list(catalogue.select([token]))
        except UsageError:
            builtin = []
        return custom + builtin

    def _label(self, key: str) -> str:
        source = self.check[key].source
        return f"--{key}" if source == "default" or source.startswith("--") else f"{key} ({source})"

    def chosen(self, select: Iterable[str] | None = None, ignore: Iterable[str] | None = None) -> tuple[Rule, ...]:
        """Gives the rules --select and --ignore choose (built-in and the team's), exclude_tables aside.

        Without arguments the effective settings choose. Raises UsageError for a code, prefix or name that
        matches no rule.
        """
        select = self.value("select") if select is None else select
        ignore = self.value("ignore") if ignore is None else ignore
        chosen: list[Rule] = []
        for token in _tokens(select) or ["*"]:
            matched = self._match(token)
            if not matched:
                raise UsageError(f"{self._label('select')} {token}: no rule has that code, prefix or name",
                                 "`mita-integrity rules` lists them")
            chosen.extend(r for r in matched if r not in chosen)
        for token in _tokens(ignore):
            matched = self._match(token)
            if not matched:
                raise UsageError(f"{self._label('ignore')} {token}: no rule has that code, prefix or name",
                                 "`mita-integrity rules` lists them")
            chosen = [r for r in chosen if r not in matched]
        return tuple(sorted(chosen, key=lambda r: (r.section, r.code)))

    def select(self, select: Iterable[str] | None = None, ignore: Iterable[str] | None = None) -> tuple[Rule, ...]:
        """Gives the chosen rules to run: those whose own table is in exclude_tables left out."""
        excluded = set(self.value("exclude_tables"))
        return tuple(r for r in self.chosen(select, ignore) if not (r.table and r.table in excluded))

    def excluded_rules(self, select: Iterable[str] | None = None,
                       ignore: Iterable[str] | None = None) -> tuple[Rule, ...]:
        """Gives the chosen rules whose own table is in exclude_tables (they are reported `skipped`)."""
        excluded = set(self.value("exclude_tables"))
        return tuple(r for r in self.chosen(select, ignore) if r.table and r.table in excluded) if excluded else ()

    def finish(self, results: Sequence[Result], skipped: Sequence[Rule] = ()) -> list[Result]:
        """Gives the results as the project settles them: excluded tables left out (their own rules
        `skipped`), severities overridden, and a count at or below `fail_above` a `pass` with the count shown.
        """
        from .engine import result as result_of
        from .rules.context import Outcome

        excluded = set(self.value("exclude_tables"))
        where = self.check["exclude_tables"].source
        out = [r for r in results if r.table not in excluded]
        out += [result_of(rule, Outcome(rule.code, str(rule.table), status=Status.SKIPPED,
                                        reason=f"{rule.table} is in exclude_tables ({where})")) for rule in skipped]
        settled = []
        for res in out:
            settings = self.rules.get(res.code)
            if settings is not None:
                if settings.severity is not None:
                    res = replace(res, severity=settings.severity)
                if (settings.fail_above is not None and res.status is Status.FAIL
                        and res.count <= settings.fail_above):
                    res = replace(res, status=Status.PASS, reason=(
                        f"accepted: {counted(res.count, res.unit)}, at or below fail_above = {settings.fail_above} "
                        f"({settings.source})"))
            settled.append(res)
        return sorted(settled, key=lambda r: (r.section, r.code, r.table))

    def validate_check(self) -> None:
        """Raises UsageError (naming where the value came from) for a bad [check] setting."""
        days = self.check["budget_days"]
        if isinstance(days.value, bool) or not isinstance(days.value, int) or not 1 <= days.value <= 3650:
            raise UsageError(f"budget_days {days.value!r} ({days.source}) is out of range", "use 1 to 3650 days")
        boundary = self.check["day_boundary"]
        if boundary.value not in BOUNDARIES:
            raise UsageError(f"day_boundary {boundary.value!r} ({boundary.source}) is not a day boundary",
                             f"use {' or '.join(repr(b) for b in BOUNDARIES)}")
        self.chosen()
        if not self.select():
            raise UsageError(f"{self._label('select')}, {self._label('ignore')} and exclude_tables leave no rule "
                             "to run", "ignore fewer rules")


def _without(expand: Expander | None, excluded: frozenset[str]) -> Expander:
    """Gives an expansion that leaves out the concrete rules of the excluded tables."""
    assert expand is not None

    def without(schema: Schema) -> tuple[Rule, ...]:
        return tuple(r for r in expand(schema) if r.table not in excluded)
    return without


def _tokens(values: Iterable[str]) -> list[str]:
    return [t.strip() for v in values for t in v.split(",") if t.strip()]
