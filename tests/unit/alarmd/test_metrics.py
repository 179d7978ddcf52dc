"""alarmd/metrics.py: every labelled series exists from the start."""

from __future__ import annotations

from prometheus_client import REGISTRY

from alarmd import metrics
from alarmd.errors import DeadLetterReason


def _sample(name: str, labels: dict[str, str]) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_prime_creates_every_labelled_series_at_zero():
    """After prime(), each reason, downstream topic and stage has a series, so
    dashboards show 0 rather than nothing."""
    topics = ["predictive-prime-test", "iac1-prime-test"]

    metrics.prime(topics)

    reasons = {
        r.value: _sample("alarmd_messages_dead_lettered_total", {"reason": r.value})
        for r in DeadLetterReason
    }
    published = {
        t: _sample("alarmd_messages_published_total", {"topic": t}) for t in topics
    }
    stages = {
        s: _sample("alarmd_transient_errors_total", {"stage": s})
        for s in metrics.STAGES
    }
    assert None not in reasons.values()
    assert published == dict.fromkeys(topics, 0.0)
    assert None not in stages.values()
