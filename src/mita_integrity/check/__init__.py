"""The check: one read-only snapshot run (`run`) and its connections (`snapshot`: one snapshot shared by two
connections, a new one after a standby's replay cancels it), the engine that evaluates rules (`engine`), the
registry of every rule (`rule_registry`), the rules themselves, one module per family (`rules/`), the psql
script (`sqlscript`), the team's own rules (`custom_rules`), the project's rule selection (`project`) and
`check --incremental` (the `incremental` package: what changed since a recorded base, read from
`runs.check_bases`, and each rule re-read as little as that allows).

May import: runs, database, findings, wording.
"""
