"""Every Prometheus metric of the email sidecar, in alarmd's namespace.

Served on the sidecar's own port, so they never mix with the daemon's series.
Label values come from closed sets and are created up front.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from alarmd.metrics import NAMESPACE
from notifier.errors import FailureReason

REQUESTS_RECEIVED = Counter(
    "notify_requests_received",
    "Notification requests read from the notification topic.",
    namespace=NAMESPACE,
)
REQUESTS_SKIPPED = Counter(
    "notify_requests_skipped",
    "Requests already recorded as sent or dead-lettered (redelivery).",
    namespace=NAMESPACE,
)
REQUESTS_SENT = Counter(
    "notify_requests_sent",
    "Requests carried by an email the SMTP server accepted.",
    namespace=NAMESPACE,
)
EMAILS_SENT = Counter(
    "notify_emails_sent", "Emails the SMTP server accepted.", namespace=NAMESPACE
)
REQUESTS_FAILED = Counter(
    "notify_requests_failed",
    "Requests sent to notification.dlq, by reason.",
    ["reason"],
    namespace=NAMESPACE,
)
EMAILS_FAILED = Counter(
    "notify_emails_failed",
    "Emails given up on, by reason.",
    ["reason"],
    namespace=NAMESPACE,
)
RETRIES = Counter(
    "notify_retries",
    "Failed attempts that will be retried, by stage.",
    ["stage"],
    namespace=NAMESPACE,
)
GROUP_WAIT = Histogram(
    "notify_group_wait_seconds",
    "Time from a group's first request to the send of its email.",
    namespace=NAMESPACE,
    buckets=(0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800),
)
PENDING = Gauge(
    "notify_pending_requests",
    "Requests received and not yet recorded as sent or dead-lettered.",
    namespace=NAMESPACE,
)

STAGES = ("smtp", "webhook", "database", "dead_letter", "commit")


def prime() -> None:
    """Creates every labelled series with 0, so absence never means zero."""
    for reason in FailureReason:
        REQUESTS_FAILED.labels(reason=reason.value)
        EMAILS_FAILED.labels(reason=reason.value)
    for stage in STAGES:
        RETRIES.labels(stage=stage)
