"""The web app: the page, /color, /error-rate, /stats, /metrics and /healthz."""

from __future__ import annotations

import json
import random
import time
from collections import deque
from importlib.resources import files
from urllib.parse import parse_qs

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bluegreen_demo.config import ConfigError, Settings, parse_error_rate

NO_STORE = {"Cache-Control": "no-store"}
STATS_MAX_WINDOW_S = 300  # /stats looks back at most this far
STATS_MAX_ANSWERS = 100_000  # answers kept for /stats (bounded memory under any load)


class Answers:
    """When each /color answer was given and whether it failed, for the last few minutes."""

    def __init__(self) -> None:
        self._answers: deque[tuple[float, bool]] = deque(maxlen=STATS_MAX_ANSWERS)

    def add(self, failed: bool) -> None:
        now = time.monotonic()
        self._answers.append((now, failed))
        while self._answers and self._answers[0][0] < now - STATS_MAX_WINDOW_S:
            self._answers.popleft()

    def summary(self, window_s: float) -> dict[str, float | int | None]:
        since = time.monotonic() - window_s
        recent = [failed for at, failed in self._answers if at >= since]
        errors = sum(recent)
        rate = round(100.0 * errors / len(recent), 2) if recent else None
        return {"window_seconds": window_s, "requests": len(recent), "errors": errors,
                "error_rate": rate}  # fmt: skip


class RequestMetrics:
    """Counts every HTTP request by method, path and status code (pure ASGI middleware)."""

    def __init__(self, app: ASGIApp, counter: Counter, paths: set[str]) -> None:
        self.app = app
        self.counter = counter
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client sees if the app fails before answering

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            # unknown paths share one label value, so a scanner cannot blow up the series count
            path = scope["path"] if scope["path"] in self.paths else "other"
            self.counter.labels(scope["method"], path, str(status)).inc()


def create_app(settings: Settings) -> Starlette:
    page = (files("bluegreen_demo") / "static" / "index.html").read_text(encoding="utf-8")
    registry = CollectorRegistry()
    requests_total = Counter(
        "http_requests",
        "HTTP requests answered, by method, path and status code",
        ["method", "path", "code"],
        registry=registry,
    )
    info = Gauge(
        "bluegreen_demo_info",
        "Which colour and version this server is",
        ["color", "version"],
        registry=registry,
    )
    info.labels(settings.color, settings.version).set(1)
    error_rate_gauge = Gauge(
        "bluegreen_demo_error_rate",
        "The share of /color calls (%) that fail when the caller sends no error_rate",
        registry=registry,
    )
    state = {"error_rate": settings.error_rate}
    error_rate_gauge.set(settings.error_rate)
    answers = Answers()

    async def index(_: Request) -> HTMLResponse:
        return HTMLResponse(page, headers=NO_STORE)

    async def color(request: Request) -> JSONResponse:
        raw = request.query_params.get("error_rate")
        try:
            rate = state["error_rate"] if raw is None else parse_error_rate(raw, "error_rate")
        except ConfigError as err:
            return JSONResponse({"error": str(err)}, status_code=400, headers=NO_STORE)
        body = {
            "color": settings.color,
            "hex": settings.hex,
            "version": settings.version,
            "host": settings.hostname,
        }
        if rate > 0 and random.random() * 100 < rate:
            answers.add(failed=True)
            failed = {"error": f"failed on purpose (error rate {rate:g}%)", **body}
            return JSONResponse(failed, status_code=500, headers=NO_STORE)
        answers.add(failed=False)
        return JSONResponse(body, headers=NO_STORE)

    async def error_rate(request: Request) -> JSONResponse:
        """GET: the server's error rate; PUT/POST (form or JSON `error_rate`): set it."""
        if request.method != "GET":
            text = (await request.body())[:4096].decode("utf-8", errors="replace")
            try:  # JSON ({"error_rate": 30}) whatever the content type, else a form (error_rate=30)
                data = json.loads(text)
            except ValueError:
                data = {k: v[-1] for k, v in parse_qs(text).items()}
            raw = data.get("error_rate") if isinstance(data, dict) else None
            try:
                if raw is None:
                    raise ConfigError("send error_rate, a percentage from 0 to 100")
                state["error_rate"] = parse_error_rate(str(raw), "error_rate")
            except ConfigError as err:
                return JSONResponse({"error": str(err)}, status_code=400, headers=NO_STORE)
            error_rate_gauge.set(state["error_rate"])
        return JSONResponse(
            {
                "error_rate": state["error_rate"],
                "version": settings.version,
                "host": settings.hostname,
            },
            headers=NO_STORE,
        )

    async def stats(request: Request) -> JSONResponse:
        """The /color answers of the last `window` seconds (default 30): count, errors, rate."""
        raw = request.query_params.get("window", "30")
        try:
            window = float(raw)
        except ValueError:
            window = -1.0
        if not 0 < window <= STATS_MAX_WINDOW_S:
            message = (
                f"window must be a number of seconds from 1 to {STATS_MAX_WINDOW_S}, got {raw!r}"
            )
            return JSONResponse({"error": message}, status_code=400, headers=NO_STORE)
        body = {"version": settings.version, "host": settings.hostname, **answers.summary(window)}
        return JSONResponse(body, headers=NO_STORE)

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "version": settings.version}, headers=NO_STORE)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/", index),
        Route("/color", color),
        Route("/error-rate", error_rate, methods=["GET", "PUT", "POST"]),
        Route("/stats", stats),
        Route("/healthz", healthz),
        Route("/metrics", metrics),
    ]
    paths = {route.path for route in routes}
    middleware = [Middleware(RequestMetrics, counter=requests_total, paths=paths)]
    return Starlette(routes=routes, middleware=middleware)
