"""The check: one read-only snapshot run (`run`), the engine that evaluates rules (`engine`), the
registry of every rule (`rule_registry`), the rules themselves, one module per family (`rules/`), the psql
script (`sqlscript`), the team's own rules (`custom_rules`), the project's rule selection (`project`) and
`check --incremental` (`incremental`: what changed since a recorded base, read from `runs.check_bases`;
`incremental_keys`: the (user, day, category) keys a change touched, read again whole; `written_since`: the
test of a row version written since a base).

May import: runs, database, findings, wording.
"""
