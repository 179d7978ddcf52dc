"""Rendering a digest into one email: jinja2 templates compiled once, a
multipart/alternative message built with the standard library's email package.

Only three things reach a header: the subject (rendered, then stripped of
control characters), the configured addresses (validated) and a Message-ID made
of hex digits. HTML is autoescaped, so alarm text arrives as text.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, getaddresses, parseaddr
from pathlib import Path

import jinja2

from alarmd.errors import ConfigurationError
from notifier.errors import FailureReason, PermanentFailure
from notifier.grouping import Digest
from notifier.request import NotificationRequest

# Installed from a wheel, templates/ sits inside the package (pyproject's
# package-dir); in a checkout or an editable install it is the top-level folder.
_PACKAGED_TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
BUILTIN_TEMPLATE_DIR = (
    _PACKAGED_TEMPLATE_DIR
    if _PACKAGED_TEMPLATE_DIR.is_dir()
    else Path(__file__).resolve().parents[1] / "templates"
)
SUBJECT_TEMPLATE = "subject.txt.j2"
TEXT_TEMPLATE = "body.txt.j2"
HTML_TEMPLATE = "body.html.j2"
TRUNCATION_MARKER = "… [truncated]"
SUBJECT_MAX_CHARS = 200
EVENT_TIME_FORMAT = "%Y-%m-%d %H:%M:%S UTC"
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Email:
    message_id: str
    subject: str
    sender: str
    recipients: tuple[str, ...]
    raw: bytes


@dataclass(frozen=True, slots=True)
class Row:
    """One table row, every field already cut to the configured length."""

    ticket_id: str
    alarm_text: str
    node_name: str
    iactoken: str
    event_time: str
    customer: str
    nodegroup: str


class Renderer:
    def __init__(
        self,
        template_dir: Path | None,
        sender: str,
        message_id_domain: str,
        max_rows: int,
        field_max_chars: int,
        route_template_dir: Path | None = None,
    ) -> None:
        """Compiles the templates, each from the first of `route_template_dir`,
        `template_dir` and templates/ that has it; raises ConfigurationError when
        one is missing or does not parse, or when the sender is not an address."""
        dirs = [
            str(d)
            for d in (route_template_dir, template_dir, BUILTIN_TEMPLATE_DIR)
            if d is not None
        ]
        loader = jinja2.FileSystemLoader(dirs)
        text_env = jinja2.Environment(
            loader=loader, autoescape=False, undefined=jinja2.StrictUndefined
        )
        html_env = jinja2.Environment(
            loader=loader, autoescape=True, undefined=jinja2.StrictUndefined
        )
        try:
            self._subject = text_env.get_template(SUBJECT_TEMPLATE)
            self._text = text_env.get_template(TEXT_TEMPLATE)
            self._html = html_env.get_template(HTML_TEMPLATE)
        except jinja2.TemplateError as exc:
            raise ConfigurationError(
                f"email template {getattr(exc, 'name', '') or exc} in {dirs} does not "
                f"load: {exc}"
            ) from exc
        try:
            self._sender = header_address(sender)
        except PermanentFailure as exc:
            raise ConfigurationError(f"ALARMD_NOTIFY_FROM: {exc.detail}") from exc
        self._domain = message_id_domain
        self._max_rows = max_rows
        self._field_max = field_max_chars

    @property
    def envelope_sender(self) -> str:
        return parseaddr(self._sender)[1]

    def render(self, digest: Digest, recipients: list[str]) -> Email:
        """Renders the email of a digest. Raises PermanentFailure (template_error,
        invalid_address); never blocks."""
        to = tuple(header_address(r) for r in recipients)
        if not to:
            raise PermanentFailure(
                FailureReason.INVALID_ADDRESS, "the group has no recipients"
            )
        requests = sorted(
            (r.request for r in digest.received), key=lambda r: r.event_time
        )
        context = self._context(digest, requests)
        try:
            subject = clean_header(self._subject.render(context))
            context["subject"] = subject
            text = self._text.render(context)
            html = self._html.render(context)
        except jinja2.TemplateError as exc:
            raise PermanentFailure(
                FailureReason.TEMPLATE_ERROR, f"rendering the email failed: {exc}"
            ) from exc

        message_id = stable_message_id(
            digest.key_text, [r.event_id for r in requests], self._domain
        )
        message = EmailMessage(policy=SMTP)
        message["Subject"] = subject
        message["From"] = self._sender
        message["To"] = ", ".join(to)
        message["Date"] = format_datetime(datetime.now(UTC))
        message["Message-ID"] = message_id
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        return Email(message_id, subject, self._sender, to, message.as_bytes())

    def payload(self, digest: Digest, email: Email) -> dict:
        """The digest as the JSON a webhook receives: the email's subject and
        Message-ID, the group, and the same rows as the email's table."""
        requests = sorted(
            (r.request for r in digest.received), key=lambda r: r.event_time
        )
        context = self._context(digest, requests)
        return {
            "message_id": email.message_id,
            "subject": email.subject,
            "group": context["group"],
            "customer": context["customer"],
            "nodegroups": context["nodegroups"],
            "total": context["total"],
            "more": context["more"],
            "alarms": [dataclasses.asdict(row) for row in context["alarms"]],
        }

    def _context(self, digest: Digest, requests: list[NotificationRequest]) -> dict:
        shown = [self._row(r) for r in requests[: self._max_rows]]
        nodegroups = sorted({r.nodegroup for r in requests if r.nodegroup})
        return {
            "alarms": shown,
            "first": shown[0],
            "total": len(requests),
            "more": max(len(requests) - self._max_rows, 0),
            "customer": self._cut(requests[0].customer),
            "nodegroups": [self._cut(g) for g in nodegroups],
            "group": json.loads(digest.key_text),
        }

    def _row(self, r: NotificationRequest) -> Row:
        return Row(
            ticket_id=self._cut(r.ticket_id),
            alarm_text=self._cut(r.alarm_text),
            node_name=self._cut(r.node_name),
            iactoken=self._cut(r.iactoken),
            event_time=r.event_time.astimezone(UTC).strftime(EVENT_TIME_FORMAT),
            customer=self._cut(r.customer),
            nodegroup=self._cut(r.nodegroup),
        )

    def _cut(self, value: str) -> str:
        return truncate(value, self._field_max)


