"""Command line: `rabbitmq-worker send|receive`."""

from __future__ import annotations

import argparse
import secrets
import sys
from typing import NoReturn

from rabbitmq_worker import __version__
from rabbitmq_worker.amqp import JsonLog, UserError, parse_broker, resolve_url
from rabbitmq_worker.receiver import ReceiveOptions, Receiver
from rabbitmq_worker.sender import send

EXIT_FAILURE = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad input as one line instead of usage + error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {message} — see `{self.prog} --help`\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number >= 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rabbitmq-worker",
        description="Publish work to a RabbitMQ queue, or consume it one message at a time.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    url_help = "broker URL amqp://user:pass@host:5672/vhost (default: $RABBITMQ_URL or $AMQP_URL)"

    p_send = sub.add_parser("send", help="publish COUNT persistent, confirmed messages")
    p_send.add_argument("url", nargs="?", metavar="AMQP_URL", help=url_help)
    p_send.add_argument("count", type=_positive_int, metavar="COUNT", help="messages to send")
    p_send.add_argument("--queue", default="hello", help="durable queue name (default: hello)")
    p_send.add_argument(
        "--run-id", default=None, help="prefix of the message bodies (default: random)"
    )
    p_send.add_argument(
        "--connect-timeout",
        type=_seconds,
        default=15.0,
        help="seconds to keep retrying an unreachable broker (default: 15)",
    )

    p_recv = sub.add_parser("receive", help="consume messages one at a time until SIGTERM")
    p_recv.add_argument("url", nargs="?", metavar="AMQP_URL", help=url_help)
    p_recv.add_argument("--queue", default="hello", help="durable queue name (default: hello)")
    p_recv.add_argument(
        "--work-seconds", type=_seconds, default=1.0, help="simulated work per message (1)"
    )
    p_recv.add_argument(
        "--prefetch", type=_positive_int, default=1, help="unacked messages in hand (1)"
    )
    p_recv.add_argument(
        "--connect-timeout",
        type=_seconds,
        default=15.0,
        help="at startup, seconds to keep retrying an unreachable broker before failing (15)",
    )
    p_recv.add_argument(
        "--max-backoff",
        type=_seconds,
        default=10.0,
        help="cap of the reconnect backoff after a lost connection, seconds (10)",
    )
    p_recv.add_argument(
        "--shutdown-grace",
        type=_seconds,
        default=20.0,
        help="on SIGTERM, finish the message in hand if at most this much work is left, "
        "else requeue it (20)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log = JsonLog()
    try:
        broker = parse_broker(resolve_url(args.url))
        if args.command == "send":
            run_id = args.run_id or secrets.token_hex(4)
            result = send(broker, args.queue, args.count, run_id, args.connect_timeout, log)
            if result.not_confirmed:
                print(
                    f"error: {result.not_confirmed} of {result.count} messages were not "
                    f"confirmed by {broker.display} ({result.failure}) — check the broker and "
                    "send again",
                    file=sys.stderr,
                )
                return EXIT_FAILURE
            return 0
        options = ReceiveOptions(
            queue=args.queue,
            work_seconds=args.work_seconds,
            prefetch=args.prefetch,
            connect_timeout=args.connect_timeout,
            max_backoff=args.max_backoff,
            shutdown_grace=args.shutdown_grace,
        )
        receiver = Receiver(broker, options, log)
        receiver.install_signal_handlers()
        return receiver.run()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
