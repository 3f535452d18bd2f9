"""Whatever the exchange sends, what the recorder makes of it can be written on every
backend: a snapshot, or one poll_errors row (Hypothesis, against real databases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

from hypothesis import HealthCheck, given, settings

from recorder import errors
from recorder.sources.coinw.parse import parse_balances
from recorder.store import writes
from recorder.store.database import Database
from recorder.values import Observation
from tests.test_parse import hostile_bodies

T0 = datetime(2026, 3, 31, tzinfo=UTC)
CLOCK = count()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(body=hostile_bodies)
def test_every_reply_is_stored_as_a_snapshot_or_one_error_row(db: Database, body: bytes) -> None:
    at = T0 + timedelta(seconds=next(CLOCK))
    try:
        observation = Observation.of_snapshot("main", parse_balances(body, at))
    except errors.PollError as error:
        observation = Observation.of_failure("main", at, error.kind, str(error))
    written = writes.record(db, observation, recorded_by="test:1", replay=False)
    assert written.snapshot_id is not None or observation.snapshot is None or written.failure
