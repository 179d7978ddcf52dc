"""The error tree, typed by what the caller does next.

- `InvalidMessage`: permanent. The message can never be processed as it is; it
  goes to the dead-letter topic with its coordinates and reason, an error row is
  stored, and the partition moves on.
- `TransientError`: a dependency (PostgreSQL, the broker, a schema registry) is
  unavailable. Nothing is dead-lettered and no offset is committed; the caller
  pauses and retries.
- Anything else is a bug or a misconfiguration and ends the process.
"""

from __future__ import annotations

import enum


class DeadLetterReason(enum.StrEnum):
    """Why a message was dead-lettered. A closed set: metrics label values and the
    `alarmd-error-reason` header of `alarms.dlq` come from here."""

    EMPTY_VALUE = "empty_value"
    TOMBSTONE = "tombstone"
    OVERSIZED_VALUE = "oversized_value"
    BAD_FRAMING = "bad_framing"
    UNKNOWN_SCHEMA = "unknown_schema"
    INCOMPATIBLE_SCHEMA = "incompatible_schema"
    MISSING_FIELD = "missing_field"
    MALFORMED_RECORD = "malformed_record"
    INVALID_FIELD = "invalid_field"
    INVALID_UTF8 = "invalid_utf8"
    UNSTORABLE_VALUE = "unstorable_value"
    REJECTED_BY_DATABASE = "rejected_by_database"


class AlarmdError(Exception):
    """Base of every error alarmd raises on purpose."""


class ConfigurationError(AlarmdError):
    """The settings cannot work; the message says which one and how to fix it."""


class InvalidMessage(AlarmdError):
    """A message that can never be processed as it is.

    Carries the reason and a sentence for people; the caller attaches the
    message's coordinates when it dead-letters it.
    """

    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class TransientError(AlarmdError):
    """A dependency is unavailable for now; retrying later may succeed."""

    def __init__(self, stage: str, detail: str) -> None:
        super().__init__(f"{stage}: {detail}")
        self.stage = stage
        self.detail = detail
