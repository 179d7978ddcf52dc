"""A local SMTP sink for `make demo`: accepts every message and writes it,
byte for byte, as an .eml file in a folder.

    python scripts/smtp_sink.py --port 12525 --dir .local/mail

Runs until SIGTERM or SIGINT. Built on aiosmtpd; no TLS and no AUTH, so only
bind it to the loopback interface.
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from aiosmtpd.controller import Controller


class MailDirHandler:
    """Writes each accepted message to `<dir>/<sequence>.eml`."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._lock = threading.Lock()
        self._count = len(list(folder.glob("*.eml")))

    async def handle_DATA(self, _server, _session, envelope) -> str:  # noqa: N802
        with self._lock:
            self._count += 1
            path = self._folder / f"{self._count:06d}.eml"
        path.write_bytes(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12525)
    parser.add_argument("--dir", type=Path, default=Path(".local/mail"))
    args = parser.parse_args()

    args.dir.mkdir(parents=True, exist_ok=True)
    controller = Controller(MailDirHandler(args.dir), hostname=args.host,
                            port=args.port)  # fmt: skip
    try:
        controller.start()
    except OSError as exc:
        raise SystemExit(
            f"smtp sink: cannot listen on {args.host}:{args.port} ({exc.strerror}); "
            "choose a free port with SMTP_SINK_PORT=<port> (make demo) or --port"
        ) from exc
    print(f"smtp sink on {args.host}:{args.port}, writing {args.dir}", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
