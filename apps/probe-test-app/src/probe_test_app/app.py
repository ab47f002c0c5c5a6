"""The ASGI application: a status page, two switchable probe endpoints and /metrics.

It is a plain ASGI callable (no framework) so that each request costs only a few dictionary
look-ups; responses that do not depend on state are encoded once at start-up.
"""

from __future__ import annotations

import html
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from probe_test_app.state import CODES, PATHS, PROBES, SharedState

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_FORM_BYTES = 4096
# Colour of the version banner, so that a rollout from v1 to v2 is visible at a glance.
VERSION_COLOURS = {"v1": "#1f6feb", "v2": "#1a7f37"}
DEFAULT_COLOUR = "#6e7781"

_JSON = (b"content-type", b"application/json")
_TEXT = (b"content-type", b"text/plain; charset=utf-8")
_HTML = (b"content-type", b"text/html; charset=utf-8")
_METRICS = (b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
_NO_STORE = (b"cache-control", b"no-store")

_OK_BODY = b'{"status": 200, "title": "OK"}'
_UNHEALTHY_BODY = b'{"status": 500, "title": "Unhealthy"}'

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>probe-test-app {version}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; max-width: 40rem; }}
.banner {{ background: {colour}; color: #fff; padding: 1rem 1.5rem; border-radius: .5rem; }}
.Healthy {{ color: #1a7f37; font-weight: bold; }}
.Unhealthy {{ color: #cf222e; font-weight: bold; }}
button {{ font-size: 1rem; margin-right: .5rem; padding: .4rem .8rem; }}
</style>
</head>
<body>
<div class="banner"><h1>probe-test-app {version}</h1></div>
<p>Served by the Pod <strong id="hostname">{hostname}</strong>.</p>
<p>Readiness (<code>/readyz</code>): <span id="readyz" class="{ready}">{ready}</span></p>
<p>Liveness (<code>/livez</code>): <span id="livez" class="{live}">{live}</span></p>
<form method="post" action="/">
<button type="submit" name="readyz" value="toggle">Toggle Readiness</button>
<button type="submit" name="livez" value="toggle">Toggle Liveness</button>
</form>
<p id="version">Version {version}</p>
</body>
</html>
"""


def _word(healthy: bool) -> str:
    return "Healthy" if healthy else "Unhealthy"


def _response(status: int, body: bytes, *headers: tuple[bytes, bytes]) -> tuple[Message, Message]:
    """Pre-built ASGI start and body messages."""
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [*headers, (b"content-length", str(len(body)).encode())],
    }
    return start, {"type": "http.response.body", "body": body}


def _error(status: int, text: str, *headers: tuple[bytes, bytes]) -> tuple[Message, Message]:
    return _response(status, (text + "\n").encode(), _TEXT, *headers)


def render_page(hostname: str, version: str, live: bool, ready: bool) -> bytes:
    colour = VERSION_COLOURS.get(version, DEFAULT_COLOUR)
    return _PAGE.format(
        hostname=html.escape(hostname),
        version=html.escape(version),
        colour=colour,
        live=_word(live),
        ready=_word(ready),
    ).encode()


def render_metrics(state: SharedState, version: str) -> bytes:
    """Prometheus text exposition format 0.0.4."""
    counts = state.request_counts()
    # Always show the series a dashboard expects, even before the first such request.
    always = {("/", 200), ("/livez", 200), ("/readyz", 200), ("/livez", 500), ("/readyz", 500)}
    lines = [
        "# HELP http_requests_total HTTP requests answered, by path and status code.",
        "# TYPE http_requests_total counter",
    ]
    for path in PATHS:
        for code in CODES:
            value = counts[(path, code)]
            if value or (path, code) in always:
                lines.append(f'http_requests_total{{path="{path}",code="{code}"}} {value}')
    lines += [
        "# HELP probe_healthy Whether the probe endpoint currently answers healthy (1) or not (0).",
        "# TYPE probe_healthy gauge",
    ]
    for probe in PROBES:
        lines.append(f'probe_healthy{{probe="{probe}"}} {int(state.healthy(probe))}')
    lines += [
        "# HELP probe_toggles_total Times the probe was switched with the page's buttons.",
        "# TYPE probe_toggles_total counter",
    ]
    for probe in PROBES:
        lines.append(f'probe_toggles_total{{probe="{probe}"}} {state.toggle_count(probe)}')
    escaped_version = version.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    lines += [
        "# HELP probe_test_app_info Version of the running app.",
        "# TYPE probe_test_app_info gauge",
        f'probe_test_app_info{{version="{escaped_version}"}} 1',
        "",
    ]
    return "\n".join(lines).encode()


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None when it is larger than ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # client went away
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def create_app(state: SharedState, version: str, hostname: str | None = None) -> ASGIApp:
    """Build the ASGI app for one worker process."""
    hostname = socket.gethostname() if hostname is None else hostname
    pages = {
        (live, ready): _response(200, render_page(hostname, version, live, ready), _HTML, _NO_STORE)
        for live in (True, False)
        for ready in (True, False)
    }
    ok = _response(200, _OK_BODY, _JSON, _NO_STORE)
    unhealthy = _response(500, _UNHEALTHY_BODY, _JSON, _NO_STORE)
    see_other = _response(303, b"", (b"location", b"/"))
    not_found = _error(404, "Not found. Try / , /livez , /readyz or /metrics.")
    get_only = _error(405, "Method not allowed: use GET.", (b"allow", b"GET, HEAD"))
    page_methods = _error(
        405,
        "Method not allowed: use GET, or POST to toggle a probe.",
        (b"allow", b"GET, HEAD, POST"),
    )
    bad_form = _error(
        400,
        "Bad form: POST a form field named readyz or livez "
        "(e.g. curl -d readyz=toggle http://HOST:PORT/).",
    )
    too_large = _error(413, f"Form too large: send at most {MAX_FORM_BYTES} bytes.")
    bad_type = _error(
        415, "Unsupported form encoding: send application/x-www-form-urlencoded (readyz or livez)."
    )
    is_live = state.is_live
    is_ready = state.is_ready
    count = state.count_request

    async def reply(send: Send, path: str, response: tuple[Message, Message]) -> None:
        start, body = response
        await send(start)
        await send(body)
        count(path, start["status"])

    async def handle_post(receive: Receive, send: Send, scope: Scope) -> None:
        content_type = b""
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.split(b";", 1)[0].strip().lower()
        if content_type not in (b"", b"application/x-www-form-urlencoded"):
            await reply(send, "/", bad_type)
            return
        body = await _read_body(receive, MAX_FORM_BYTES)
        if body is None:
            await reply(send, "/", too_large)
            return
        try:
            fields = parse_qs(body.decode("latin-1"), keep_blank_values=True)
        except ValueError:
            fields = {}
        chosen = [probe for probe in PROBES if probe in fields]
        if not chosen:
            await reply(send, "/", bad_form)
            return
        for probe in chosen:
            state.toggle(probe)
        await reply(send, "/", see_other)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan and websockets are switched off in the server
        path = scope["path"]
        method = scope["method"]
        if path == "/livez" or path == "/readyz":
            if method != "GET" and method != "HEAD":
                await reply(send, path, get_only)
            elif is_live() if path == "/livez" else is_ready():
                await reply(send, path, ok)
            else:
                await reply(send, path, unhealthy)
        elif path == "/":
            if method == "GET" or method == "HEAD":
                await reply(send, path, pages[(is_live(), is_ready())])
            elif method == "POST":
                await handle_post(receive, send, scope)
            else:
                await reply(send, path, page_methods)
        elif path == "/metrics":
            if method != "GET" and method != "HEAD":
                await reply(send, path, get_only)
            else:
                await reply(
                    send, path, _response(200, render_metrics(state, version), _METRICS, _NO_STORE)
                )
        else:
            await reply(send, "other", not_found)

    return app
