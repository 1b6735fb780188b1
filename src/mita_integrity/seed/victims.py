"""Which existing users each kind of defect lands on (the temporary table seed_victims)."""

from __future__ import annotations

from ..database.errors import UsageError
from .context import SeedRun
from .plan import LANES, VICTIM_DEFECTS

_ELIGIBLE = {
    "any": "true",
    "onboarded": "s.onboarded",
    "active": "s.n_tx > 0",
    "plan": "s.n_tx > 0",
}


def choose_victims(run: SeedRun) -> dict[str, int]:
    """Fills seed_victims (kind, slot, n) and gives how many victims each kind got.

    Each lane orders its eligible users by a hash of the seed; its kinds take consecutive positions, so
    victims of one kind are distinct users and kinds of one lane overlap only when users run out (never in
    the plan lane, which refuses instead). Sizes are capped by the eligible users of the lane.
    """
    cur, h = run.cur, run.h
    cur.execute("SELECT " + ", ".join(
        f"count(*) FILTER (WHERE {cond})" for cond in (_ELIGIBLE[lane] for lane in LANES)) + " FROM seed_users s")
    row = cur.fetchone()
    eligible = dict(zip(LANES, (int(v) for v in row), strict=True)) if row else {}
    sizes = {d.name: min(d.size(run.options.users), eligible[d.lane]) for d in VICTIM_DEFECTS}
    kinds: list[str] = []
    slots: list[int] = []
    users: list[int] = []
    for lane in LANES:
        defects = [d for d in VICTIM_DEFECTS if d.lane == lane]
        demand = sum(sizes[d.name] for d in defects)
        if lane == "plan" and demand > eligible[lane]:
            raise UsageError(
                f"--corrupt needs more active users for the calendar defects ({demand} needed, "
                f"{eligible[lane]} available)", "seed more users",
            )
        if eligible[lane] == 0 or demand == 0:
            continue
        cur.execute(f"SELECT s.n FROM seed_users s WHERE {_ELIGIBLE[lane]} "
                    f"ORDER BY {h.bits('s.n', 700 + LANES.index(lane))}, s.n LIMIT {min(demand, eligible[lane])}")
        ordered = [int(r[0]) for r in cur.fetchall()]
        position = 0
        for d in defects:
            for slot in range(sizes[d.name]):
                kinds.append(d.name)
                slots.append(slot)
                users.append(ordered[position % len(ordered)])
                position += 1
    cur.execute("CREATE TEMP TABLE seed_victims (kind text NOT NULL, slot int NOT NULL, n bigint NOT NULL, "
                "PRIMARY KEY (kind, slot)) ON COMMIT DROP")
    cur.execute("INSERT INTO seed_victims SELECT * FROM unnest(%s::text[], %s::int[], %s::bigint[])",
                (kinds, slots, users))
    cur.execute("ANALYZE seed_victims")
    return sizes


def victims_of(kind: str) -> str:
    """Gives SQL (a FROM item) joining the kind's victims (v) to their seed_users row (s)."""
    return f"seed_victims v JOIN seed_users s ON s.n = v.n AND v.kind = '{kind}'"
