"""Every Prometheus metric alarmd exports, in one place.

Label values come from closed sets and are created up front, so a dashboard
shows 0 rather than nothing before the first event of a kind.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from alarmd.errors import DeadLetterReason

NAMESPACE = "alarmd"

MESSAGES_CONSUMED = Counter(
    "messages_consumed", "Messages read from the input topic.", namespace=NAMESPACE
)
EVENTS_STORED = Counter(
    "events_stored", "Distinct alarm events stored in PostgreSQL.", namespace=NAMESPACE
)
DUPLICATE_EVENTS = Counter(
    "duplicate_events",
    "Messages whose alarm event was already stored (redelivery or a repeat send).",
    namespace=NAMESPACE,
)
CYCLES_STARTED = Counter("cycles_started", "Alarm cycles started.", namespace=NAMESPACE)
PUBLISHED = Counter(
    "messages_published",
    "Outbox messages delivered to Kafka, by topic.",
    ["topic"],
    namespace=NAMESPACE,
)
DEAD_LETTERED = Counter(
    "messages_dead_lettered",
    "Messages routed to the dead-letter topic, by reason.",
    ["reason"],
    namespace=NAMESPACE,
)
TRANSIENT_ERRORS = Counter(
    "transient_errors",
    "Failed attempts that will be retried, by stage.",
    ["stage"],
    namespace=NAMESPACE,
)
BATCH_DURATION = Histogram(
    "batch_duration_seconds",
    "Time from a batch's arrival to its offset commit.",
    namespace=NAMESPACE,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BATCH_SIZE = Histogram(
    "batch_messages",
    "Messages per consumed batch.",
    namespace=NAMESPACE,
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000),
)
CONSUMER_LAG = Gauge(
    "consumer_lag_messages",
    "Messages between the committed offset and the end of each assigned partition.",
    ["topic", "partition"],
    namespace=NAMESPACE,
)
OUTBOX_OLDEST_AGE = Gauge(
    "outbox_oldest_unpublished_age_seconds",
    "Age of the oldest outbox row not yet published (0 when none).",
    namespace=NAMESPACE,
)
PAUSED = Gauge(
    "consumer_paused",
    "1 while consumption is paused to retry a transient error.",
    namespace=NAMESPACE,
)
DEAD_LETTER_LIMIT_TRIPPED = Gauge(
    "dead_letter_limit_tripped",
    "1 once the dead-letter limit has held a batch back and paused consumption "
    "until restart.",
    namespace=NAMESPACE,
)
ASSIGNED_PARTITIONS = Gauge(
    "assigned_partitions",
    "Input partitions assigned to this instance.",
    namespace=NAMESPACE,
)

STAGES = ("decode", "database", "publish", "commit", "sweep")


def prime(downstream_topics: list[str]) -> None:
    """Creates every labelled series with 0, so absence never means zero."""
    for reason in DeadLetterReason:
        DEAD_LETTERED.labels(reason=reason.value)
    for topic in downstream_topics:
        PUBLISHED.labels(topic=topic)
    for stage in STAGES:
        TRANSIENT_ERRORS.labels(stage=stage)
