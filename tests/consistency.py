"""What the fault tests check in the database afterwards: every change row is the diff of
its snapshot with the one before it in time, and `at` answers what the polls said."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from recorder.diff import diff
from recorder.store import history
from recorder.store.database import Database

Holdings = dict[str, Decimal]


def snapshots(db: Database, account: str) -> list[tuple[int, datetime, Holdings, str | None]]:
    """(id, taken_at, balances, recorded_by) of the account's snapshots, in time order."""
    account_id = history.resolve_accounts(db, [account])[account]
    rows = db.rows(
        "SELECT id, taken_at, recorded_by FROM snapshots WHERE account_id = ? "
        "ORDER BY taken_at, id",
        (account_id,),
    )
    balances: dict[int, Holdings] = {}
    for snapshot_id, currency, amount in db.rows(
        "SELECT b.snapshot_id, b.currency, b.amount FROM balances b "
        "JOIN snapshots s ON s.id = b.snapshot_id WHERE s.account_id = ?",
        (account_id,),
    ):
        balances.setdefault(int(snapshot_id), {})[currency] = db.dialect.amount(amount)
    to_time = db.dialect.time_from_storage
    return [(int(i), to_time(t), balances.get(int(i), {}), by) for i, t, by in rows]


def assert_change_log_is_the_diff(db: Database) -> int:
    """Every change row equals the diff of its snapshot with the account's snapshot before
    it in time (and carries its time); returns how many snapshots were checked."""
    amount = db.dialect.amount
    stored: dict[int, set[tuple[str, Decimal | None, Decimal | None, datetime]]] = {}
    for snapshot_id, currency, old, new, taken_at in db.rows(
        "SELECT snapshot_id, currency, old_amount, new_amount, taken_at FROM balance_changes"
    ):
        stored.setdefault(int(snapshot_id), set()).add(
            (
                currency,
                None if old is None else amount(old),
                None if new is None else amount(new),
                db.dialect.time_from_storage(taken_at),
            )
        )
    checked = 0
    for account in history.resolve_accounts(db):
        previous: Holdings = {}
        for snapshot_id, taken_at, balances, _ in snapshots(db, account):
            expected = {
                (c.currency, c.old_amount, c.new_amount, taken_at) for c in diff(previous, balances)
            }
            assert stored.pop(snapshot_id, set()) == expected, (account, snapshot_id, taken_at)
            previous = balances
            checked += 1
    assert stored == {}, f"change rows without a snapshot: {stored}"
    return checked


def sampled_moments(times: Sequence[datetime], count: int = 300, seed: int = 14) -> list[datetime]:
    """`count` moments spread over the span of `times` (and a little around it), plus
    each time itself and a microsecond either side."""
    chooser = random.Random(seed)
    start, end = min(times) - timedelta(seconds=30), max(times) + timedelta(seconds=30)
    span = (end - start).total_seconds()
    moments = [start + timedelta(seconds=chooser.uniform(0, span)) for _ in range(count)]
    tick = timedelta(microseconds=1)
    return sorted(moments + [t + d for t in times for d in (-tick, timedelta(0), tick)])


def expected_at(timeline: Sequence[tuple[datetime, Holdings]], moment: datetime) -> Holdings | None:
    """What the polls said as of `moment`: the last poll at or before it (None: none yet)."""
    found = None
    for taken_at, holdings in timeline:
        if taken_at <= moment:
            found = holdings
    return found


def at_answers(db: Database, account: str, moments: Sequence[datetime]) -> list[Holdings | None]:
    """What `recorder at` answers for the account at each moment (None: no snapshot)."""
    accounts = history.resolve_accounts(db, [account])
    answers: list[Holdings | None] = []
    for moment in moments:
        found = history.holdings_at(db, accounts, moment)
        answers.append({h.currency: h.amount for h in found[0][1]} if found else None)
    return answers


def assert_at_says_what_the_polls_said(
    db: Database,
    account: str,
    timeline: Sequence[tuple[datetime, Mapping[str, Decimal]]],
    moments: Sequence[datetime],
) -> None:
    """`at` at every moment answers the holdings of the last poll of `timeline` before it."""
    polls = [(t, dict(h)) for t, h in timeline]
    for moment, answer in zip(moments, at_answers(db, account, moments), strict=True):
        assert answer == expected_at(polls, moment), moment
