"""The poison corpus: Kafka messages the daemon must dead-letter, each with the
reason it must give, and one hostile but valid event it must store verbatim.

`corpus(document, framing)` builds every case for one input framing from a good
JSON alarm event. The bytes come from the schema files through fastavro and the
Avro specification (`tests/avro_wire.py`), never from `schemas.encoding`. Unit
tests run the corpus through `decode_batch`, the integration tier through the
real daemon, and a chaos run can mix it into its input.

Some cases exist only in one framing. A single-object writer is found by
fingerprint, so a writer schema that lacks a field or does not resolve is simply
an unknown fingerprint there; those two cases are built for the Confluent
framing, whose registry hands the daemon any schema a producer registered.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from alarmd.errors import DeadLetterReason
from alarmd.settings import DEFAULT_MAX_EVENT_BYTES

from .avro_wire import (
    SCHEMA_DIR,
    body,
    confluent_frame,
    schema_json,
    single_object_header,
    to_record,
)

CASE_HEADER = "poison-case"
# A schema registry issues ids counting up from 1; this one it has never issued.
UNKNOWN_SCHEMA_ID = 2_000_000_000
OVERSIZED_ADDITIONAL_INFO_BYTES = 5 * 1024 * 1024
INVALID_UTF8_PLACEHOLDER = "@@not-utf8@@"
EVENT_TIME_MICROS_20_000_YEARS_ON = 20_000 * 366 * 86_400 * 1_000_000
# Text aimed at the SQL, the HTML templates, printf-style formatting (psycopg2's
# %s), shells and terminals. None of it is an error: it is stored as it came.
HOSTILE_TEXT = {
    "alarmText": "BCF FAULTY'); DROP TABLE alarm_events; --",
    "additionalInfo": (
        "<script>alert('x')</script><img src=x onerror=alert(1)> %s %(id)s $1 "
        "$$; COMMIT; $$ \\x00 \\' \" ` $(reboot) \x1b[31mred\x1b[0m \u2028 end"
    ),
    "nodeName": 'site-n010" OR "1"="1',
    "customer": "customer-a'; UPDATE alarm_cycles SET iactoken = NULL; --",
    "TicketID": "TT-1 UNION SELECT password FROM pg_shadow --",
}
HOSTILE_ATTRIBUTES = {
    "comment": "</td></tr></table><a href='javascript:alert(1)'>click</a>",
    "'; DELETE FROM outbox; --": "key itself is an attack",
    "{{ 7*7 }}": "{% for x in range(9) %}jinja{% endfor %}",
}


@dataclass(frozen=True)
class Message:
    """What a producer sends: key, value and headers."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)


@dataclass(frozen=True)
class PoisonCase:
    """One message and what the daemon must make of it.

    `reason` None means the message is valid and must be stored verbatim;
    `stored` then holds the record it must become. `detail` is a fragment the
    dead-letter detail must contain, so the reason text names the problem.
    """

    name: str
    message: Message
    reason: DeadLetterReason | None
    detail: str = ""
    stored: dict[str, Any] | None = None


class Framing:
    """How a producer frames one Avro body written with a given writer schema."""

    name = ""

    def frame(self, writer: dict[str, Any], avro_body: bytes) -> bytes:
        raise NotImplementedError


class SingleObjectFraming(Framing):
    """Avro single-object encoding: C3 01, the writer's fingerprint, the body."""

    name = "single-object"

    def frame(self, writer: dict[str, Any], avro_body: bytes) -> bytes:
        return single_object_header(writer) + avro_body


class ConfluentFraming(Framing):
    """Magic 00, the schema id `register(writer)` gives, the body."""

    name = "confluent"

    def __init__(self, register: Callable[[dict[str, Any]], int]) -> None:
        self._register = register

    def frame(self, writer: dict[str, Any], avro_body: bytes) -> bytes:
        return confluent_frame(self._register(writer), avro_body)


def encode(document: dict[str, Any], framing: Framing) -> bytes:
    """A good JSON alarm event as the framing's producer sends it."""
    reader = schema_json()
    return framing.frame(reader, body(reader, to_record(document, reader)))


