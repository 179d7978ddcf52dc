"""db/staging.py: one row as a line of COPY text. Rows with nothing to escape
take a shorter path than the others; both must write what COPY reads back as
the same values. The expected lines are written out by hand from PostgreSQL's
COPY text rules (backslash escapes, \\N for NULL, bytea as \\\\x hex)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from db.staging import copy_line

WHEN = datetime(2024, 3, 11, 0, 0, 13, 250, tzinfo=UTC)


@pytest.mark.parametrize(
    ("row", "line"),
    [
        (("a", 7, True, WHEN), "a\t7\tTrue\t2024-03-11 00:00:13.000250+00:00\n"),
        (("", "x y"), "\tx y\n"),
        (("tab\there", "z"), "tab\\there\tz\n"),
        (("two\nlines", "cr\r"), "two\\nlines\tcr\\r\n"),
        (("back\\slash", '{"k":"\\u00e9"}'), 'back\\\\slash\t{"k":"\\\\u00e9"}\n'),
        ((None, "a"), "\\N\ta\n"),
        (("None", "a"), "None\ta\n"),
        ((b"\x00\xff", None), "\\\\x00ff\t\\N\n"),
    ],
    ids=[
        "plain",
        "empty string",
        "tab",
        "newline and cr",
        "backslash",
        "null",
        "the word None",
        "bytes",
    ],  # fmt: skip
)
def test_a_row_becomes_the_copy_line_postgresql_reads_back(row, line):
    assert copy_line(row) == line


def test_a_str_subclass_is_written_as_its_text_not_its_str():
    """A str subclass (an enum, say) may print as something else: it is written
    by value, like any other unusual type, never trusted to the shorter path."""

    class Label(str):
        def __str__(self) -> str:
            return "Label.A"

    assert copy_line((Label("a"), "b")) == "a\tb\n"
