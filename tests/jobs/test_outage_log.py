"""An outage of the state store: one warning a minute, its words free of connection details."""

from __future__ import annotations

import logging

import pytest

from adapter.errors import StateStoreUnavailable
from adapter.jobs.outage import StoreOutage
from adapter.privacy import redact
from adapter.state import StateStore

URL = "postgresql+psycopg://drill_operator:drill-pw@127.0.0.1:1/drill"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_warning_when_it_starts_one_a_minute_and_one_line_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    outage = StoreOutage(URL, logging.getLogger("test.outage"), clock=clock)
    error = StateStoreUnavailable("the postgresql state store cannot be reached")
    with caplog.at_level(logging.INFO, logger="test.outage"):
        for second in range(0, 150, 5):  # a heartbeat and a job every 5 s for 2.5 minutes
            clock.now = 1000.0 + second
            outage.failed("heartbeat", error)
            outage.failed("job health", error)
        assert outage.down
        clock.now = 1160.0
        assert outage.answered() is True
        assert outage.answered() is False  # only the first answer ends it
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3  # at 0 s, 60 s and 120 s
    assert "cannot be reached" in warnings[0] and "first met by heartbeat" in warnings[0]
    assert "still cannot be reached after 60 s" in warnings[1]
    assert "heartbeat, job health" in warnings[1]
    (back,) = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert "answers again after 160 s (60 attempts failed meanwhile)" in back
    for line in [*warnings, back]:
        assert "drill_operator" not in line and "drill-pw" not in line and "127.0.0.1" not in line


def test_an_unreachable_store_is_named_without_its_login_or_address() -> None:
    with pytest.raises(StateStoreUnavailable) as raised:
        StateStore(URL)  # nothing listens on port 1
    message = str(raised.value)
    assert "postgresql state store (database drill, state.url) cannot be reached" in message
    for secret in ("drill_operator", "drill-pw", "127.0.0.1", ":1/"):
        assert secret not in message
    # The driver's own text (chained, shown by a traceback) is redacted by the log filter.
    cause = redact(str(raised.value.__cause__))
    assert "OperationalError" in cause
    for secret in ("drill_operator", "drill-pw", "127.0.0.1", "port 1 "):
        assert secret not in cause, cause


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (
            'connection to server at "db.internal" (10.0.0.5), port 5432 failed: refused',
            "connection to server at [CONNECTION] failed: refused",
        ),
        ('FATAL:  password authentication failed for user "cpims"', 'user "[CONNECTION]"'),
        ("postgresql+psycopg://cpims:s3cret@db.internal:5432/cpims", "://[CONNECTION]/cpims"),
        ("https://alice:pw@example.org/fhir", "https://[CONNECTION]@example.org/fhir"),
        ("host=db.internal port=5432 user=cpims password=s3cret", "password=[CONNECTION]"),
    ],
)
def test_connection_details_are_redacted_from_log_text(text: str, kept: str) -> None:
    redacted = redact(text)
    assert kept in redacted
    for secret in ("db.internal", "10.0.0.5", "5432", "cpims:", "s3cret", "alice", '"cpims"'):
        assert secret not in redacted, redacted
