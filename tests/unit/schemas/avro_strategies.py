"""Hypothesis strategies read off the Avro schema files, so a field added to
`schemas/alarm_event.avsc` is generated, encoded and checked with no change here.

- `records(schema)`: AlarmEvent records as a collector writes them, valid for
  alarmd (required text not blank, no NUL character, eventTime a UTC instant).
- `documents(schema)`: JSON alarm events as collectors emit them: the schema's
  fields with JSON values of their type, some optional ones left out, and extra
  fields of any JSON value.

A field type with no rule here fails loudly, naming the type, so a new kind of
field cannot go untested by accident.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

# PostgreSQL text cannot hold NUL, so valid alarm text never has it (the decoder
# dead-letters it; a separate property checks that).
_CHARACTERS = st.characters(codec="utf-8", exclude_characters="\x00")
TEXT = st.text(_CHARACTERS, max_size=40)
REQUIRED_TEXT = st.text(_CHARACTERS, min_size=1, max_size=40).filter(str.strip)
# The range Python's datetime and the Avro reader both hold, minus a day at each
# end, so that any UTC offset still lands inside it.
FIRST_INSTANT = datetime(1, 1, 2)
LAST_INSTANT = datetime(9999, 12, 30)
INSTANTS = st.datetimes(FIRST_INSTANT, LAST_INSTANT, timezones=st.just(UTC))
OFFSETS = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3)
    ),
    max_leaves=6,
)


def fields(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in schema["fields"]}


def required(field: dict[str, Any]) -> bool:
    """A field without a default must be sent; alarmd also wants it not blank."""
    return "default" not in field


def value_of(avro_type: Any, *, must_have_text: bool = False) -> st.SearchStrategy:
    """Values of one Avro type, as fastavro writes them."""
    if avro_type == "string":
        return REQUIRED_TEXT if must_have_text else TEXT
    if avro_type == "boolean":
        return st.booleans()
    if avro_type == "long":
        return st.integers(-(2**63), 2**63 - 1)
    if avro_type == "int":
        return st.integers(-(2**31), 2**31 - 1)
    if isinstance(avro_type, dict):
        if avro_type.get("logicalType") == "timestamp-micros":
            return INSTANTS
        if avro_type.get("type") == "map":
            return st.dictionaries(TEXT, value_of(avro_type["values"]), max_size=4)
    raise TypeError(
        f"no Hypothesis strategy for Avro type {avro_type!r}; add one to "
        "tests/unit/schemas/avro_strategies.py so the new field is covered"
    )


def records(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Complete records of the schema, every field drawn from its type."""
    return st.fixed_dictionaries(
        {
            name: value_of(field["type"], must_have_text=required(field))
            for name, field in fields(schema).items()
        }
    )


def _json_value(field: dict[str, Any]) -> st.SearchStrategy:
    avro_type = field["type"]
    if isinstance(avro_type, dict) and avro_type.get("logicalType") == (
        "timestamp-micros"
    ):
        return st.builds(
            lambda instant, offset: instant.astimezone(offset).isoformat(),
            INSTANTS,
            OFFSETS,
        )
    if avro_type == "string":
        # Collectors send some text fields as numbers; they travel as JSON text.
        return (REQUIRED_TEXT if required(field) else TEXT) | st.integers()
    return value_of(avro_type)


def documents(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """JSON alarm events: required fields always, optional ones sometimes, and
    extra fields (any JSON value) that are not the schema's."""
    known = {n: f for n, f in fields(schema).items() if n != "attributes"}
    extras = st.dictionaries(
        TEXT.filter(lambda name: name not in known), JSON_VALUES, max_size=4
    )
    return st.builds(
        lambda always, sometimes, extra: {**extra, **always, **sometimes},
        st.fixed_dictionaries(
            {n: _json_value(f) for n, f in known.items() if required(f)}
        ),
        st.fixed_dictionaries(
            {},
            optional={n: _json_value(f) for n, f in known.items() if not required(f)},
        ),
        extras,
    )
