"""The poison messages the run mixes into its input: the dead-letter cases of
the poison corpus (`tests/poison.py`) in single-object framing, each with the
reason it must end with and a fragment its detail must contain.

The corpus's valid-but-hostile event is left out: it is no poison, and the
run's expectations come from the replayed sample alone.
"""

from __future__ import annotations

from tests.poison import PoisonCase, SingleObjectFraming, corpus, poison


def poison_set(document: dict) -> list[PoisonCase]:
    """Every case that must be dead-lettered, built from a good event."""
    return poison(corpus(document, SingleObjectFraming()))
