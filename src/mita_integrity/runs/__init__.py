"""Runs: the tool's own `integrity` schema, versioned (`integrity_schema`: its upgrade steps; `store`:
runs, archive, outbox, privileges), the history of recorded check runs and each finding's life
(`findings_history`), what a recorded check keeps for the next incremental one (`check_bases`), and the
run listing behind `runs` and `undo` (`run_history`).

May import: database, findings, wording.
"""
