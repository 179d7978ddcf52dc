"""SMTP delivery with smtplib, one connection per email.

Errors are classified here, where their meaning is known:

- transient (`TransientError("smtp", ...)`): connection refused or reset, a
  timeout, a TLS handshake that failed, a disconnect mid-DATA, any 4xx reply;
- permanent (`PermanentFailure`): a 5xx reply to every recipient
  (recipient_refused) or to MAIL FROM or DATA (message_refused);
- a configuration error: the server refuses our credentials or lacks STARTTLS.
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
from pathlib import Path

from alarmd import logs
from alarmd.errors import ConfigurationError, TransientError
from notifier.errors import FailureReason, PermanentFailure

log = logs.get(__name__)


class SmtpSender:
    def __init__(
        self,
        host: str,
        port: int,
        security: str,
        username: str | None,
        password: str | None,
        ca_file: Path | None,
        timeout_s: float,
    ) -> None:
        if not (username or "").isascii() or not (password or "").isascii():
            # smtplib encodes AUTH PLAIN/LOGIN as ASCII and would fail per email.
            raise ConfigurationError(
                "ALARMD_SMTP_USERNAME and ALARMD_SMTP_PASSWORD must be ASCII: "
                "smtplib cannot send other characters in AUTH"
            )
        self._host, self._port, self._security = host, port, security
        self._username, self._password = username, password
        self._timeout_s = timeout_s
        self._tls = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)

    def send(self, sender: str, recipients: list[str], raw: bytes) -> dict[str, str]:
        """Sends one message; blocks for up to a few timeouts. Returns the
        recipients the server refused while accepting the others.

        Raises TransientError, PermanentFailure or ConfigurationError.
        """
        try:
            client = self._connect()
        except (OSError, smtplib.SMTPException) as exc:
            raise _transient("connect", exc) from exc
        try:
            self._handshake(client)
            refused = self._transaction(client, sender, recipients, raw)
        except smtplib.SMTPRecipientsRefused as exc:
            raise _classify_refused(exc.recipients) from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise ConfigurationError(
                f"SMTP server {self._host}:{self._port} refused the credentials of "
                f"ALARMD_SMTP_USERNAME={self._username}: {exc.smtp_code} "
                f"{_text(exc.smtp_error)}"
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise ConfigurationError(
                f"SMTP server {self._host}:{self._port} does not support what "
                f"ALARMD_SMTP_SECURITY={self._security} or AUTH needs: {exc}"
            ) from exc
        except smtplib.SMTPResponseException as exc:
            if 400 <= exc.smtp_code < 500:
                raise _transient("reply", exc) from exc
            raise PermanentFailure(
                FailureReason.MESSAGE_REFUSED,
                f"server replied {exc.smtp_code} {_text(exc.smtp_error)}",
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise _transient("session", exc) from exc
        finally:
            _close(client)
        return {r: f"{code} {_text(text)}" for r, (code, text) in refused.items()}

    @staticmethod
    def _transaction(
        client: smtplib.SMTP, sender: str, recipients: list[str], raw: bytes
    ) -> dict[str, tuple[int, bytes]]:
        """MAIL, one RCPT per recipient, then DATA only when no recipient was
        deferred: a 4xx for any one of them sends nothing yet, so the retry
        reaches everyone once. Returns the recipients refused with a 5xx while
        others were accepted."""
        code, reply = client.mail(sender)
        if code != 250:
            client.rset()
            raise smtplib.SMTPSenderRefused(code, reply, sender)
        replies = {r: client.rcpt(r) for r in recipients}
        refused = {
            r: reply for r, reply in replies.items() if reply[0] not in (250, 251)
        }
        if refused and (
            len(refused) == len(recipients)
            or any(400 <= code < 500 for code, _ in refused.values())
        ):
            client.rset()
            raise smtplib.SMTPRecipientsRefused(refused)
        code, reply = client.data(raw)
        if code != 250:
            client.rset()
            raise smtplib.SMTPDataError(code, reply)
        return refused

    def _connect(self) -> smtplib.SMTP:
        if self._security == "tls":
            return smtplib.SMTP_SSL(
                self._host, self._port, timeout=self._timeout_s, context=self._tls
            )
        return smtplib.SMTP(self._host, self._port, timeout=self._timeout_s)

    def _handshake(self, client: smtplib.SMTP) -> None:
        client.ehlo()
        if self._security == "starttls":
            client.starttls(context=self._tls)
            client.ehlo()
        if self._username:
            client.login(self._username, self._password or "")


def _classify_refused(
    recipients: dict[str, tuple[int, bytes]],
) -> TransientError | PermanentFailure:
    replies = ", ".join(f"{r}: {c} {_text(t)}" for r, (c, t) in recipients.items())
    if any(400 <= code < 500 for code, _ in recipients.values()):
        return TransientError("smtp", f"recipients deferred ({replies})")
    return PermanentFailure(
        FailureReason.RECIPIENT_REFUSED, f"every recipient refused ({replies})"
    )


def _transient(step: str, exc: BaseException) -> TransientError:
    return TransientError("smtp", f"{step}: {type(exc).__name__}: {exc}")


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _close(client: smtplib.SMTP) -> None:
    # The message is accepted or not by now; a failed QUIT changes nothing.
    with contextlib.suppress(OSError, smtplib.SMTPException):
        client.quit()
    with contextlib.suppress(OSError):
        client.close()
