"""The poison messages the run mixes into its input, each with the dead-letter
reason it must end with (`alarmd.errors.DeadLetterReason`).

The set is the dead-letter tier's own (`bad_inputs`), so the run and that tier
agree on what each kind of bad input becomes; this module is the one place to
point at a larger corpus.
"""

from __future__ import annotations

from dataclasses import dataclass

from alarmd.errors import DeadLetterReason
from tests.integration.test_dead_letter import bad_inputs


@dataclass(frozen=True)
class Poison:
    kind: str
    key: bytes
    value: bytes | None
    reason: DeadLetterReason


def poison_set(document: dict) -> list[Poison]:
    """One message per permanent error kind, built from a good event."""
    return [
        Poison(bad.kind, bad.key, bad.value, DeadLetterReason(bad.reason))
        for bad in bad_inputs(document)
    ]
