"""Repair: the plan of a `fix` (`plan`), applying it with every changed row archived first
(`apply`), `undo`, the repairs declared next to their rules (`repairs/`, registered in
`repairs.repair_registry`), and the generated rule reference docs/rules.md (`rule_reference`: rules with
their repairs; `python -m mita_integrity.repair.rule_reference > docs/rules.md`).

May import: check, runs, database, findings, wording.
"""
