"""The `alarmd` command: the daemon and the tools around it."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from pydantic import ValidationError

from alarmd import __version__, logs, metrics
from alarmd.errors import ConfigurationError
from alarmd.settings import Settings, describe_settings_error, load_settings

log = logs.get("alarmd")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except (ValidationError, ConfigurationError, ValueError) as exc:
        print(f"alarmd: the settings are not usable: {describe_settings_error(exc)}",
              file=sys.stderr)  # fmt: skip
        return 2
    logs.configure(settings.log_level, settings.log_format)
    try:
        return args.handler(settings, args)
    except ConfigurationError as exc:
        print(f"alarmd: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        sentence = _explain(exc, settings)
        if sentence is None:
            raise
        print(f"alarmd: {sentence}", file=sys.stderr)
        return 1


def _explain(exc: Exception, settings: Settings) -> str | None:
    """One sentence saying what to fix, for the failures an operator can fix;
    None for anything else, which is a bug and keeps its traceback."""
    import errno

    import psycopg2
    from confluent_kafka import KafkaException
    from sqlalchemy.exc import DBAPIError

    from alarmd.errors import TransientError
    from alarmd.settings import mask_url
    from producers.replay import ReplayTakenOver

    original = exc.orig if isinstance(exc, DBAPIError) else exc
    database = mask_url(settings.database_url.get_secret_value())
    if isinstance(original, psycopg2.errors.UndefinedTable):
        return (
            f"the database {database} has no alarmd tables "
            f"({_first_line(original)}); run `alarmd migrate` first"
        )
    if isinstance(original, psycopg2.OperationalError):
        return (
            f"cannot reach PostgreSQL at {database} ({_first_line(original)}); "
            "check ALARMD_DATABASE_URL and that the server is up"
        )
    if isinstance(exc, KafkaException):
        return (
            f"Kafka at {settings.kafka_bootstrap_servers} failed: {exc.args[0].str()}; "
            "check ALARMD_KAFKA_BOOTSTRAP_SERVERS, ALARMD_KAFKA_PROPERTIES and that "
            "the brokers are up"
        )
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return (
            f"cannot listen for HTTP: {exc.strerror}; choose a free port with "
            "ALARMD_HTTP_PORT (or ALARMD_NOTIFY_HTTP_PORT for the sidecar), or 0"
        )
    if isinstance(exc, TransientError):
        return f"{exc.stage} unavailable: {exc.detail}"
    if isinstance(exc, ReplayTakenOver):
        return str(exc)
    return None


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _seconds(text: str) -> float:
    """A duration argument: a number of seconds above zero."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return seconds


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alarmd", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="consume alarms until stopped")
    run.add_argument("--exit-when-idle", type=_seconds, metavar="SECONDS",
                     help="exit 0 once no message has arrived for this long and "
                     "the outbox is empty")  # fmt: skip
    run.set_defaults(handler=_run)

    notify = commands.add_parser("notify", help="send the notification emails")
    notify.add_argument("--exit-when-idle", type=_seconds, metavar="SECONDS",
                        help="exit 0 once no request has arrived for this long and "
                        "every received request is sent or dead-lettered")  # fmt: skip
    notify.set_defaults(handler=_notify)
    notify_actions = notify.add_subparsers(required=False, metavar="[ACTION]")
    preview = notify_actions.add_parser(
        "preview", help="render one email from a JSON-lines alarm file"
    )
    preview.add_argument("file", type=Path, metavar="FILE.jsonl")
    preview.add_argument("--out", type=Path, default=Path("preview.eml"),
                         help="where to write the .eml (default: preview.eml)")  # fmt: skip
    preview.set_defaults(handler=_notify_preview)

    commands.add_parser(
        "migrate", help="bring the database schema up to date"
    ).set_defaults(handler=_migrate)

    topics = commands.add_parser("topics", help="manage alarmd's topics")
    topic_commands = topics.add_subparsers(required=True, metavar="ACTION")
    topic_commands.add_parser(
        "create", help="create the topics that do not exist"
    ).set_defaults(handler=_topics_create)

    produce = commands.add_parser("produce", help="publish a JSON-lines alarm file")
    produce.add_argument("file", type=Path, metavar="FILE.jsonl")
    produce.add_argument("--encoding", choices=["single-object", "confluent", "schemaless"],
                         help="framing (default: ALARMD_INPUT_ENCODING)")  # fmt: skip
    produce.add_argument("--topic", help="default: ALARMD_INPUT_TOPIC")
    produce.add_argument("--no-progress", action="store_true")
    produce.set_defaults(handler=_produce)

    status = commands.add_parser(
        "status", help="counts from the database and the topics"
    )
    status.add_argument("--json", action="store_true", help="one JSON object")
    status.set_defaults(handler=_status)

    commands.add_parser(
        "config", help="print the effective settings, secrets masked"
    ).set_defaults(handler=_config)

    dlq = commands.add_parser("dlq", help="inspect and replay the dead letters")
    dlq_actions = dlq.add_subparsers(required=True, metavar="ACTION")
    dlq_list = dlq_actions.add_parser(
        "list", help="what is on the dead-letter topic, and why"
    )
    _selection_arguments(dlq_list)
    dlq_list.add_argument("--json", action="store_true", help="one JSON object a line")
    dlq_list.set_defaults(handler=_dlq_list)
    replay = dlq_actions.add_parser(
        "replay", help="produce dead letters to the input topic again, once each"
    )
    _selection_arguments(replay)
    replay.add_argument("--all", action="store_true",
                        help="every dead letter not replayed yet (needed without a filter)")  # fmt: skip
    replay.add_argument("--dry-run", action="store_true",
                        help="show what would be replayed; produce and record nothing")  # fmt: skip
    replay.add_argument("--json", action="store_true", help="one JSON object a line")
    replay.set_defaults(handler=_dlq_replay)
    return parser


