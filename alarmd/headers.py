"""Reading a Kafka message's headers when some of them cannot be read.

confluent-kafka decodes header names as UTF-8 and fails (with a SystemError)
on any other bytes, which another client may well send. A message is never
lost over its headers: the caller keeps the message and is told they are gone.
"""

from __future__ import annotations

from typing import Any

Headers = list[tuple[str, bytes | None]]

UNREADABLE_HEADERS = (
    "its headers were left out: a header name is not UTF-8, which the Kafka "
    "client cannot read"
)


def read_headers(message: Any) -> tuple[Headers, bool]:
    """The message's headers and True, or no headers and False when they cannot
    be read."""
    try:
        return list(message.headers() or []), True
    except (SystemError, UnicodeDecodeError):
        return [], False


def with_headers_note(detail: str, readable: bool) -> str:
    """A dead letter's detail, saying so when its headers had to be left out."""
    return detail if readable else f"{detail}; {UNREADABLE_HEADERS}"
