"""The optional webhook channel: a digest posted as JSON with requests.

Errors are classified here: no answer, a timeout or a 5xx reply is transient
(TransientError "webhook", retried like SMTP); any other 4xx reply is permanent
(PermanentFailure webhook_refused). URLs are secrets and never logged or put in
an error; the route name is.
"""

from __future__ import annotations

import requests

from alarmd.errors import TransientError
from notifier.errors import FailureReason, PermanentFailure

IDEMPOTENCY_HEADER = "Idempotency-Key"
# Most characters of a refusal's body kept in the error detail.
DETAIL_MAX_CHARS = 300


class WebhookSender:
    def __init__(self, timeout_s: float) -> None:
        self._timeout_s = timeout_s
        self._session = requests.Session()

    def post(self, route: str, url: str, payload: dict, idempotency_key: str) -> None:
        """Posts one digest. Blocks up to the timeout twice (connect, read).
        Raises TransientError or PermanentFailure(webhook_refused)."""
        try:
            response = self._session.post(
                url,
                json=payload,
                headers={IDEMPOTENCY_HEADER: idempotency_key},
                timeout=self._timeout_s,
            )
        except requests.RequestException as exc:
            raise TransientError(
                "webhook",
                f"posting to the webhook of route {route!r} failed: "
                f"{type(exc).__name__}; is the endpoint up and reachable?",
            ) from exc

        status = response.status_code
        if status < 400:
            return
        body = " ".join(response.text.split())[:DETAIL_MAX_CHARS]
        detail = f"the webhook of route {route!r} answered {status}: {body}"
        if status >= 500:
            raise TransientError("webhook", detail)
        raise PermanentFailure(FailureReason.WEBHOOK_REFUSED, detail)

    def close(self) -> None:
        self._session.close()