def _selection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", action="append", default=[], metavar="R",
                        help="only this reason (repeatable), e.g. bad_framing")  # fmt: skip
    parser.add_argument("--since", metavar="T",
                        help="only dead-lettered at or after T: ISO 8601 "
                        "(2026-12-04T08:00:00Z; UTC without an offset) or a duration "
                        "back from now (2h, 1d, PT30M)")  # fmt: skip
    parser.add_argument("--at", action="append", default=[], metavar="P:O",
                        help="only the dead letter at partition P, offset O of the "
                        "dead-letter topic (repeatable)")  # fmt: skip


def _run(settings: Settings, args: argparse.Namespace) -> int:
    from consumer.daemon import Daemon
    from db.engine import make_engine

    engine = make_engine(settings)
    decoder = _decoder(settings)
    metrics.prime(settings.downstream_topics())
    return _serve(
        lambda health: Daemon(settings, engine, decoder, health),
        engine, settings.http_host, settings.http_port, args.exit_when_idle,
        settings.stall_deadline_s,
    )  # fmt: skip


def _notify(settings: Settings, args: argparse.Namespace) -> int:
    from db.engine import make_engine
    from notifier import metrics as notify_metrics
    from notifier.worker import NotifyWorker

    engine = make_engine(settings)
    notify_metrics.prime()
    return _serve(
        lambda health: NotifyWorker(settings, engine, health),
        engine, settings.http_host, settings.notify_http_port, args.exit_when_idle,
        settings.stall_deadline_s,
    )  # fmt: skip


def _serve(
    build,
    engine,
    host: str,
    port: int,
    exit_when_idle_s: float | None,
    stall_deadline_s: float,
) -> int:
    """Runs one long-lived worker (the daemon or the sidecar) with its probes and
    metrics on `port`, stopping on SIGTERM or SIGINT; returns its exit code."""
    from alarmd.health import Health, serve
    from db.connection import ping

    health = Health(lambda: ping(engine), stall_deadline_s)
    worker = build(health)
    server = serve(health, host, port)
    health.watch()
    log.info("http_listening", host=host, port=server.server_port)
    signal.signal(signal.SIGTERM, worker.request_stop)
    signal.signal(signal.SIGINT, worker.request_stop)
    return worker.run(exit_when_idle_s=exit_when_idle_s)


def _notify_preview(settings: Settings, args: argparse.Namespace) -> int:
    from notifier.preview import PreviewError, preview

    if not args.file.is_file():
        print(f"alarmd notify preview: {args.file} is not a file", file=sys.stderr)
        return 2
    try:
        summary = preview(settings, args.file, args.out)
    except PreviewError as exc:
        print(f"alarmd notify preview: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, ensure_ascii=False))
    return 0


def _decoder(settings: Settings):
    import schemas
    from schemas.decoding import build_decoder

    writer = None
    if settings.writer_schema_file is not None:
        try:
            writer = schemas.parse(
                settings.writer_schema_file.read_text(encoding="utf-8")
            )
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"ALARMD_WRITER_SCHEMA_FILE {settings.writer_schema_file} is not a "
                f"readable Avro schema: {exc}"
            ) from exc
    return build_decoder(
        settings.input_encoding,
        writer,
        lambda: _registry(settings),
        max_value_bytes=settings.max_event_bytes,
    )


