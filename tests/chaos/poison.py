"""The poison messages the run mixes into its input, each with the dead-letter
reason it must end with (`alarmd.errors.DeadLetterReason`).

The set is the poison corpus's (`tests/poison.py`) for single-object framing,
so the run and the dead-letter tier agree on what each kind of bad input
becomes.
"""

from __future__ import annotations

from dataclasses import dataclass

from alarmd.errors import DeadLetterReason
from tests import poison


@dataclass(frozen=True)
class Poison:
    kind: str
    key: bytes | None
    value: bytes | None
    reason: DeadLetterReason


def poison_set(document: dict) -> list[Poison]:
    """One message per permanent error kind, built from a good event."""
    cases = poison.poison(poison.corpus(document, poison.SingleObjectFraming()))
    return [
        Poison(case.name, case.message.key, case.message.value, case.reason)
        for case in cases
        if case.reason is not None
    ]
