"""The root command group and the one place where every failure becomes one line and an exit code.

Exit codes: 0 ok; 1 and 2 are reserved for findings (high, critical); 3 could not run; 130 interrupted
(Ctrl-C). Every expected failure is one line on stderr with exit 3 and no traceback (unless --debug).
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

import click

from ..database.errors import MitaIntegrityError
from ..database.urls import mask_secrets
from .app import App, command_words, database_failure, err
from .changelog import changelog_group
from .checks import check_command, rules_command, sql_command
from .config import config_command
from .data import demo_command, seed_command
from .migrate import migrate_group
from .repair import fix_command, undo_command
from .runs import runs_command
from .schedule import schedule_command
from .verify import verify_command

EXIT_ERROR = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--db", "db_url", metavar="URL",
              help="Database URL (default: $DATABASE_URL, else the embedded PostgreSQL).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="The project file (default: mita-integrity.toml or [tool.mita-integrity] in pyproject.toml, "
                   "found from the working directory upward).")
@click.option("--debug", is_flag=True, help="Show tracebacks and SQL timings.")
@click.version_option(package_name="mita-integrity", prog_name="mita-integrity")
@click.pass_context
def cli(ctx: click.Context, db_url: str | None, config_path: Path | None, debug: bool) -> None:
    """Find, report, repair and prevent data-integrity defects in the MITA PostgreSQL database."""
    ctx.obj = App(db_option=db_url, debug=debug, config_option=config_path)


for command in (check_command, rules_command, sql_command, fix_command, undo_command, runs_command, schedule_command,
                migrate_group, seed_command, demo_command, verify_command, config_command, changelog_group):
    cli.add_command(command)


def run(argv: Sequence[str] | None = None) -> int:
    """Runs the CLI; gives (and, for the console script, exits with) the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    secrets = _secrets_in(args)
    try:
        code = cli.main(args=args, prog_name="mita-integrity", standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:  # usage errors: one line, exit 3 (2 means "critical finding")
        ctx_hint = "; see mita-integrity --help" if not isinstance(exc, click.FileError) else ""
        message = exc.format_message().rstrip()
        if ctx_hint:  # "… 'prometheus'." then "; see …" would read ".;"
            message = message.rstrip(".")
        err(f"error: {mask_secrets(message, *secrets)}{ctx_hint}")
        code = EXIT_ERROR
    except MitaIntegrityError as exc:
        if debug:
            traceback.print_exc()
        err(f"error: {mask_secrets(exc.one_line(), *secrets)}")
        code = EXIT_ERROR
    except (click.exceptions.Abort, KeyboardInterrupt):
        err("error: interrupted; what was committed stays, the transaction in progress was rolled back")
        code = EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the last line of defence: still one line, still masked
        if debug:
            traceback.print_exc()
        if (known := database_failure(exc, command_words(args))) is not None:  # a lost session, a standby
            err(f"error: {mask_secrets(known.one_line(), *secrets)}")
        else:
            first = (str(exc).strip().splitlines() or [""])[0]
            err(f"error: unexpected {type(exc).__name__}: {mask_secrets(first, *secrets)} (run with --debug for "
                "details)")
        code = EXIT_ERROR
    if not isinstance(code, int):
        code = 0
    if argv is None:  # the console script: exit with the code
        sys.exit(code)
    return code


def _secrets_in(args: list[str]) -> list[str]:
    """Gives the passwords of URLs on the command line and in DATABASE_URL, to mask in any message."""
    import os

    from ..database.urls import parse_url

    found = []
    candidates = [a for a in args if "://" in a]
    if os.environ.get("DATABASE_URL"):
        candidates.append(os.environ["DATABASE_URL"])
    for candidate in candidates:
        try:
            password = parse_url(candidate.split("=", 1)[-1] if candidate.startswith("--") else candidate).password
        except MitaIntegrityError:
            continue
        if password:
            found.append(password)
    return found
