"""Staged COPY: a batch's rows reach PostgreSQL in one COPY into a temporary
table of the session, and one INSERT ... SELECT moves them into the real table.

COPY is PostgreSQL's cheapest way in for many rows: no SQL text to build per
row in Python, none to parse on the server. The staging step keeps what COPY
alone lacks, ON CONFLICT and RETURNING, so a redelivered row is still skipped
and the caller still learns which rows are new.

Values travel in COPY's text format: a backslash, tab, newline or carriage
return in a string is escaped, None is NULL, bytes go as bytea hex. A NUL
character cannot travel at all; the decoder refuses such records before they get
here (`schemas.decoding.validate`), and PostgreSQL would refuse the COPY with
SQLSTATE 22021 if one slipped through.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from psycopg2.extensions import cursor as Cursor

# COPY data is handed to the server in pieces of this size.
COPY_CHUNK_BYTES = 1 << 20


def create(cur: Cursor, staging: str, table: str, columns: str) -> None:
    """Makes sure this session has the staging table: `columns` of `table`, with
    their types, emptied at every commit. Cheap once it exists."""
    cur.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS AS "
        f"SELECT {columns} FROM {table} WITH NO DATA"
    )


def copy_lines(cur: Cursor, staging: str, columns: str, lines: Iterable[str]) -> None:
    """COPYs lines made by `copy_line` into the staging table, in one round trip."""
    cur.copy_expert(
        f"COPY {staging} ({columns}) FROM STDIN",
        io.StringIO("".join(lines)),
        size=COPY_CHUNK_BYTES,
    )


def insert_sql(staging: str, table: str, columns: str, tail: str) -> str:
    """An INSERT into `table` of everything staged, emptying the staging table
    in the same statement; `tail` is its ON CONFLICT and RETURNING clauses."""
    return (
        f"WITH staged AS (DELETE FROM {staging} RETURNING {columns}) "
        f"INSERT INTO {table} ({columns}) SELECT {columns} FROM staged {tail}"
    )


def copy_line(row: Sequence[Any]) -> str:
    """One row in COPY's text format, with its newline.

    Most rows hold nothing to escape and no NULL or bytes: for those, each
    value's str() is its COPY text, and one pass over the joined line shows
    whether that is so. Any other row is written value by value."""
    line = "\t".join(map(str, row))
    if not is_plain(line, len(row)) or not _PLAIN_TYPES.issuperset(map(type, row)):
        return "\t".join(map(_field, row)) + "\n"
    return line + "\n"


def is_plain(joined: str, values: int) -> bool:
    """True when `joined`, the text of `values` values joined by tabs, is their
    COPY text as it is: none holds a backslash, tab, newline or carriage return."""
    return (
        not ("\\" in joined or "\n" in joined or "\r" in joined)
        and joined.count("\t") == values - 1
    )


# Types whose str() is their COPY text, when it holds nothing to escape.
_PLAIN_TYPES = frozenset({str, int, bool, float, datetime})


def _field(value: Any) -> str:
    if isinstance(value, str):
        # The backslash first, or the escapes added after it would be doubled.
        return (
            value.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    if value is None:
        return "\\N"
    if isinstance(value, bytes | bytearray | memoryview):
        # bytea's hex input, \x..., with its backslash escaped for COPY.
        return "\\\\x" + bytes(value).hex()
    return str(value)
