"""Where a digest goes: its recipients, templates and webhook, chosen per route.

A route is named by the group key's values joined by "/" (for the default
grouping, `customer-a/BCF FAULTY`) or by the customer alone; the full key wins
over the customer, and a digest matching neither gets the global settings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TypeVar

from notifier.grouping import Digest

T = TypeVar("T")


def route_names(digest: Digest) -> tuple[str, str]:
    """The names a digest's route may go by, most specific first."""
    key = "/".join(str(v) for v in json.loads(digest.key_text).values())
    return key, digest.received[0].request.customer


def route_of(table: Mapping[str, T], digest: Digest) -> str | None:
    """The name under which `table` holds this digest's route, if any."""
    return next((name for name in route_names(digest) if name in table), None)


def lookup(table: Mapping[str, T], digest: Digest, default: T) -> T:
    name = route_of(table, digest)
    return table[name] if name is not None else default
