"""Events written with an older and with a newer version of the AlarmEvent
schema, end to end."""

from __future__ import annotations

import json
from collections import Counter

import schemas

from .avro_framing import alarm_event_json, body, single_object, to_record
from .sample import expect

V1_SCHEMA_PATH = schemas.SCHEMA_DIR / "history" / "alarm_event-v1.avsc"
EXTRA_FIELD = "siteRegion"
EXTRA_VALUE = "region-only-in-the-newer-writer"


def stored_summary(stack) -> dict[str, int]:
    counts = stack.counts()
    return {
        "alarm_events": counts["alarm_events"],
        "alarm_cycles": counts["alarm_cycles"],
        "processing_errors": counts["processing_errors"],
        "outbox_pending": counts["outbox_pending"],
    }


def test_events_from_the_older_writer_schema_are_stored_with_defaults(
    stack, sample_lines
):
    """Single-object events written with schemas/history/alarm_event-v1.avsc are
    recognised by fingerprint and stored with the defaults of the fields v1 lacks."""
    v1_json = json.loads(V1_SCHEMA_PATH.read_text(encoding="utf-8"))
    v1 = schemas.parse(v1_json)
    v1_fields = [f["name"] for f in v1_json["fields"]]
    documents = [json.loads(line) for line in sample_lines]
    messages = [
        (d["iactoken"].encode(), single_object(v1, to_record(d, v1_json)), [])
        for d in documents
    ]
    # What a v1 collector could say: only the v1 fields of each event.
    expected = expect(
        [json.dumps({k: d[k] for k in v1_fields if k in d}) for d in documents]
    )

    stack.produce_raw(messages)
    stack.run_daemon_until_idle()

    assert stored_summary(stack) == {
        "alarm_events": expected.events,
        "alarm_cycles": expected.cycles,
        "processing_errors": 0,
        "outbox_pending": 0,
    }
    defaults = stack.query(
        "SELECT DISTINCT iac_alarm_id, additional_fields::text FROM alarm_events"
    )
    assert defaults == [("", "{}")]


def test_events_from_a_newer_writer_schema_are_stored_without_the_extra_field(
    stack, sample, sample_lines, tmp_path
):
    """Schemaless events written with our schema plus a field we do not know are
    stored in full, and the extra field is dropped, not kept anywhere."""
    newer_json = alarm_event_json()
    after_event_time = [f["name"] for f in newer_json["fields"]].index("eventTime") + 1
    newer_json["fields"].insert(
        after_event_time, {"name": EXTRA_FIELD, "type": "string", "default": ""}
    )
    schema_file = tmp_path / "alarm_event-newer.avsc"
    schema_file.write_text(json.dumps(newer_json), encoding="utf-8")
    newer = schemas.parse(newer_json)
    messages = []
    for line in sample_lines:
        document = json.loads(line)
        record = {**to_record(document, newer_json), EXTRA_FIELD: EXTRA_VALUE}
        messages.append((document["iactoken"].encode(), body(newer, record), []))

    stack.produce_raw(messages)
    stack.run_daemon_until_idle(
        extra_env={
            "ALARMD_INPUT_ENCODING": "schemaless",
            "ALARMD_WRITER_SCHEMA_FILE": str(schema_file),
        }
    )

    assert stored_summary(stack) == {
        "alarm_events": sample.events,
        "alarm_cycles": sample.cycles,
        "processing_errors": 0,
        "outbox_pending": 0,
    }
    stored_tokens = {row[0] for row in stack.query("SELECT iactoken FROM alarm_events")}
    assert stored_tokens == sample.tokens
    mentions = stack.query(
        "SELECT count(*) FROM alarm_events e "
        "WHERE e.additional_fields ? %s OR row_to_json(e)::text LIKE %s",
        (EXTRA_FIELD, f"%{EXTRA_VALUE}%"),
    )
    assert mentions == [(0,)]
    # The fields after the extra one, attributes last, were read in full.
    known = {f["name"] for f in alarm_event_json()["fields"]}
    distinct = {json.dumps(json.loads(line), sort_keys=True) for line in sample_lines}
    expected_keys = Counter(
        frozenset(k for k in json.loads(d) if k not in known) for d in distinct
    )
    stored = stack.query("SELECT additional_fields FROM alarm_events")
    assert Counter(frozenset(fields) for (fields,) in stored) == expected_keys
