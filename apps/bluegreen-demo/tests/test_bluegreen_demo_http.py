"""bluegreen-demo over plain HTTP: /color, the error rate, /metrics, settings."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def _color_codes(base: str, query: str, n: int) -> list[int]:
    return [_get(f"{base}/color{query}")[0] for _ in range(n)]


def _request_counts(base: str) -> dict[tuple[str, str], float]:
    """(path, code) -> count of GET requests, from /metrics."""
    status, _, body = _get(f"{base}/metrics")
    assert status == 200
    counts: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "http_requests_total" and sample.labels["method"] == "GET":
                counts[(sample.labels["path"], sample.labels["code"])] = sample.value
    return counts


def test_bluegreen_demo_color_answers_json(bluegreen_server) -> None:
    server = bluegreen_server(COLOR="green", APP_VERSION="v2")
    status, headers, body = _get(f"{server.url}/color")
    assert status == 200
    assert headers["content-type"].startswith("application/json")
    assert headers["cache-control"] == "no-store"
    data = json.loads(body)
    assert data["color"] == "green"
    assert data["version"] == "v2"
    assert data["hex"] == "#16a34a"
    assert data["host"]


def test_bluegreen_demo_version_defaults_to_colour(bluegreen_server) -> None:
    server = bluegreen_server(COLOR="yellow")
    data = json.loads(_get(f"{server.url}/color")[2])
    assert (data["color"], data["version"]) == ("yellow", "yellow")


def test_bluegreen_demo_error_rate_query(bluegreen_server) -> None:
    server = bluegreen_server(COLOR="blue")
    assert set(_color_codes(server.url, "?error_rate=0", 30)) == {200}
    assert set(_color_codes(server.url, "?error_rate=100", 30)) == {500}
    half = _color_codes(server.url, "?error_rate=50", 200)
    assert 40 <= half.count(500) <= 160, f"{half.count(500)} of 200 failed at 50 %"
    status, _, body = _get(f"{server.url}/color?error_rate=100")
    assert status == 500
    assert json.loads(body)["color"] == "blue"


@pytest.mark.parametrize("bad", ["abc", "101", "-1", ""])
def test_bluegreen_demo_bad_error_rate_is_400(bluegreen_server, bad: str) -> None:
    server = bluegreen_server()
    status, _, body = _get(f"{server.url}/color?error_rate={bad}")
    assert status == 400
    assert "percentage from 0 to 100" in json.loads(body)["error"]


def test_bluegreen_demo_error_rate_env_default(bluegreen_server) -> None:
    server = bluegreen_server(ERROR_RATE="100")
    assert set(_color_codes(server.url, "", 10)) == {500}
    assert set(_color_codes(server.url, "?error_rate=0", 10)) == {200}


def test_bluegreen_demo_metrics_count_requests_by_path_and_code(bluegreen_server) -> None:
    server = bluegreen_server(COLOR="blue")
    _color_codes(server.url, "?error_rate=0", 7)
    _color_codes(server.url, "?error_rate=100", 3)
    _get(f"{server.url}/no-such-page")
    counts = _request_counts(server.url)
    assert counts[("/color", "200")] == 7
    assert counts[("/color", "500")] == 3
    assert counts[("other", "404")] == 1
    assert counts[("/healthz", "200")] >= 1
    _, _, body = _get(f"{server.url}/metrics")
    assert 'bluegreen_demo_info{color="blue",version="blue"} 1.0' in body.decode()


def test_bluegreen_demo_page_and_health(bluegreen_server) -> None:
    server = bluegreen_server()
    status, headers, body = _get(f"{server.url}/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    page = body.decode()
    assert 'id="error-rate"' in page
    assert 'type="range"' in page
    status, _, body = _get(f"{server.url}/healthz")
    assert (status, json.loads(body)["status"]) == (200, "ok")


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"COLOR": "pink"}, "COLOR must be one of"),
        ({"PORT": "eighty"}, "PORT must be a port number"),
        ({"PORT": "70000"}, "PORT must be a port number"),
        ({"ERROR_RATE": "lots"}, "ERROR_RATE must be a percentage"),
    ],
)
def test_bluegreen_demo_bad_setting_is_one_clear_line(env: dict[str, str], fragment: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bluegreen_demo"],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0]
    assert "Traceback" not in result.stderr


def _send(url: str, body: bytes, method: str = "PUT", ctype: str = "application/json"):
    request = urllib.request.Request(url, data=body, method=method)
    request.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_bluegreen_demo_error_rate_set_over_http(bluegreen_server) -> None:
    server = bluegreen_server(COLOR="green")
    assert json.loads(_get(f"{server.url}/error-rate")[2])["error_rate"] == 0
    assert set(_color_codes(server.url, "", 20)) == {200}
    status, body = _send(f"{server.url}/error-rate", b'{"error_rate": 100}')
    assert (status, body["error_rate"], body["version"]) == (200, 100, "green")
    assert set(_color_codes(server.url, "", 20)) == {500}
    # a caller's own error_rate (the page's slider) still wins for its calls
    assert set(_color_codes(server.url, "?error_rate=0", 5)) == {200}
    # a form, by POST (what `kubectl create --raw` and HTML forms send)
    status, body = _send(f"{server.url}/error-rate", b"error_rate=0", "POST", "text/plain")
    assert (status, body["error_rate"]) == (200, 0)
    assert set(_color_codes(server.url, "", 20)) == {200}
    _, _, metrics = _get(f"{server.url}/metrics")
    assert "bluegreen_demo_error_rate 0.0" in metrics.decode()


@pytest.mark.parametrize("bad", [b'{"error_rate": 150}', b"error_rate=x", b"{}", b""])
def test_bluegreen_demo_bad_error_rate_setting_is_400(bluegreen_server, bad: bytes) -> None:
    server = bluegreen_server()
    status, body = _send(f"{server.url}/error-rate", bad)
    assert status == 400
    assert "percentage from 0 to 100" in body["error"]
    assert json.loads(_get(f"{server.url}/error-rate")[2])["error_rate"] == 0


def test_bluegreen_demo_stats_count_recent_answers(bluegreen_server) -> None:
    server = bluegreen_server(COLOR="yellow")
    empty = json.loads(_get(f"{server.url}/stats?window=10")[2])
    assert (empty["requests"], empty["errors"], empty["error_rate"]) == (0, 0, None)
    _color_codes(server.url, "?error_rate=0", 30)
    _color_codes(server.url, "?error_rate=100", 10)
    _get(f"{server.url}/healthz")  # not a /color answer: not counted
    stats = json.loads(_get(f"{server.url}/stats?window=10")[2])
    assert (stats["requests"], stats["errors"], stats["error_rate"]) == (40, 10, 25.0)
    assert (stats["version"], stats["window_seconds"]) == ("yellow", 10)


@pytest.mark.parametrize("bad", ["0", "301", "abc"])
def test_bluegreen_demo_bad_stats_window_is_400(bluegreen_server, bad: str) -> None:
    server = bluegreen_server()
    status, _, body = _get(f"{server.url}/stats?window={bad}")
    assert status == 400
    assert "window must be" in json.loads(body)["error"]


def test_bluegreen_demo_traffic_calls_and_reports(bluegreen_server, tmp_path) -> None:
    server = bluegreen_server(COLOR="blue")
    _send(f"{server.url}/error-rate", b'{"error_rate": 100}')
    proc = subprocess.Popen(
        [sys.executable, "-m", "bluegreen_demo", "traffic", f"{server.url}/color", "--rps", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        stats: dict = {}
        while time.monotonic() < deadline:
            stats = json.loads(_get(f"{server.url}/stats?window=30")[2])
            if stats["requests"] >= 10:
                break
            time.sleep(0.2)
        assert stats["requests"] >= 10
        assert stats["error_rate"] == 100.0
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "calls a second" in out
    assert "traffic: stopped" in err


@pytest.mark.parametrize(
    ("args", "fragment"),
    [(["traffic", "bluegreen-demo/color"], "must start with http://"),
     (["traffic", "http://x/color", "--rps", "0"], "--rps must be")],
)  # fmt: skip
def test_bluegreen_demo_traffic_bad_arguments(args: list[str], fragment: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bluegreen_demo", *args], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr
