"""`runs`: the history of recorded check, fix and undo runs, and one run in detail."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from ..database.errors import UsageError
from ..runs import run_history, store
from .app import App, console, note


@click.command("runs")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--kind", type=click.Choice(["check", "fix", "undo"]))
@click.option("--show", "show", metavar="RUN_ID",
              help="Print one run (a unique prefix of 8+ characters will do): a check's failing results, "
                   "a fix's or an undo's rules.")
@click.option("--html", "html", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="With --show of a check run: write its HTML report, with the trends up to that run, to FILE.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_obj
def runs_command(app: App, limit: int, kind: str | None, show: str | None, html: Path | None, fmt: str) -> int:
    """The history of recorded runs: id, time, kind, status, summary; --show RUN_ID prints one."""
    from ..database.connection import connect, transaction

    if html is not None and show is None:
        raise UsageError("--html needs --show RUN_ID (the check run whose report to write)",
                         "list the check runs with: mita-integrity runs --kind check")
    if show is not None:
        return _show_run(app, show, html, fmt)
    with connect(app.database()) as conn, transaction(conn, read_only=True) as cur:
        rows = run_history.list_runs(cur, limit, kind)
    if fmt == "json":
        console.print_json(json.dumps([r.to_json() for r in rows]))
        return 0
    if not rows:
        console.print("No runs recorded yet (fix --apply, undo and check --record record theirs).", markup=False)
        return 0
    for line in run_lines(rows, console.width):
        console.print(line, markup=False, soft_wrap=True)
    return 0


WIDE = 120  # from this many columns, `runs` shows whole ids and seconds


def short_ids(ids: list[str], least: int = 8) -> int:
    """Gives the shortest prefix length (at least `least`, what `runs --show` accepts) that tells ids apart."""
    length = least
    while length < max((len(i) for i in ids), default=least) and len({i[:length] for i in ids}) < len(set(ids)):
        length += 1
    return length


def run_lines(rows: list[run_history.RunRow], width: int) -> list[str]:
    """Gives the run history as lines of at most `width` characters: one line a run — columns as wide as
    their values, short ids below WIDE columns, the summary cut at the end ("…") where it does not fit —
    and under a run whose alert channel failed, one line per such channel with its reason."""
    wide = width >= WIDE
    ids = [r.id for r in rows]
    id_width = max(map(len, ids)) if wide else short_ids(ids)
    stamp = "%Y-%m-%d %H:%M:%S" if wide else "%Y-%m-%d %H:%M"
    cells = [(r.id[:id_width], r.started_at.strftime(stamp), r.kind, r.status, run_history.describe(r))
             for r in rows]
    header = ("id", "started (UTC)", "kind", "status", "summary")
    widths = [max(len(header[i]), *(len(c[i]) for c in cells)) for i in range(4)]
    room = max(20, width - sum(widths) - 2 * len(widths))

    def cut(text: str, room: int) -> str:
        text = " ".join(text.split())
        return text if len(text) <= room else text[:room - 1] + "…"

    def line(values: tuple[str, ...]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values[:4], widths, strict=True)) + "  " + cut(values[4], room)

    lines = [line(header).rstrip()]
    for row, values in zip(rows, cells, strict=True):
        lines.append(line(values))
        deliveries = row.summary.get("deliveries") if row.kind == "check" else None
        for d in deliveries if isinstance(deliveries, list) else []:
            if isinstance(d, dict) and not d.get("ok"):
                indent = " " * (id_width + 2)
                lines.append(indent + cut(f"alert {d.get('channel', '?')} FAILED: {d.get('error') or 'no reason'}",
                                          max(20, width - len(indent))))
    return lines


TREND_RUNS = 30  # the recorded check runs `runs --show RUN_ID --html` charts, that run the newest


def _show_run(app: App, run_id: str, html: Path | None, fmt: str) -> int:
    """Prints one run; for a check run with `html`, also writes its report with the trends up to it."""
    from ..database.connection import connect, transaction
    from ..report import render
    from ..report.stored import load_report
    from ..runs import findings_history as history

    if html is not None:
        html = html.expanduser()
        parent = html.resolve().parent
        if not parent.is_dir() or not os.access(parent, os.W_OK) or (html.exists() and not os.access(html, os.W_OK)):
            raise UsageError(f"cannot write the HTML report to {html}: the folder is missing or not writable")
    with connect(app.database()) as conn, transaction(conn, read_only=True) as cur:
        run = run_history.get_run(cur, run_id)
        if html is not None and run.kind != "check":
            raise UsageError(f"run {run.id} is a {run.kind} run: only a check run has an HTML report",
                             "list the check runs with: mita-integrity runs --kind check")
        detail = _run_detail(cur, run)
        page = None
        if html is not None:  # the stored report, with the recorded checks up to (and including) this run
            page = render(load_report(cur, run.id), "html", trend=history.trend(cur, TREND_RUNS, until=run.id))
    if page is not None and html is not None:
        try:
            html.write_text(page, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write the HTML report to {html}: {exc.strerror}") from None
    if fmt == "json":
        console.print_json(json.dumps({"run": run.to_json(), **detail, "html": str(html) if html else None},
                                      default=str))
    else:
        _print_run(run, detail)
    if html is not None:
        note(f"HTML report of run {run.id} with the trends up to it written to {html}")
    return 0


def _run_detail(cur: Any, run: Any) -> dict[str, Any]:
    """Gives what `runs --show` says about a run beyond its row: failing results, or rules."""

    if run.kind == "check":
        return _check_detail(cur, run)
    if run.kind == "fix":
        return {"rules": list(run.summary.get("rules", []))}
    cur.execute(f"SELECT rule_code, table_name, action, count(*) FROM {store.SCHEMA}.archive "
                "WHERE restored_by = %s::uuid GROUP BY 1, 2, 3 ORDER BY 1, 2, 3", (run.id,))
    rules = [{"code": code, "table": table, "action": action, "restored": int(n)}
             for code, table, action, n in cur.fetchall()]
    return {"rules": rules, "conflicts": list(run.summary.get("conflicts", [])),
            "conflict_count": int(run.summary.get("conflict_count", 0))}


def _check_detail(cur: Any, run: Any) -> dict[str, Any]:
    """Gives a check run's failing results (integrity.run_results, else the stored report) and what changed."""
    from ..check.rule_registry import BY_CODE
    from ..findings import Severity
    from ..runs import findings_history as history
    from ..runs import store

    cur.execute(f"SELECT report FROM {store.SCHEMA}.runs WHERE id = %s::uuid", (run.id,))
    row = cur.fetchone()
    doc = (row[0] if row else None) or {}
    stored = {history.fingerprint(r["code"], r["table"]): r for r in doc.get("results", [])}
    cur.execute(f"SELECT code, table_name, severity, count FROM {store.SCHEMA}.run_results "
                "WHERE run_id = %s::uuid AND status = 'fail'", (run.id,))
    failing = [(code, table, severity, int(count)) for code, table, severity, count in cur.fetchall()]
    if not failing and not _has_results(cur, run.id):  # recorded before the history kept every result
        failing = [(r["code"], r["table"], r["severity"], int(r["count"])) for r in stored.values()
                   if r.get("status") == "fail"]
    recent = history.trend(cur, 2, until=run.id)
    previous_run = recent.runs[0][0] if len(recent.runs) == 2 and recent.runs[1][0] == run.id else None
    rank = {s.value: s.rank for s in Severity}
    results = []
    for code, table, severity, count in sorted(failing, key=lambda f: (rank.get(f[2], 9), -f[3], f[0], f[1])):
        fp = history.fingerprint(code, table)
        before = recent.counts.get(fp, (None, None))[0] if previous_run else None
        if previous_run is None:
            change = None
        elif not before:
            change = "new"
        else:
            change = "worse" if count > before else "better" if count < before else "same"
        rule = BY_CODE.get(code)
        results.append({"code": code, "table": table, "severity": severity, "count": count,
                        "name": stored.get(fp, {}).get("name") or (rule.name if rule else ""),
                        "message": stored.get(fp, {}).get("message") or (rule.message if rule else ""),
                        "previous": before, "change": change})
    deliveries = run.summary.get("deliveries")
    return {"results": results, "previous_run": previous_run,
            "deliveries": deliveries if isinstance(deliveries, list) else None}


def _has_results(cur: Any, run_id: str) -> bool:

    cur.execute(f"SELECT EXISTS (SELECT 1 FROM {store.SCHEMA}.run_results WHERE run_id = %s::uuid)", (run_id,))
    row = cur.fetchone()
    return bool(row and row[0])


def _print_deliveries(deliveries: list[dict[str, Any]] | None) -> None:
    """Prints each alert channel's outcome and reason, one a line (nothing when the run was not alerted)."""
    if deliveries is None:
        return
    if not deliveries:
        console.print("  alerts   none due (nothing new, worse or resolved for any channel)", markup=False)
        return
    width = max(len(str(d.get("channel", "?"))) for d in deliveries)
    for i, d in enumerate(deliveries):
        outcome = f"ok, {d.get('sent', 0)} sent" if d.get("ok") else f"FAILED: {d.get('error') or 'no reason recorded'}"
        label = "  alerts   " if i == 0 else " " * 11
        console.print(f"{label}{str(d.get('channel', '?')).ljust(width)}  {outcome}", markup=False)


def _print_run(run: Any, detail: dict[str, Any]) -> None:

    took = f" · took {(run.finished_at - run.started_at).total_seconds():.1f} s" if run.finished_at else ""
    console.print(f"{run.kind.capitalize()} run {run.id} ({run.status})", markup=False)
    console.print(f"  started  {run.started_at.strftime('%Y-%m-%d %H:%M:%S')} UTC{took} · user {run.db_user}",
                  markup=False)
    console.print(f"  summary  {run_history.describe(run)}", markup=False)
    if run.kind == "check":
        _print_deliveries(detail.get("deliveries"))
        results = detail["results"]
        if not results:
            console.print("\nNothing failed in this run.", markup=False)
            return
        compared = (f"; compared with the previous check run {detail['previous_run'][:8]}"
                    if detail["previous_run"] else "; the first recorded check run")
        console.print(f"\nFailing results ({len(results)}){compared}:", markup=False)
        table = Table()
        for name, justify in (("rule", "left"), ("table", "left"), ("severity", "left"), ("count", "right"),
                              ("previous", "right"), ("finding", "left")):
            table.add_column(name, justify=justify, no_wrap=name != "finding")  # type: ignore[arg-type]
        for r in results:
            previous = "-" if r["previous"] is None else f"{r['previous']:,}"
            change = f" ({r['change']})" if r["change"] in ("new", "worse", "better") else ""
            table.add_row(r["code"], r["table"], r["severity"], f"{r['count']:,}", previous + change, r["message"])
        console.print(table)
        return
    rules = detail["rules"]
    if not rules:
        console.print("\nNo rule changed anything in this run." if run.kind == "fix"
                      else "\nNothing was restored by this run.", markup=False)
        return
    table = Table()
    columns: tuple[str, ...]
    keys: tuple[str, ...]
    if run.kind == "fix":
        columns = ("rule", "table", "safety", "before", "changed", "archived", "skipped", "after")
        keys = ("code", "table", "safety", "before", "changed", "archived", "skipped", "after")
    else:
        columns = ("rule", "table", "action", "restored")
        keys = ("code", "table", "action", "restored")
    for name in columns:
        table.add_column(name, justify="left" if name in ("rule", "table", "safety", "action") else "right",
                         no_wrap=True)
    for r in rules:
        table.add_row(*("-" if r.get(k) is None else f"{r[k]:,}" if isinstance(r.get(k), int) else str(r[k])
                        for k in keys))
    console.print(table)
    if run.kind == "undo" and detail.get("conflict_count"):
        console.print(f"{detail['conflict_count']:,} rows could not be restored (--format json lists them).",
                      markup=False)
