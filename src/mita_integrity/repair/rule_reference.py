"""The generated rule reference, docs/rules.md: every rule with its documentation and its repair."""

from __future__ import annotations

import re
import sys

from ..check.rule_registry import ALL_RULES, FAMILY_OF
from ..check.rules.base import Family, RowRule, Rule, SchemaRule
from ..check.rules.docs import _kind
from ..check.rules.duplicates import MIDNIGHT_CHECK, UNIQUE_KEY
from ..check.rules.expected import EXPECTED_BY_REVISION
from ..findings import SECTIONS, FixSafety
from .repairs import REPAIRS

_RULES_PACKAGE = "mita_integrity.check.rules"  # where the families live (the module paths it links)


_UNITS = {"row": "violating rows", "key": "mismatched (user, day, category) keys", "object": "schema objects",
          "index": "corrupt indexes"}


_SAFETY = {
    FixSafety.SAFE: "safe: `mita-integrity fix --apply` runs it",
    FixSafety.UNSAFE: "unsafe (a guess): only `mita-integrity fix --apply --unsafe` runs it",
    FixSafety.NONE: "none: `fix` lists these and never changes them; a person (or a migration, as the repair "
                    "says) does",
}


def anchor(heading: str) -> str:
    """Gives the fragment GitHub links a Markdown heading by: lower case, punctuation dropped, spaces as -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _md(text: str) -> str:
    """Gives prose safe for Markdown: `<`, `>` and `*` escaped outside code spans."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):  # even parts lie outside backticks
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;").replace("*", "\\*")
    return "`".join(parts)


def _added(names: list[str]) -> str:
    """Gives " (migration 0026 adds `a`, `b`)" for the names a shipped migration creates, else ""."""
    by_revision = {rev.split("_")[0]: [n for n in names if n in created]
                   for rev, created in EXPECTED_BY_REVISION.items()}
    parts = [f"{rev} adds " + ", ".join(f"`{n}`" for n in found) for rev, found in by_revision.items() if found]
    return f" (migration {'; '.join(parts)})" if parts else ""


def guarantees(rule: Rule) -> str | None:
    """Gives the constraints that let `check` report the rule `guaranteed` without a scan, or None."""
    if isinstance(rule, RowRule) and rule.fk:
        column, parent = rule.fk
        where = f"`{rule.table}.{column}`" if rule.table else f"the table's `{column}`"
        if rule.table:
            names = [f"fk_{rule.table}_{column}"]
        else:  # one result per table: the migrations' keys on the tables no specific rule covers
            covered = {r.table for r in ALL_RULES if isinstance(r, RowRule) and r.fk == rule.fk and r.table}
            names = [n for names in EXPECTED_BY_REVISION.values() for n in names
                     if re.fullmatch(rf"fk_(\w+)_{column}", n) and n[3:-len(column) - 1] not in covered]
        return f"a validated foreign key on {where} to `{parent}`{_added(names)}"
    if rule.not_null_guarantees and rule.table and rule.column:
        return f"`NOT NULL` on `{rule.table}.{rule.column}`"
    if rule.guaranteed_by_check:
        checks = ", ".join(f"`{c.name}`" for c in rule.guaranteed_by_check)
        revisions = sorted({r.split("_")[0] for r, names in EXPECTED_BY_REVISION.items()
                            if {c.name for c in rule.guaranteed_by_check} & set(names)})
        added = f" (added by migration {', '.join(revisions)})" if revisions else ""
        return f"the validated CHECK constraint {checks}{added}"
    if rule.code == "DUP002":
        unique = [n for names in EXPECTED_BY_REVISION.values() for n in names if n.startswith("uq_daily_plan")]
        return (f"a unique constraint on ({', '.join(UNIQUE_KEY)}) that treats NULL categories as equal "
                f"(NULLS NOT DISTINCT, or category NOT NULL), with the validated `{MIDNIGHT_CHECK}`{_added(unique)}")
    return None


def _source_files() -> dict[str, str]:
    """Gives each family's name -> its module's path in the repository."""
    out = {}
    for module in list(sys.modules.values()):
        family = getattr(module, "FAMILY", None)
        if isinstance(family, Family) and module.__name__.startswith(_RULES_PACKAGE + "."):
            out[family.name] = "src/" + module.__name__.replace(".", "/") + ".py"
    return out


def _heading(rule: Rule) -> str:
    return f"{rule.code} {rule.name}"