def _registry(settings: Settings):
    from confluent_kafka.schema_registry import SchemaRegistryClient

    if not settings.schema_registry_url:
        raise ConfigurationError(
            "input_encoding=confluent needs ALARMD_SCHEMA_REGISTRY_URL"
        )
    return SchemaRegistryClient.new_client({"url": settings.schema_registry_url})


def _migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from db.migrate import upgrade

    upgrade(settings.database_url.get_secret_value())
    log.info("migrated", revision="head")
    return 0


def _topics_create(settings: Settings, _args: argparse.Namespace) -> int:
    from alarmd.topics import create_topics

    for topic, outcome in create_topics(settings).items():
        log.info("topic", topic=topic, outcome=outcome)
    return 0


def _produce(settings: Settings, args: argparse.Namespace) -> int:
    from producers.alarm_producer import Framer, produce_file

    if not args.file.is_file():
        print(f"alarmd produce: {args.file} is not a file", file=sys.stderr)
        return 2
    encoding = args.encoding or settings.input_encoding
    topic = args.topic or settings.input_topic
    registry = _registry(settings) if encoding == "confluent" else None
    frame = Framer(encoding, registry, f"{topic}-value")
    report, problems = produce_file(
        args.file, topic, settings.kafka_common(), frame, progress=not args.no_progress
    )
    for problem in problems:
        print(f"alarmd produce: {problem}", file=sys.stderr)
    print(json.dumps({"produced": report.produced, "rejected": report.rejected,
                      "failed": report.failed, "topic": topic, "encoding": encoding}))  # fmt: skip
    return 0 if not (report.rejected or report.failed) else 1


def _status(settings: Settings, args: argparse.Namespace) -> int:
    from alarmd.status import status
    from db.engine import make_engine

    result = status(settings, make_engine(settings))
    if args.json:
        print(json.dumps(result, sort_keys=False))
    else:
        for key, value in result.items():
            if isinstance(value, dict):
                for topic, count in value.items():
                    print(f"topic {topic:<20} {count}")
            else:
                print(f"{key:<26} {value}")
    return 0


def _selection(args: argparse.Namespace):
    from alarmd.dead_letters import (
        Selection,
        parse_coordinate,
        parse_reasons,
        parse_since,
    )

    return Selection(
        reasons=parse_reasons(args.reason),
        since=parse_since(args.since) if args.since else None,
        coordinates=frozenset(parse_coordinate(at) for at in args.at),
    )


def _print_letters(letters, as_json: bool) -> None:
    for letter in letters:
        summary = letter.summary()
        if as_json:
            print(json.dumps(summary, ensure_ascii=False))
            continue
        source = summary["source"]
        print(f"{letter.coordinate}  from {source['topic']}/{source['partition']}/"
              f"{source['offset']}  {summary['reason']}  {summary['time']}  "
              f"key={summary['key']!r}  {(summary['detail'] or '')[:120]}  "
              f"value={summary['preview']}")  # fmt: skip


def _dlq_list(settings: Settings, args: argparse.Namespace) -> int:
    from alarmd.dead_letters import read_dead_letters

    letters = read_dead_letters(settings, _selection(args))
    _print_letters(letters, args.json)
    if not args.json:
        plural = "" if len(letters) == 1 else "s"
        print(f"{len(letters)} dead letter{plural} on {settings.dead_letter_topic}")
    return 0


def _dlq_replay(settings: Settings, args: argparse.Namespace) -> int:
    from alarmd.dead_letters import read_dead_letters
    from db.engine import make_engine
    from producers.replay import Replayer, already_replayed

    selection = _selection(args)
    if selection.everything and not args.all:
        raise ConfigurationError(
            "dlq replay needs --reason, --since or --at to choose what to replay, "
            "or --all for every dead letter not replayed yet"
        )
    engine = make_engine(settings)
    letters = read_dead_letters(settings, selection)
    done = already_replayed(engine, settings.dead_letter_topic)
    todo = [letter for letter in letters if letter.position not in done]
    report = {"selected": len(letters), "already_replayed": len(letters) - len(todo),
              "replayed": 0, "dry_run": args.dry_run, "topic": settings.input_topic}  # fmt: skip
    if args.dry_run:
        _print_letters(todo, args.json)
        report["would_replay"] = len(todo)
    elif todo:
        replayer = Replayer(settings, engine)
        try:
            replayed = replayer.replay(todo)
        finally:
            replayer.close()
        _print_letters([r.letter for r in replayed], args.json)
        report["replayed"] = len(replayed)
        report["already_replayed"] += len(todo) - len(replayed)
    print(json.dumps(report))
    return 0


def _config(settings: Settings, _args: argparse.Namespace) -> int:
    print(json.dumps(settings.masked(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
