"""`stress` command line: ``stress cpu ...`` and ``stress memory ...``."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from kubelab_stress import __version__
from kubelab_stress.sizes import SIZE_HELP, SizeError, parse_size


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of 1 or more, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text!r}")
    return value


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except SizeError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="stress",
        description="Use CPU or memory on purpose, to watch Kubernetes limits act on it.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    modes = parser.add_subparsers(dest="mode", required=True, metavar="{cpu,memory}")

    cpu = modes.add_parser(
        "cpu",
        help="keep N cores busy",
        description="Start N processes that each spin one core at 100%% until stopped.",
    )
    cpu.add_argument(
        "--workers", type=_positive_int, default=1, help="busy processes to run (default 1)"
    )
    cpu.add_argument(
        "--seconds",
        type=_positive_float,
        default=None,
        help="stop after this long (default: run until SIGTERM or Ctrl-C)",
    )

    memory = modes.add_parser(
        "memory",
        help="allocate and touch memory",
        description="Allocate memory step by step, writing to every page so it really is used.",
    )
    memory.add_argument("--bytes", type=_size, required=True, help=f"how much: {SIZE_HELP}")
    memory.add_argument(
        "--step",
        type=_size,
        default=parse_size("10M"),
        help="allocate this much at a time and report progress after each step (default 10M)",
    )
    memory.add_argument(
        "--hold",
        action="store_true",
        help="keep the memory until SIGTERM or Ctrl-C (default: exit once it is all touched)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.mode == "cpu":
        from kubelab_stress.cpu import run_cpu

        return run_cpu(workers=args.workers, seconds=args.seconds)
    from kubelab_stress.memory import run_memory

    return run_memory(n_bytes=args.bytes, step=args.step, hold=args.hold)


if __name__ == "__main__":
    sys.exit(main())