def _rule_markdown(rule: Rule, source: str) -> list[str]:
    where = f"{rule.table}.{rule.column}" if rule.table and rule.column else rule.table
    on = f"`{where}`" if where else "every table it applies to (one result per table)"
    if not where and isinstance(rule, SchemaRule):
        on = "the schema, read from the system catalogs (one result per table concerned)"
    unit = _UNITS.get(rule.unit, rule.unit)
    if (family := FAMILY_OF.get(rule.code)) and family.name == "duplicates":
        unit = "surplus rows (all but one per duplicated key), and the number of duplicated keys"
    facts = [f"**Severity:** {rule.severity.value}", f"**Section:** {rule.section}. {SECTIONS[rule.section]}",
             f"**On:** {on}", f"**Counts:** {unit}"]
    if rule.live_only:
        facts.append("**Ignores:** soft-deleted rows (`deleted_at IS NOT NULL`)")
    if rule.physical:
        facts.append("**Runs:** only with `check --physical`")
    out = [f"### {_heading(rule)}", "", *(f"- {fact}" for fact in facts),
           f"- **Evaluated as:** {_kind(rule)}, declared in [{source}](../{source})"]
    guarantee = guarantees(rule)
    if guarantee:
        out.append(f"- **Guaranteed by:** {guarantee}: `check` reports `guaranteed` and does not scan")
    out += ["", f"**What it finds.** {_md(rule.finds)}", "", f"**Why it matters.** {_md(rule.why)}", "",
            f"**Example.** {_md(rule.example)}", "", f"**Repair.** {_md(rule.repair)}", "",
            f"**Repair safety.** {_SAFETY[rule.repair_safety]}."]
    repair = REPAIRS.get(rule.code)
    if repair is not None:
        out += ["", f"**What `fix --apply{' --unsafe' if repair.safety is FixSafety.UNSAFE else ''}` does:** "
                    f"{_md(repair.action)}; every changed row's before-image goes to `integrity.archive` first, "
                    f"and `mita-integrity undo RUN_ID` puts it back."]
    if rule.hint:
        out += ["", f"**Hint in the report:** {_md(rule.hint)}"]
    if isinstance(rule, RowRule) and rule.table:
        sql = rule.standalone_sql("t.deleted_at IS NULL" if rule.live_only else "")
        out += ["", "Count them by hand (the query `mita-integrity sql` puts in the psql script):", "",
                "```sql", sql + ";", "```"]
    out.append("")
    return out


def reference_markdown() -> str:
    """Gives docs/rules.md: a summary table, then every rule with its documentation, by section."""
    sections = {n: [r for r in ALL_RULES if r.section == n] for n in SECTIONS}
    sections = {n: rules for n, rules in sections.items() if rules}
    source = _source_files()
    out = ["# Rule reference", "",
           "Generated from the rule catalogue (`src/mita_integrity/check/rules/`) by "
           "`python -m mita_integrity.repair.rule_reference > docs/rules.md`; "
           "`tests/test_docs.py` fails when this file "
           "and the catalogue disagree. Do not edit it by hand: edit the rule, then regenerate. "
           "`mita-integrity rules CODE` explains one rule in the terminal, `mita-integrity rules` lists them all.", "",
           f"{len(ALL_RULES)} rules in {len(sections)} sections. The sections follow the seed's diagnostic "
           "script: 1 (overview) and 2 (row counts) are headers of the report, 13 is `check --since`.", "",
           "- **Severity** decides the exit code of `check`: 2 when the worst failing finding is critical, 1 when "
           "it is at or above `--fail-on` (default `high`) but not critical, 0 otherwise; 3 when the check could "
           "not run.",
           "- **Repair safety:** *safe* runs with `fix --apply`; *unsafe* is a guess and runs only with "
           "`fix --apply --unsafe`; *none* is for a person (`fix` lists the rows). Every repair archives the "
           "rows it changes in `integrity.archive` first; `undo RUN_ID` restores them.",
           "- **Guaranteed by:** when the constraint named there exists and is validated, `check` reports the "
           "rule `guaranteed` (with the constraint's name) instead of scanning the table.", "",
           "## Contents", ""]
    for number, rules in sections.items():
        title = f"{number}. {SECTIONS[number]}"
        codes = ", ".join(f"[{r.code}](#{anchor(_heading(r))})" for r in rules)
        out.append(f"- [{title}](#{anchor(title)}): {codes}")
    out += ["", "## All rules", "", "| code | name | severity | on | repair |", "|---|---|---|---|---|"]
    for rule in ALL_RULES:
        where = f"{rule.table}.{rule.column}" if rule.table and rule.column else (rule.table or "(per table)")
        out.append(f"| [{rule.code}](#{anchor(_heading(rule))}) | {rule.name} | {rule.severity.value} | "
                   f"{where if where.startswith('(') else f'`{where}`'} | {rule.repair_safety.value} |")
    out.append("")
    for number, rules in sections.items():
        out += [f"## {number}. {SECTIONS[number]}", ""]
        for rule in rules:
            out += _rule_markdown(rule, source[FAMILY_OF[rule.code].name])
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(reference_markdown(), end="")
