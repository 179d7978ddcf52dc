"""A real SMTP server for the tests: aiosmtpd on 127.0.0.1, STARTTLS required,
AUTH required, with a throwaway self-signed certificate."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import signal
import socket
import ssl
import threading
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

USERNAME = "alarmd"
PASSWORD = "s3cret-pw"
REFUSED_LOCAL_PART = "nobody"
# Recipients with this local part get 450 while RecordingHandler.defers lasts.
DEFERRED_LOCAL_PART = "busy"


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost; (cert, key) paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alarmd-test-smtp")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )  # fmt: skip
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class Received:
    sender: str
    recipients: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        return BytesParser(policy=policy.default).parsebytes(self.raw)  # type: ignore[return-value]


@dataclass
class RecordingHandler:
    """Accepts every message and keeps it; refuses recipients named `nobody@`
    with 550, as a server does for an unknown mailbox."""

    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Drop the connection after this many DATA payloads, before replying.
    disconnects_after_data: int = 0
    # SIGKILL this process on the first DATA, keep the message, then reply 250:
    # the server accepted it, the client never learnt so.
    kill_on_data: int | None = None
    # Drop the connection this many times in the middle of DATA, after the 354
    # and the first line of the message, before its end.
    disconnects_mid_data: int = 0
    dropped_mid_data: int = 0
    # Answer 450 to `busy@` recipients this many times, then accept them.
    defers: int = 0

    async def handle_RCPT(self, _server, _session, envelope, address, _options):  # noqa: N802
        local_part = address.split("@")[0]
        if local_part == REFUSED_LOCAL_PART:
            return "550 5.1.1 mailbox unavailable"
        if local_part == DEFERRED_LOCAL_PART and self.defers > 0:
            self.defers -= 1
            return "450 4.2.1 mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, _session, envelope):  # noqa: N802
        if self.disconnects_after_data > 0:
            self.disconnects_after_data -= 1
            server.transport.close()
            return "421 4.4.2 connection dropped"
        if self.kill_on_data is not None:
            pid, self.kill_on_data = self.kill_on_data, None
            os.kill(pid, signal.SIGKILL)
        with self.lock:
            self.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos),
                         envelope.original_content)
            )  # fmt: skip
        return "250 Message accepted for delivery"

    def messages(self) -> list[Received]:
        with self.lock:
            return list(self.received)


class DisconnectingSmtp(SMTP):
    """aiosmtpd's server, which drops the connection mid-DATA when its handler
    asks for it."""

    async def smtp_DATA(self, arg):  # noqa: N802
        handler = self.event_handler
        ready = self.envelope is not None and self.envelope.rcpt_tos and not arg
        if not ready or handler.disconnects_mid_data <= 0:
            return await super().smtp_DATA(arg)
        handler.disconnects_mid_data -= 1
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        await self._reader.readuntil(b"\r\n")
        handler.dropped_mid_data += 1
        self.transport.close()


class DisconnectingController(Controller):
    def factory(self):
        return DisconnectingSmtp(self.handler, **self.SMTP_kwargs)


def _authenticate(_server, _session, _envelope, mechanism, auth_data) -> AuthResult:
    ok = (
        mechanism in ("LOGIN", "PLAIN")
        and isinstance(auth_data, LoginPassword)
        and auth_data.login == USERNAME.encode()
        and auth_data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SmtpServer:
    """The server on a fixed port, which can be stopped and started again."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.port = free_port()
        self.cert = cert
        self.handler = RecordingHandler()
        self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._tls.load_cert_chain(str(cert), str(key))
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = DisconnectingController(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            tls_context=self._tls,
            require_starttls=True,
            auth_required=True,
            auth_require_tls=True,
            authenticator=_authenticate,
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def settings(self) -> dict:
        """The alarmd settings that reach this server."""
        return {
            "smtp_host": "127.0.0.1",
            "smtp_port": self.port,
            "smtp_security": "starttls",
            "smtp_username": USERNAME,
            "smtp_password": PASSWORD,
            "smtp_ca_file": self.cert,
            "smtp_timeout_s": 5.0,
        }
