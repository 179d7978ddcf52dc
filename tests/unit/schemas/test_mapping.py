"""schemas/mapping.py: JSON alarm events onto the AlarmEvent schema and back,
checked on every line of the shared sample file."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import schemas
from schemas.decoding import SingleObjectDecoder
from schemas.encoding import single_object
from schemas.mapping import MappingError, event_to_json, json_to_event


@pytest.fixture
def schema_fields(raw_schema) -> dict[str, dict[str, Any]]:
    """The AlarmEvent fields by name, read from the schema file."""
    return {f["name"]: f for f in raw_schema("alarm_event")["fields"]}


def _minimal_document() -> dict[str, Any]:
    return {
        "iactoken": "3100017",
        "alarmText": "BCCH MISSING",
        "eventTime": "2024-03-11T01:00:15+01:00",
    }


def _mismatches(document: dict[str, Any], back: dict[str, Any], fields) -> list[str]:
    """Where the JSON that came back differs from the line it started as."""
    problems = []
    for name, value in document.items():
        if name not in back:
            problems.append(f"{name} is missing")
        elif name == "eventTime":
            if datetime.fromisoformat(back[name]) != datetime.fromisoformat(value):
                problems.append(f"eventTime {back[name]} is not {value}")
        elif isinstance(value, str) or (
            name in fields and fields[name]["type"] == "boolean"
        ):
            if back[name] != value or type(back[name]) is not type(value):
                problems.append(f"{name}: {back[name]!r} is not {value!r}")
        elif back[name] != json.dumps(value):
            problems.append(f"{name}: {back[name]!r} is not the JSON text of {value!r}")
    for name in set(back) - set(document):
        if name not in fields or back[name] != fields[name]["default"]:
            problems.append(f"{name}={back[name]!r} was not in the line")
    return problems


def test_every_sample_line_maps_encodes_decodes_and_maps_back(
    sample_lines, schema_fields
):
    """Each line of the sample survives JSON -> Avro single-object -> JSON with
    every field kept: strings as they were, numbers and booleans outside the
    schema as their JSON text, eventTime as the same instant."""
    schema = schemas.load(schemas.ALARM_EVENT)
    decode = SingleObjectDecoder()
    problems: dict[int, list[str]] = {}

    for number, line in sample_lines:
        document = json.loads(line)
        decoded = decode(single_object(schema, json_to_event(document)))
        found = _mismatches(document, event_to_json(decoded), schema_fields)
        if found:
            problems[number] = found

    assert problems == {}


def test_fields_outside_the_schema_go_to_attributes(sample_lines, schema_fields):
    """Exactly the keys of a line that the schema does not name become attributes."""
    problems = {}

    for number, line in sample_lines:
        document = json.loads(line)
        extras = {k for k in document if k not in schema_fields}
        attributes = set(json_to_event(document)["attributes"])
        if attributes != extras:
            problems[number] = sorted(attributes ^ extras)

    assert problems == {}


def test_event_time_is_kept_in_utc_to_the_microsecond():
    """An offset timestamp becomes the same instant in UTC, microseconds kept."""
    document = {**_minimal_document(), "eventTime": "2024-03-11T09:00:13.123457+08:00"}

    event_time = json_to_event(document)["eventTime"]

    assert event_time == datetime(2024, 3, 11, 1, 0, 13, 123457, tzinfo=UTC)
    assert event_time.utcoffset() == timedelta(0)


def test_event_time_z_suffix_is_utc():
    """A trailing Z means UTC."""
    document = {**_minimal_document(), "eventTime": "2024-03-11T00:00:15Z"}

    event_time = json_to_event(document)["eventTime"]

    assert event_time == datetime(2024, 3, 11, 0, 0, 15, tzinfo=UTC)


def test_fields_the_line_does_not_carry_take_the_schema_defaults(schema_fields):
    """Optional fields left out of the JSON get their defaults from the schema."""
    record = json_to_event(_minimal_document())

    defaults = {n: f["default"] for n, f in schema_fields.items() if "default" in f}
    assert {name: record[name] for name in defaults} == defaults


def test_known_string_field_given_a_number_keeps_its_json_text():
    """alarmNumber 7600 (a JSON number) is stored as the text "7600"."""
    record = json_to_event({**_minimal_document(), "alarmNumber": 7600})

    assert record["alarmNumber"] == "7600"


def test_nested_extra_value_keeps_its_json_text():
    """An extra field holding an object travels as its JSON text."""
    record = json_to_event({**_minimal_document(), "vesDomain": {"b": 1, "a": [True]}})

    assert json.loads(record["attributes"]["vesDomain"]) == {"b": 1, "a": [True]}


@pytest.mark.parametrize("missing", ["iactoken", "alarmText", "eventTime"])
def test_missing_required_field_raises_mapping_error(missing, schema_fields):
    """A JSON event without a field the schema requires cannot be mapped."""
    assert "default" not in schema_fields[missing]
    document = _minimal_document()
    del document[missing]

    with pytest.raises(MappingError, match=missing):
        json_to_event(document)


@pytest.mark.parametrize("field", ["final", "parentalarm"])
@pytest.mark.parametrize("value", ["true", 1, 0, None, "false"])
def test_non_boolean_flag_raises_mapping_error(field, value):
    """final and parentalarm must be JSON booleans; near-misses are refused."""
    with pytest.raises(MappingError, match=field):
        json_to_event({**_minimal_document(), field: value})


@pytest.mark.parametrize(
    "event_time",
    [
        pytest.param("2024-03-11T01:00:15", id="no-offset"),
        pytest.param("11/03/2024 01:00:15", id="not-iso"),
        pytest.param(1710115215, id="a-number"),
        pytest.param("0001-01-01T00:00:00+05:00", id="before-year-1-in-utc"),
        pytest.param("9999-12-31T23:00:00-05:00", id="after-year-9999-in-utc"),
    ],
)
def test_unusable_event_time_raises_mapping_error(event_time):
    """eventTime must be an ISO-8601 string with a UTC offset."""
    with pytest.raises(MappingError, match="eventTime"):
        json_to_event({**_minimal_document(), "eventTime": event_time})


def test_a_line_that_is_not_an_object_is_refused_as_such():
    """A JSON array is named as the wrong kind of document, not as missing fields."""
    from schemas.mapping import MappingError, json_to_event

    with pytest.raises(MappingError, match="JSON object, not list"):
        json_to_event([1, 2])


@pytest.mark.parametrize(
    "line",
    [
        pytest.param('"iactoken": "31\\ud800"', id="in-a-field"),
        pytest.param('"vendorNote\\udc80": "x"', id="in-an-extra-name"),
        pytest.param('"dn": {"cell": "\\udbff"}', id="in-a-nested-value"),
    ],
)
def test_a_lone_surrogate_from_a_json_escape_raises_mapping_error(line):
    """Half a surrogate pair (a broken \\u escape) is not text Avro can hold, so
    the line is refused instead of failing in the encoder."""
    document = {**_minimal_document(), **json.loads("{" + line + "}")}

    with pytest.raises(MappingError, match="surrogate"):
        json_to_event(document)
