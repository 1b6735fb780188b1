"""Code the migrations run, frozen: a migration does next year exactly what it does today.

Every revision in versions/ imports only from this package (and third-party libraries), never from the rest
of mita_integrity: the rules, repairs and fix code go on changing, a migration that ran on one database must
run the same on the next. Nothing here imports the rest of the package either. The files are versioned
and never edited (tests/test_migration_freeze.py keeps their hashes in tests/data/frozen_migrations.sha256):

- online_v1.py  — the online DDL runner (short locks, NOT VALID then VALIDATE, concurrent indexes);
- kit_v1.py     — progress lines, the migration's connection, SQL files, the version table's width,
                  same-named constraints compared by definition; the Host the tool hands over;
- cleanup_v1.py — the archived clean-up, run as `fix --apply` ran it;
- rNNNN.py      — revision NNNN's clean-up: the exact SQL of its steps.

A new revision that needs other behaviour adds a module (kit_v2.py, r0028.py) and adds its hash to the
manifest; it never edits one of these.
"""
