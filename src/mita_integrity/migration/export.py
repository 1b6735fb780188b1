"""`migrate export`: mita-integrity's chain above the baseline as revision files of the application's chain.

Every revision of the shipped chain after the baseline (0022 … the head of the installed package, whatever
it is) becomes one file in the application's `versions/` folder, under the same revision id, chained after
the application's head. Each file calls the stable API of `migration_api` (version 1) and nothing else of the
package, so the application's own `alembic upgrade`, `downgrade`, `current` and `history` run the steps.

Exporting again after the package gained a revision writes only the new ones, chained after the last
exported file: files already there are never rewritten (the application's history stays as it ran).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..database.chain_state import BASELINE
from ..database.errors import UsageError
from .api import API_VERSION

MARKER = "from mita_integrity import migration_api"
_REVISION = re.compile(r'^revision(?:: str)? = "([^"]+)"', re.MULTILINE)
_DOWN = re.compile(r'^down_revision(?:: [^=]+)? = "([^"]+)"', re.MULTILINE)


@dataclass(frozen=True)
class ExportedFile:
    """One revision file of the export: written now, or found from an earlier export."""

    revision: str
    down_revision: str
    path: Path
    written: bool


def steps() -> list[tuple[str, str, str]]:
    """Gives (revision id, file name, docstring) of each revision of the chain after the baseline, oldest first."""
    from alembic.script import ScriptDirectory

    from .command import alembic_config, revisions

    script = ScriptDirectory.from_config(alembic_config())
    chain = revisions()
    ids = [r.id for r in chain]
    if BASELINE not in ids:
        raise UsageError(f"the shipped chain has no baseline {BASELINE}")
    out = []
    for rev in chain[ids.index(BASELINE) + 1:]:
        module = script.get_revision(rev.id).module
        out.append((rev.id, rev.file_name, (module.__doc__ or rev.doc).strip()))
    return out


def exported_in(directory: Path) -> dict[str, tuple[Path, str]]:
    """Gives (file, down revision) by revision id of the files an earlier export wrote into directory."""
    found: dict[str, tuple[Path, str]] = {}
    if not directory.is_dir():
        return found
    for path in sorted(directory.glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        match, down = _REVISION.search(text), _DOWN.search(text)
        if MARKER in text and match:
            found[match.group(1)] = (path, down.group(1) if down else "")
    return found


def _docstring(step: str, down: str, doc: str) -> str:
    # Our own header lines name our chain's parent; the file's parent is the application's head.
    body = "\n".join(line for line in doc.splitlines() if not line.startswith(("Revision ID:", "Revises:"))).strip()
    body = body.replace('"""', "'''").replace("\\", "\\\\")
    return (f"{body}\n\nExported by mita-integrity {__version__} (`mita-integrity migrate export`): this file runs\n"
            f"step {step} of mita-integrity's chain through its stable migration API, version {API_VERSION}\n"
            "(mita_integrity.migration_api); mita-integrity must be installed where `alembic upgrade` runs.\n"
            "Online and reversible: the concurrent index builds run in Alembic's autocommit_block().\n\n"
            f"Revision ID: {step}\nRevises: {down}\n")


def render(step: str, down: str, doc: str) -> str:
    """Gives the text of the revision file that runs one step of our chain in the application's chain."""
    return f'''"""{_docstring(step, down, doc)}"""

from __future__ import annotations

{MARKER}

revision: str = "{step}"
down_revision: str | None = "{down}"
branch_labels: str | None = None
depends_on: str | None = None

STEP = "{step}"  # the revision of mita-integrity's chain this file runs
migration_api.require({API_VERSION})


def upgrade() -> None:
    migration_api.upgrade(STEP)


def downgrade() -> None:
    migration_api.downgrade(STEP)
'''


def export(directory: Path, down_revision: str | None) -> list[ExportedFile]:
    """Writes the chain's revisions after the baseline into directory, chained after down_revision.

    down_revision is the application's head (given, or read from its alembic_version); when an earlier
    export is found in directory, the new files follow its last one instead. Gives every file of the
    export, written now or before.
    """
    if not directory.is_dir():
        raise UsageError(f"{directory} is not a directory", "give the application's alembic versions/ folder")
    chain = steps()
    present = exported_in(directory)
    ids = [step for step, _, _ in chain]
    stray = sorted(set(present) - set(ids))
    if stray:
        raise UsageError(f"{directory} holds exported revisions this mita-integrity does not know: {', '.join(stray)}",
                         "install the mita-integrity that exported them")
    done = [step for step in ids if step in present]
    if done != ids[: len(done)]:
        raise UsageError(f"{directory} holds an incomplete earlier export ({', '.join(done)})",
                         "restore the missing files from version control, then export again")
    if done:
        down = done[-1]
    elif down_revision is None:
        raise UsageError("the application's head is unknown",
                         "give it with --down-revision REV, or --db URL of a database the application migrated")
    elif down_revision in ids:
        raise UsageError(f"the application's head {down_revision} is a revision of mita-integrity's own chain",
                         "give the application's last revision before this export with --down-revision REV")
    else:
        down = down_revision
    out = []
    for step, file_name, doc in chain:
        if step in present:
            out.append(ExportedFile(step, present[step][1], present[step][0], False))
            continue
        path = directory / f"{file_name}.py"
        if path.exists():
            raise UsageError(f"{path} exists and is not an export of {step}", "move it away, then export again")
        path.write_text(render(step, down, doc), encoding="utf-8")
        out.append(ExportedFile(step, down, path, True))
        down = step
    return out
