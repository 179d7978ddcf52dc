"""Maps the JSON alarm events collectors emit onto the AlarmEvent schema and back.

Known fields go to their schema fields; every other field goes to `attributes`,
strings as they are and anything else as its JSON text (so `3` becomes "3" and
`true` becomes "true"). `eventTime` is an ISO-8601 timestamp with an offset.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import schemas

_FIELDS = {f["name"]: f for f in schemas._raw(schemas.ALARM_EVENT)["fields"]}
KNOWN_FIELDS = tuple(name for name in _FIELDS if name != "attributes")
REQUIRED_FIELDS = tuple(n for n, f in _FIELDS.items() if "default" not in f)


class MappingError(ValueError):
    """A JSON event that cannot become an AlarmEvent; the message says why."""


def json_to_event(document: dict[str, Any]) -> dict[str, Any]:
    """An AlarmEvent record from one JSON event, ready for the Avro writer."""
    if not isinstance(document, dict):
        raise MappingError(
            f"an alarm event is a JSON object, not {type(document).__name__}"
        )
    missing = [name for name in REQUIRED_FIELDS if name not in document]
    if missing:
        raise MappingError(f"missing required field(s) {', '.join(missing)}")

    record: dict[str, Any] = {
        name: field["default"] for name, field in _FIELDS.items() if "default" in field
    }
    attributes: dict[str, str] = {}
    for name, value in document.items():
        field = _FIELDS.get(name)
        if field is None or name == "attributes":
            attributes[name] = value if isinstance(value, str) else _json_text(value)
        elif name == "eventTime":
            record[name] = parse_time(value)
        elif field["type"] == "boolean":
            if not isinstance(value, bool):
                raise MappingError(f"{name} must be true or false, not {value!r}")
            record[name] = value
        else:
            record[name] = value if isinstance(value, str) else _json_text(value)
    record["attributes"] = attributes
    _require_unicode([*record.items(), *attributes.items()])
    return record


def event_to_json(record: dict[str, Any]) -> dict[str, Any]:
    """The JSON event a record came from, with attributes merged back in.

    Attribute values come back as the strings they travelled as.
    """
    document = {k: v for k, v in record.items() if k != "attributes"}
    document["eventTime"] = record["eventTime"].isoformat()
    document.update(record.get("attributes", {}))
    return document


def _require_unicode(pairs: list[tuple[str, Any]]) -> None:
    """JSON's \\u escapes can spell half a surrogate pair, which is not text and
    which no Avro string (UTF-8) can hold."""
    for name, value in pairs:
        for text in (name, value) if isinstance(value, str) else (name,):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise MappingError(
                    f"field {name!r} holds {text[exc.start]!r}, half of a surrogate pair, "
                    "which is not Unicode text; the line's \\u escapes are broken"
                ) from exc


def parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise MappingError(f"eventTime must be an ISO-8601 string, not {value!r}")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise MappingError(f"eventTime {value!r} is not ISO-8601: {exc}") from exc
    if moment.tzinfo is None:
        raise MappingError(f"eventTime {value!r} has no UTC offset")
    try:
        return moment.astimezone(UTC)
    except OverflowError as exc:
        raise MappingError(
            f"eventTime {value!r} falls outside the years 1 to 9999 in UTC"
        ) from exc


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