def corpus(
    document: dict[str, Any],
    framing: Framing,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
) -> list[PoisonCase]:
    """Every case of the corpus for one framing, built from a good JSON event.

    `max_event_bytes` is the daemon's ALARMD_MAX_EVENT_BYTES; the oversized case
    is made larger than it and than the 5 MB the corpus promises.
    """
    reader = schema_json()
    good = encode(document, framing)
    rng = random.Random(20240311)

    def framed(**changes: Any) -> bytes:
        return encode({**document, **changes}, framing)

    def message(name: str, value: bytes | None, key: bytes | None = None) -> Message:
        return Message(
            key if key is not None else f"poison-{name}".encode(),
            value,
            [(CASE_HEADER, name.encode())],
        )

    def case(name: str, value: bytes | None, reason, detail: str) -> PoisonCase:
        return PoisonCase(name, message(name, value), reason, detail)

    cases = [
        case("random-bytes", _noise(rng), DeadLetterReason.BAD_FRAMING, "payload"),
        case("empty-value", b"", DeadLetterReason.EMPTY_VALUE, "empty (0 bytes)"),
        # Kafka Connect sends tombstones, and headers whose value is null.
        PoisonCase(
            "tombstone",
            Message(
                b"poison-tombstone",
                None,
                [(CASE_HEADER, b"tombstone"), ("connect-deleted", None)],
            ),
            DeadLetterReason.TOMBSTONE,
            "tombstone",
        ),
        # The event put in the key by mistake, nothing in the value or headers.
        PoisonCase(
            "key-only",
            Message(good, None, []),
            DeadLetterReason.TOMBSTONE,
            "value is null",
        ),
        case(
            "truncated",
            good[: len(good) // 2],
            DeadLetterReason.MALFORMED_RECORD,
            "truncated",
        ),
        case(
            "trailing-garbage",
            good + b"\x06extra",
            DeadLetterReason.MALFORMED_RECORD,
            "6 bytes of trailing garbage",
        ),
        case(
            "wrong-magic-byte",
            _wrong_magic(good, framing),
            DeadLetterReason.BAD_FRAMING,
            _wrong_magic(good, framing)[:2].hex(),
        ),
        case(
            "invalid-utf8",
            _invalid_utf8(framed(nodeName=INVALID_UTF8_PLACEHOLDER)),
            DeadLetterReason.INVALID_UTF8,
            "not valid UTF-8",
        ),
        case(
            "nul-character",
            framed(alarmText="BCF\x00FAULTY"),
            DeadLetterReason.UNSTORABLE_VALUE,
            "field alarmText holds a NUL character",
        ),
        case(
            "empty-iactoken",
            framed(iactoken=""),
            DeadLetterReason.INVALID_FIELD,
            "iactoken is empty",
        ),
        case(
            "event-time-out-of-range",
            _event_time_out_of_range(document, reader, framing),
            DeadLetterReason.INVALID_FIELD,
            "eventTime is out of range",
        ),
    ]
    oversized = framed(additionalInfo=_incompressible_text(rng, max_event_bytes))
    cases.append(
        case(
            "oversized-additional-info",
            oversized,
            DeadLetterReason.OVERSIZED_VALUE,
            f"value is {len(oversized):,} bytes",
        )
    )
    if isinstance(framing, SingleObjectFraming):
        stranger = _unknown_fingerprint(rng, good)
        cases.append(
            case(
                "unknown-fingerprint",
                stranger,
                DeadLetterReason.UNKNOWN_SCHEMA,
                stranger[2:10].hex(),
            )
        )
    if isinstance(framing, ConfluentFraming):
        cases += _registry_cases(document, reader, framing, case)
    cases.append(_hostile_but_valid(document, reader, framing))
    return cases


def poison(cases: list[PoisonCase]) -> list[PoisonCase]:
    """The cases that must be dead-lettered."""
    return [c for c in cases if c.reason is not None]


def verbatim(cases: list[PoisonCase]) -> list[PoisonCase]:
    """The cases that must be stored as they came."""
    return [c for c in cases if c.reason is None]


# --- how each case is made -----------------------------------------------------


def _noise(rng: random.Random) -> bytes:
    """64 random bytes that start with neither framing's marker."""
    while True:
        noise = rng.randbytes(64)
        if noise[0] not in (0x00, 0xC3):
            return noise


def _wrong_magic(good: bytes, framing: Framing) -> bytes:
    if isinstance(framing, ConfluentFraming):
        return b"\x01" + good[1:]
    return b"\xc3\x02" + good[2:]


def _invalid_utf8(with_placeholder: bytes) -> bytes:
    placeholder = INVALID_UTF8_PLACEHOLDER.encode()
    # The same length, so the Avro string's length prefix still matches.
    broken = with_placeholder.replace(placeholder, b"\xff\xfe" + placeholder[2:])
    assert broken != with_placeholder
    return broken


def _event_time_out_of_range(
    document: dict[str, Any], reader: dict[str, Any], framing: Framing
) -> bytes:
    # A plain long has the same wire form as timestamp-micros, so the body is
    # written with that and framed as ours: a collector with a broken clock.
    as_long = schema_json()
    for definition in as_long["fields"]:
        if definition["name"] == "eventTime":
            definition["type"] = "long"
    record = to_record(document, reader)
    record["eventTime"] = EVENT_TIME_MICROS_20_000_YEARS_ON
    return framing.frame(reader, body(as_long, record))


def _incompressible_text(rng: random.Random, max_event_bytes: int) -> str:
    size = max(OVERSIZED_ADDITIONAL_INFO_BYTES, max_event_bytes + 1)
    # Random, so no compression between producer and broker can hide the size.
    return base64.b64encode(rng.randbytes(size)).decode()[:size]


def _unknown_fingerprint(rng: random.Random, good: bytes) -> bytes:
    ours = {
        single_object_header(
            schema_json(path.relative_to(SCHEMA_DIR).with_suffix("").as_posix())
        )
        for path in [
            SCHEMA_DIR / "alarm_event.avsc",
            *SCHEMA_DIR.glob("history/*.avsc"),
        ]
    }
    while True:
        stranger = good[:2] + rng.randbytes(8)
        if stranger not in ours:
            return stranger + good[10:]


def _registry_cases(
    document: dict[str, Any], reader: dict[str, Any], framing: Framing, case
) -> list[PoisonCase]:
    record = to_record(document, reader)
    good_body = body(reader, record)

    unresolvable = schema_json()
    for definition in unresolvable["fields"]:
        if definition["name"] == "final":
            definition.update(type="string", default="no")
    unresolvable_record = {**record, "final": "yes"}

    without = schema_json()
    without["fields"] = [f for f in without["fields"] if f["name"] != "alarmText"]
    without_record = {k: v for k, v in record.items() if k != "alarmText"}

    return [
        case(
            "unknown-schema-id",
            confluent_frame(UNKNOWN_SCHEMA_ID, good_body),
            DeadLetterReason.UNKNOWN_SCHEMA,
            f"schema id {UNKNOWN_SCHEMA_ID}",
        ),
        case(
            "unresolvable-schema",
            framing.frame(unresolvable, body(unresolvable, unresolvable_record)),
            DeadLetterReason.INCOMPATIBLE_SCHEMA,
            "does not resolve",
        ),
        case(
            "missing-required-field",
            framing.frame(without, body(without, without_record)),
            DeadLetterReason.MISSING_FIELD,
            "no field alarmText",
        ),
    ]


def _hostile_but_valid(
    document: dict[str, Any], reader: dict[str, Any], framing: Framing
) -> PoisonCase:
    name = "sql-and-html-injection"
    hostile = {
        **document,
        **HOSTILE_TEXT,
        **HOSTILE_ATTRIBUTES,
        "iactoken": f"{document['iactoken']}-<b>'inject'</b>",
    }
    record = to_record(hostile, reader)
    value = framing.frame(reader, body(reader, record))
    message = Message(f"poison-{name}".encode(), value, [(CASE_HEADER, name.encode())])
    # The reader fills what the document left out with the schema's defaults.
    defaults = {f["name"]: f["default"] for f in reader["fields"] if "default" in f}
    return PoisonCase(name, message, None, stored={**defaults, **record})
