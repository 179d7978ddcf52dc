"""schemas/mapping.py, by property: any JSON object maps onto the AlarmEvent
schema or is refused with a MappingError, and a JSON alarm event survives
JSON -> Avro -> decode -> JSON in every framing with every field kept.

Documents are drawn from the schema file (`avro_strategies.py`), so a field
added to `schemas/alarm_event.avsc` is covered without a change here. The
expected result is worked out here from the document, not by the mapping.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.mapping import MappingError, event_to_json, json_to_event
from tests.avro_wire import schema_json

from .avro_strategies import JSON_VALUES, TEXT, documents, fields
from .framings import ENCODINGS, wire

READER = schema_json()
READER_FIELDS = fields(READER)
KNOWN = [name for name in READER_FIELDS if name != "attributes"]
# Lone surrogates: json.loads accepts "\ud800", and such text is not Unicode.
ANY_TEXT = TEXT | st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3)
ANY_JSON = JSON_VALUES | ANY_TEXT


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _differences(document: dict[str, Any], back: dict[str, Any]) -> list[str]:
    """Where the JSON that came back differs from the document it started as."""
    problems = []
    for name, value in document.items():
        field = READER_FIELDS.get(name)
        if name not in back:
            problems.append(f"{name} is missing")
        elif name == "eventTime":
            if datetime.fromisoformat(back[name]) != datetime.fromisoformat(value):
                problems.append(f"eventTime {back[name]} is not the instant {value}")
        elif isinstance(value, str) or (field and field["type"] == "boolean"):
            if back[name] != value or type(back[name]) is not type(value):
                problems.append(f"{name}: {back[name]!r} is not {value!r}")
        elif _canonical(json.loads(back[name])) != _canonical(value):
            problems.append(f"{name}: {back[name]!r} is not the JSON of {value!r}")
    for name in set(back) - set(document):
        if name not in READER_FIELDS or back[name] != READER_FIELDS[name]["default"]:
            problems.append(f"{name}={back[name]!r} was not in the document")
    return problems


@pytest.mark.parametrize("encoding_name", ENCODINGS)
@given(document=documents(READER))
def test_a_json_event_comes_back_with_every_field(encoding_name, document):
    """JSON -> AlarmEvent -> Avro in the framing -> decoded -> JSON gives the
    document back: text as it was, flags as flags, other values as their JSON,
    eventTime as the same instant, absent fields as the schema's defaults."""
    chosen = wire(encoding_name)

    decoded = chosen.decode(chosen.frame(json_to_event(document)))

    assert _differences(document, event_to_json(decoded)) == []


@given(
    document=st.builds(
        lambda event, changes: {**event, **changes},
        st.one_of(st.just({}), documents(READER)),
        st.dictionaries(st.sampled_from(KNOWN) | ANY_TEXT, ANY_JSON, max_size=6),
    )
)
def test_any_json_object_maps_to_a_writable_record_or_is_refused(document):
    """Whatever a JSON line holds, json_to_event returns a record the Avro writer
    accepts, or raises MappingError saying why; never another exception, which
    would stop `alarmd produce` instead of reporting the line."""
    try:
        record = json_to_event(document)
    except MappingError as exc:
        assert str(exc).strip()
        return

    wire("schemaless").frame(record)
    assert fastavro.validation.validate(record, fastavro.parse_schema(READER))
