"""`bluegreen-demo`: read the settings from the environment and serve;
`bluegreen-demo traffic URL...`: call those URLs the way the page does."""

from __future__ import annotations

import argparse
import os
import sys
from urllib.parse import urlparse

import uvicorn

from bluegreen_demo.app import create_app
from bluegreen_demo.config import ConfigError, Settings


def _serve() -> int:
    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as err:
        print(f"bluegreen-demo: error: {err}", file=sys.stderr)
        return 2
    print(
        f"bluegreen-demo: colour {settings.color} ({settings.hex}), version {settings.version}, "
        f"default error rate {settings.error_rate:g}%, "
        f"listening on {settings.host}:{settings.port}",
        flush=True,
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=settings.access_log,
        log_level="info",
        server_header=False,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        return _serve()
    parser = argparse.ArgumentParser(prog="bluegreen-demo")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="serve the page and its API (the default)")
    traffic = sub.add_parser("traffic", help="call URLs a few times a second, as the page does")
    traffic.add_argument("urls", nargs="+", metavar="URL", help="e.g. http://bluegreen-demo/color")
    traffic.add_argument("--rps", type=float, default=5.0, help="calls a second to each URL")
    ns = parser.parse_args(args)
    if ns.command == "serve":
        return _serve()
    bad = [u for u in ns.urls if urlparse(u).scheme not in ("http", "https")]
    if bad:
        parser.error(f"URLs must start with http:// or https://, got {', '.join(bad)}")
    if not 0 < ns.rps <= 50:
        parser.error(f"--rps must be more than 0 and at most 50, got {ns.rps:g}")
    from bluegreen_demo.traffic import run

    return run(ns.urls, ns.rps)
