"""Schedule: the long-running `schedule` service that checks, records and alerts on a cron
(`runner`), and the cron fire times it waits for (`fire_times`).

May import: alerts, report, check, runs, database, findings, wording.
"""
