"""`check --incremental`: re-examine only what changed since the last recorded check, or say why not.

How a change is found (no trigger, no replication slot): a row version whose `xmin` is at or above the base
snapshot's xmin was written since the base (or by a transaction that was still running then). The test is
`age(xmin) <= age(base xmin)`, both counted modulo 2^32 from one stable point of the transaction, so every
row written since the base passes it; a very old frozen row (its raw xmin is kept) may pass it too, which
costs work and never hides a change. Per table, one scan counts `changed` (in that range) and `unchanged`;
`lost = rows at the base - unchanged` is exactly how many base rows were updated or deleted since (a row whose
xmin is one the base kept as young, written by a transaction that committed while another was in flight at
the base, is the base's, unchanged; a base that kept none counts such rows as changed, which only makes the
check do more) (changes.py). The partial re-reads run on the check's connections at once (runner.py).

Rule by rule (anything else runs in full, with the reason in the report):
- a rule whose tables did not change at all (no changed row, nothing lost, same relfilenode) and that does
  not read the clock keeps the base result (BUD001/BUD002 read the date: only on the base's UTC day);
- a row rule of the catalogue (its own row's values, maybe a LEFT JOIN to a parent) re-evaluates the
  changed rows (by the tids the changes scan collected) and, as far as needed, its base violators: an
  unchanged row keeps its verdict (row_reads.py). A joined table must be unchanged, or, for an orphan
  rule, have only gained rows (a parent deleted or re-keyed orphans unchanged children);
- the duplicate rules (DUP001-DUP003) re-read whole only the groups of (the base's violating groups, kept by
  their members' ids) UNION (the keys of the rows written since): groups.py says why that is exact; DUP002
  and DUP003 by their (user, day, category) keys, with BUD001 and BUD002 (touched_keys.py);
- BUD001, BUD002 and USR003 need the key a row left, which no later snapshot shows: they read it from the
  change log (runs/change_log.py, `changelog install`) when it proves itself complete since the base
  (old_keys.py), and re-read only the affected keys (touched_keys.py, old_keys.py); otherwise in full,
  with the reason (verdict.py says, rule by rule, which it is);
- REF011, schema rules, team rules: in full whenever a table they read changed.
Whole-run fallbacks: no base, another catalogue or options, a base older than --max-base-age, a statistics
reset, a table rewritten or truncated (new relfilenode), a base more than 2^31 - margin xids old,
transaction ids lower than the base's (a restore elsewhere), `--since` (its window moves with the clock).

The modules: runner (the whole), identity (which base is this check's), changes (finding them), verdict (rule by
rule), row_reads, groups, touched_keys, old_keys (the partial re-reads), keep (what a recorded run keeps),
statements (how the package's own statements run), written_since (the one test of a row version).
May import: the check's engine, registry and rules, runs (check_bases, change_log), findings.
"""

from .changes import Change
from .identity import catalogue_fingerprint, option_key
from .runner import Outcome_, annotate, run

__all__ = ["Change", "Outcome_", "annotate", "catalogue_fingerprint", "option_key", "run"]
