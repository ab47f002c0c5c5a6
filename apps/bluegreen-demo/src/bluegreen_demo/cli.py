"""`bluegreen-demo`: read the settings from the environment and serve."""

from __future__ import annotations

import os
import sys

import uvicorn

from bluegreen_demo.app import create_app
from bluegreen_demo.config import ConfigError, Settings


def main() -> int:
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
