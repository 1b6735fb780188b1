"""Verify: the scorecard after a migration (`scorecard`), the reads it compares (`reads`) and the
probes that try the constraints (`probes`, `probe_rows`).

May import: repair, check, runs, database, findings, wording.
"""
