"""Errors of the email sidecar, typed by what the worker does next.

- `PermanentFailure`: the request (or the email carrying it) can never be
  delivered as it is. Its requests go to `notification.dlq` with the reason and
  an error row is stored.
- `alarmd.errors.TransientError` (stage "smtp"): the server is unreachable or
  answered 4xx, or (stage "webhook") the webhook is unreachable or answered
  5xx. The step is retried with backoff; nothing is dead-lettered.
"""

from __future__ import annotations

import enum

from alarmd.errors import AlarmdError


class FailureReason(enum.StrEnum):
    """Why a notification request was dead-lettered. A closed set: metric labels
    and the `alarmd-error-reason` header of `notification.dlq` come from here."""

    INVALID_REQUEST = "invalid_request"
    TEMPLATE_ERROR = "template_error"
    INVALID_ADDRESS = "invalid_address"
    RECIPIENT_REFUSED = "recipient_refused"
    MESSAGE_REFUSED = "message_refused"
    WEBHOOK_REFUSED = "webhook_refused"


class PermanentFailure(AlarmdError):
    def __init__(self, reason: FailureReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
