"""The poison messages the run mixes into its input, each with the dead-letter
reason it must end with (`alarmd.errors.DeadLetterReason`).

The set is the poison corpus (`tests/poison.py`) in the daemon's default
single-object framing, so the run, the dead-letter tier and the unit tests
agree on what each kind of bad input becomes. The corpus's hostile but valid
event is left out: it is not poison, and the run counts only its own events.
"""

from __future__ import annotations

from dataclasses import dataclass

from alarmd.errors import DeadLetterReason
from tests.poison import SingleObjectFraming, corpus, poison


@dataclass(frozen=True)
class Poison:
    kind: str
    key: bytes | None
    value: bytes | None
    reason: DeadLetterReason


def poison_set(document: dict) -> list[Poison]:
    """One message per case of the corpus that must be dead-lettered."""
    return [
        Poison(case.name, case.message.key, case.message.value, case.reason)
        for case in poison(corpus(document, SingleObjectFraming()))
        if case.reason is not None
    ]