def truncate(value: str, limit: int) -> str:
    """The value, or its first characters and a marker when it is over `limit`."""
    if len(value) <= limit:
        return value
    return value[: max(limit - len(TRUNCATION_MARKER), 1)] + TRUNCATION_MARKER


def clean_header(value: str) -> str:
    """One line for a header: control characters (CR, LF, NUL, ...) become spaces,
    runs of whitespace one space, and the length is capped.

    `=?` becomes `= ?`, so alarm text can never be read as an RFC 2047 encoded
    word: the email package would decode one back into CR/LF and a header of
    the sender's choosing."""
    printable = "".join(
        " " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch
        for ch in value
    )
    one_line = _SPACES.sub(" ", printable).strip().replace("=?", "= ?")
    return truncate(one_line, SUBJECT_MAX_CHARS)


def header_address(value: str) -> str:
    """A validated address for a header, e.g. `NOC <noc@example.com>`. Raises
    PermanentFailure(invalid_address) for anything else, including CR/LF."""
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise PermanentFailure(
            FailureReason.INVALID_ADDRESS,
            f"address {value!r} holds control characters",
        )
    parsed = getaddresses([value])
    if len(parsed) != 1:
        raise PermanentFailure(
            FailureReason.INVALID_ADDRESS, f"{value!r} is not one address"
        )
    name, addr = parsed[0]
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain or " " in addr:
        raise PermanentFailure(
            FailureReason.INVALID_ADDRESS,
            f"{value!r} is not an address of the form local@domain",
        )
    try:
        return str(Address(display_name=name, addr_spec=addr))
    except (ValueError, IndexError) as exc:
        raise PermanentFailure(
            FailureReason.INVALID_ADDRESS, f"{value!r} does not parse: {exc}"
        ) from exc


def stable_message_id(key_text: str, event_ids: list[str], domain: str) -> str:
    """The same group key and requests always give the same Message-ID."""
    digest = hashlib.sha256(
        "\n".join([key_text, *sorted(event_ids)]).encode("utf-8")
    ).hexdigest()
    return f"<{digest[:40]}@{domain}>"
