"""The web app: the page, /color, /metrics and /healthz."""

from __future__ import annotations

import random
from importlib.resources import files

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

    async def index(_: Request) -> HTMLResponse:
        return HTMLResponse(page, headers=NO_STORE)

    async def color(request: Request) -> JSONResponse:
        raw = request.query_params.get("error_rate")
        try:
            rate = settings.error_rate if raw is None else parse_error_rate(raw, "error_rate")
        except ConfigError as err:
            return JSONResponse({"error": str(err)}, status_code=400, headers=NO_STORE)
        body = {
            "color": settings.color,
            "hex": settings.hex,
            "version": settings.version,
            "host": settings.hostname,
        }
        if rate > 0 and random.random() * 100 < rate:
            failed = {"error": f"failed on purpose (error rate {rate:g}%)", **body}
            return JSONResponse(failed, status_code=500, headers=NO_STORE)
        return JSONResponse(body, headers=NO_STORE)

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "version": settings.version}, headers=NO_STORE)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/", index),
        Route("/color", color),
        Route("/healthz", healthz),
        Route("/metrics", metrics),
    ]
    paths = {route.path for route in routes}
    middleware = [Middleware(RequestMetrics, counter=requests_total, paths=paths)]
    return Starlette(routes=routes, middleware=middleware)
