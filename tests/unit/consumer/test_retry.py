"""consumer/retry.py: PausingRetry pauses on the first transient failure, keeps
polling while it waits, warns when the error changes and gives up on request."""

from __future__ import annotations

import time

import pytest
import structlog
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from alarmd.errors import TransientError
from consumer import retry as retry_module
from consumer.retry import PausingRetry

TINY_WAIT_S = 0.001


class RecordingConsumer:
    """Records what PausingRetry asks of the consumer; poll takes a moment, as a
    real one does."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.polls: list[float] = []

    def pause(self) -> None:
        self.calls.append("pause")

    def resume(self) -> None:
        self.calls.append("resume")

    def poll(self, seconds: float) -> None:
        self.polls.append(seconds)
        time.sleep(min(seconds, TINY_WAIT_S))


class FlakyOperation:
    """Raises one TransientError per given text, in order, then returns "done"."""

    def __init__(self, *texts: str, stage: str = "database") -> None:
        self._texts = list(texts)
        self._stage = stage
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self._texts:
            raise TransientError(self._stage, self._texts.pop(0))
        return "done"


@pytest.fixture
def consumer() -> RecordingConsumer:
    return RecordingConsumer()


@pytest.fixture
def make_retry(consumer):
    """PausingRetry wired to the recording consumer, with tiny waits."""

    def make(give_up=lambda: False, initial_s=TINY_WAIT_S) -> PausingRetry:
        return PausingRetry(
            initial_s=initial_s,
            max_s=max(initial_s, 0.01),
            pause=consumer.pause,
            resume=consumer.resume,
            poll=consumer.poll,
            give_up=give_up,
        )

    return make


@pytest.fixture
def logged(monkeypatch):
    """The structlog events consumer.retry logs during the test.

    capture_logs() cannot reach a logger that cached its configuration on first
    use, so the module gets a fresh logger for the duration of the test.
    """
    monkeypatch.setattr(
        retry_module, "log", structlog.get_logger(retry_module.__name__)
    )
    with capture_logs() as events:
        yield events


def _warnings(events) -> list[tuple[str, str, str]]:
    return [
        (e["event"], e["stage"], e["error"])
        for e in events
        if e["log_level"] == "warning"
    ]


def _paused_gauge() -> float | None:
    return REGISTRY.get_sample_value("alarmd_consumer_paused")


def test_first_transient_failure_pauses_consumption(consumer, make_retry):
    """One pause on the first failure, none on the next, and the result returned."""
    retry = make_retry()

    result = retry(
        "database", FlakyOperation("connection refused", "connection refused")
    )

    assert result == "done"
    assert consumer.calls == ["pause"]
    assert retry.paused
    assert _paused_gauge() == 1


def test_waits_between_attempts_poll_the_consumer(consumer, make_retry):
    """The consumer is polled while waiting, in slices of at most a second."""
    make_retry()("database", FlakyOperation("connection refused"))

    assert consumer.polls
    assert max(consumer.polls) <= 1.0


def test_success_does_not_resume_on_its_own(consumer, make_retry):
    """Success leaves consumption paused: the rest of the batch must finish first."""
    retry = make_retry()

    retry("database", FlakyOperation("connection refused"))

    assert "resume" not in consumer.calls
    assert retry.paused


def test_resume_if_paused_resumes_once(consumer, make_retry):
    """resume_if_paused resumes after a pause, and a second call does nothing."""
    retry = make_retry()
    retry("database", FlakyOperation("connection refused"))

    retry.resume_if_paused()
    retry.resume_if_paused()

    assert consumer.calls == ["pause", "resume"]
    assert not retry.paused
    assert _paused_gauge() == 0


def test_success_at_first_attempt_neither_pauses_nor_logs(consumer, make_retry, logged):
    """An operation that works at once costs no pause, no poll and no log line."""
    retry = make_retry()

    assert retry("database", FlakyOperation()) == "done"
    retry.resume_if_paused()

    assert (consumer.calls, consumer.polls, logged) == ([], [], [])


def test_same_error_is_warned_once(make_retry, logged):
    """Repeats of one error text give one warning, then one info line on success."""
    make_retry()(
        "database",
        FlakyOperation(
            "connection refused", "connection refused", "connection refused"
        ),
    )

    assert _warnings(logged) == [
        ("consumption_paused", "database", "database: connection refused")
    ]
    succeeded = [e for e in logged if e["event"] == "retry_succeeded"]
    assert [(e["log_level"], e["attempts"]) for e in succeeded] == [("info", 4)]


def test_warns_again_when_the_error_text_changes(make_retry, logged):
    """Each change of error text is warned; a repeat of the current one is not."""
    operation = FlakyOperation("refused", "refused", "timeout", "timeout", "refused")

    make_retry()("database", operation)

    assert [(event, error) for event, _, error in _warnings(logged)] == [
        ("consumption_paused", "database: refused"),
        ("retry_error_changed", "database: timeout"),
        ("retry_error_changed", "database: refused"),
    ]


def test_new_error_of_a_later_step_while_still_paused_is_warned(make_retry, logged):
    """A batch paused by the database that then cannot publish says so: the
    publish error is a change of error and is warned, though already paused."""
    retry = make_retry()
    retry("database", FlakyOperation("connection refused"))

    retry("publish", FlakyOperation("broker down", stage="publish"))

    assert _warnings(logged) == [
        ("consumption_paused", "database", "database: connection refused"),
        ("retry_error_changed", "publish", "publish: broker down"),
    ]


def test_gives_up_by_reraising_the_last_transient_error(consumer, make_retry):
    """When give_up() turns true the last TransientError propagates."""
    operation = FlakyOperation(*(f"refused, attempt {n}" for n in range(1, 10)))
    retry = make_retry(give_up=lambda: operation.calls >= 3)

    with pytest.raises(TransientError, match="attempt 3"):
        retry("database", operation)

    assert operation.calls == 3


def test_give_up_cuts_a_long_wait_short(consumer, make_retry):
    """A wait of many seconds ends as soon as give_up() turns true."""
    operation = FlakyOperation(*(["refused"] * 5))
    retry = make_retry(give_up=lambda: len(consumer.polls) >= 2, initial_s=30.0)
    started = time.monotonic()

    with pytest.raises(TransientError):
        retry("database", operation)

    assert time.monotonic() - started < 5.0
    assert operation.calls == 2


def test_non_transient_exception_propagates_at_once(consumer, make_retry):
    """A bug is not retried: it propagates from the first attempt, no pause."""
    calls = []

    def broken() -> None:
        calls.append(1)
        raise KeyError("iactoken")

    with pytest.raises(KeyError):
        make_retry()("database", broken)

    assert (len(calls), consumer.calls, consumer.polls) == (1, [], [])


def test_failed_attempts_are_counted_by_stage(make_retry):
    """Every failed attempt adds one to transient_errors_total{stage}."""
    labels = {"stage": "commit"}
    before = REGISTRY.get_sample_value("alarmd_transient_errors_total", labels) or 0.0

    make_retry()("commit", FlakyOperation("a", "b", "c", stage="commit"))

    after = REGISTRY.get_sample_value("alarmd_transient_errors_total", labels)
    assert after - before == 3
