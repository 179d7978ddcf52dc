"""db/outbox.py: outbox headers as they are kept in JSONB and read back by the
sweep, which republishes them after a crash."""

from __future__ import annotations

import json

from db.outbox import _decode_headers, _encode_headers


def test_header_values_survive_storage_byte_for_byte_and_null_stays_null():
    """Arbitrary bytes, an empty value and a null value come back from the JSONB
    form exactly, so a republished dead letter carries its original headers."""
    headers = [("raw", bytes(range(256))), ("empty", b""), ("null", None)]

    stored = json.loads(json.dumps(_encode_headers(headers)))

    assert _decode_headers(stored) == headers
