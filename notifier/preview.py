"""`alarmd notify preview FILE.jsonl`: the email a template author would get.

Reads alarm events in the sample's JSON-lines format (or notification requests
spelt as in the schema), groups them as the sidecar would, and writes the first
group's email as an .eml file. Needs neither Kafka nor PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alarmd.settings import Settings
from notifier.grouping import Grouper
from notifier.render import Renderer
from notifier.request import Coordinates, NotificationRequest, Received
from schemas.mapping import MappingError, json_to_event


class PreviewError(ValueError):
    """The alarm file cannot be previewed; the message says which line and why."""


def preview(settings: Settings, source: Path, out: Path) -> dict[str, Any]:
    """Writes the email of the first group in `source` to `out`; returns a summary.

    Only alarms whose alarmText is in ALARMD_EMAIL_ALARM_TYPES are rendered, or
    every alarm while that list is empty, so a template author always sees an
    email. Each line is checked as `alarmd produce` checks it. Raises
    PreviewError for a bad line or nothing to render, ConfigurationError for
    unusable templates, PermanentFailure for an email that would be
    dead-lettered."""
    grouper = Grouper(settings.notify_group_by, 0.0, 0.0)
    lines = source.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            document = json.loads(line)
            json_to_event(document)
        except (json.JSONDecodeError, MappingError, AttributeError) as exc:
            raise PreviewError(f"{source}:{number + 1}: {_reason(exc)}") from exc
        wanted = settings.email_alarm_types
        if wanted and document.get("alarmText") not in wanted:
            continue
        request = _request(document, number)
        grouper.add(Received(request, Coordinates(str(source), 0, number), None,
                             b"", []), 0.0)  # fmt: skip
    digests = grouper.due(0.0)
    if not digests:
        raise PreviewError(
            f"{source} holds no alarm whose alarmText is in ALARMD_EMAIL_ALARM_TYPES "
            f"({', '.join(settings.email_alarm_types) or 'empty'})"
        )
    renderer = Renderer(
        settings.notify_template_dir,
        settings.notify_from,
        settings.notify_message_id_domain,
        settings.notify_max_alarms_per_email,
        settings.notify_field_max_chars,
    )
    digest = digests[0]
    customer = digest.received[0].request.customer
    email = renderer.render(
        digest, settings.notify_routes.get(customer, settings.notify_recipients)
    )
    out.write_bytes(email.raw)
    return {"file": str(out), "subject": email.subject, "groups": len(digests),
            "alarms": len(digest.received)}  # fmt: skip


def _request(document: dict[str, Any], number: int) -> NotificationRequest:
    def get(*names: str) -> str:
        return next((str(document[n]) for n in names if n in document), "")

    raw_time = get("eventTime")
    event_time = (
        datetime.fromisoformat(raw_time) if raw_time else datetime.now(UTC)
    ).astimezone(UTC)
    return NotificationRequest(
        event_id=get("eventId") or f"preview-{number}",
        alarm_event_id=get("alarmEventId"),
        ticket_id=get("ticketId", "TicketID"),
        alarm_text=get("alarmText"),
        node_name=get("nodeName"),
        iactoken=get("iactoken"),
        event_time=event_time,
        customer=get("customer"),
        nodegroup=get("nodegroup"),
        requested_at=datetime.now(UTC),
    )


def _reason(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON: {exc}"
    if isinstance(exc, AttributeError):
        return "not a JSON object"
    return str(exc)
