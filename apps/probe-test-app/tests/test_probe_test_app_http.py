"""The app's HTTP interface, over real HTTP against the console script."""

from __future__ import annotations

import html
import json
import re
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client.parser import text_string_to_metric_families

if TYPE_CHECKING:  # the fixtures' helper class; conftest is not importable at run time
    from conftest import ProbeApp

OK = {"status": 200, "title": "OK"}
UNHEALTHY = {"status": 500, "title": "Unhealthy"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def probe(app: ProbeApp, name: str) -> tuple[int, dict[str, object]]:
    status, headers, body = app.request("GET", f"/{name}")
    assert headers["content-type"] == "application/json"
    return status, json.loads(body)


def page_state(app: ProbeApp) -> dict[str, str]:
    status, headers, body = app.request("GET", "/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    text = body.decode()
    found = dict(re.findall(r'<span id="(readyz|livez)"[^>]*>(\w+)</span>', text))
    found["version"] = re.search(r'<p id="version">Version ([^<]+)</p>', text).group(1)
    found["hostname"] = re.search(r'<strong id="hostname">([^<]*)</strong>', text).group(1)
    return found


def metrics(app: ProbeApp) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, headers, body = app.request("GET", "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def requests_total(values: dict, path: str, code: int) -> float:
    return values.get(("http_requests_total", (("code", str(code)), ("path", path))), 0.0)


def test_page_shows_hostname_probe_states_and_version(probe_app: ProbeApp) -> None:
    state = page_state(probe_app)
    assert state == {
        "readyz": "Healthy",
        "livez": "Healthy",
        "version": "v1",
        "hostname": html.escape(socket.gethostname()),
    }
    _, headers, body = probe_app.request("GET", "/")
    text = body.decode()
    assert '<button type="submit" name="readyz"' in text
    assert '<button type="submit" name="livez"' in text
    assert "Toggle Readiness" in text and "Toggle Liveness" in text
    assert '<form method="post" action="/">' in text
    assert "background: #1f6feb" in text  # v1 is blue
    assert headers["cache-control"] == "no-store"


def test_v2_differs_in_version_and_colour(probe_app_factory: Callable[..., ProbeApp]) -> None:
    app = probe_app_factory({"APP_VERSION": "v2"})
    assert page_state(app)["version"] == "v2"
    _, _, body = app.request("GET", "/")
    assert "background: #1a7f37" in body.decode()  # v2 is green
    assert "background: #1f6feb" not in body.decode()


def test_probes_start_healthy_with_exact_json(probe_app: ProbeApp) -> None:
    for name in ("livez", "readyz"):
        status, headers, body = probe_app.request("GET", f"/{name}")
        assert status == 200
        assert headers["content-type"] == "application/json"
        assert json.loads(body) == OK


def test_toggles_flip_the_probes_and_redirect(probe_app: ProbeApp) -> None:
    status, headers, body = probe_app.request("POST", "/", body="readyz=toggle", headers=FORM)
    assert status == 303
    assert headers["location"] == "/"
    assert body == b""
    assert probe(probe_app, "readyz") == (500, UNHEALTHY)
    assert probe(probe_app, "livez") == (200, OK)
    assert page_state(probe_app)["readyz"] == "Unhealthy"

    assert probe_app.toggle("livez") == 303
    assert probe(probe_app, "livez") == (500, UNHEALTHY)
    assert page_state(probe_app)["livez"] == "Unhealthy"

    # The page's buttons send the field with an empty value when they have none: accept that.
    assert probe_app.toggle("readyz") == 303
    assert probe_app.request("POST", "/", body="livez=", headers=FORM)[0] == 303
    assert probe(probe_app, "readyz") == (200, OK)
    assert probe(probe_app, "livez") == (200, OK)
    assert page_state(probe_app)["readyz"] == "Healthy"


def test_head_requests_get_headers_only(probe_app: ProbeApp) -> None:
    status, headers, body = probe_app.request("HEAD", "/livez")
    assert (status, body) == (200, b"")
    assert headers["content-type"] == "application/json"


def test_metrics_count_requests_and_show_probe_gauges(probe_app: ProbeApp) -> None:
    before = metrics(probe_app)
    assert before[("probe_healthy", (("probe", "livez"),))] == 1
    assert before[("probe_healthy", (("probe", "readyz"),))] == 1
    assert before[("probe_test_app_info", (("version", "v1"),))] == 1

    for _ in range(3):
        probe_app.request("GET", "/livez")
    probe_app.toggle("readyz")
    for _ in range(2):
        probe_app.request("GET", "/readyz")
    probe_app.request("GET", "/")
    probe_app.request("GET", "/no-such-page")
    probe_app.request("DELETE", "/livez")

    after = metrics(probe_app)
    assert after[("probe_healthy", (("probe", "readyz"),))] == 0
    assert after[("probe_healthy", (("probe", "livez"),))] == 1
    assert after[("probe_toggles_total", (("probe", "readyz"),))] == 1
    expected = {
        ("/livez", 200): 3,
        ("/readyz", 500): 2,
        ("/", 303): 1,
        ("/", 200): 1,
        ("other", 404): 1,
        ("/livez", 405): 1,
        ("/metrics", 200): 1,  # the first scrape
    }
    for (path, code), increase in expected.items():
        delta = requests_total(after, path, code) - requests_total(before, path, code)
        assert delta == increase, (path, code)


def test_bad_form_is_400_with_a_clear_message(probe_app: ProbeApp) -> None:
    for body in ("", "foo=bar", "ready=1"):
        status, headers, text = probe_app.request("POST", "/", body=body, headers=FORM)
        assert status == 400
        assert headers["content-type"].startswith("text/plain")
        assert b"readyz or livez" in text
    assert probe(probe_app, "readyz") == (200, OK)


def test_other_bad_requests(probe_app: ProbeApp) -> None:
    status, _, text = probe_app.request("GET", "/nope")
    assert status == 404 and b"/livez" in text
    status, headers, _ = probe_app.request("POST", "/livez", body="x", headers=FORM)
    assert status == 405 and headers["allow"] == "GET, HEAD"
    status, headers, _ = probe_app.request("PUT", "/", body="readyz=1", headers=FORM)
    assert status == 405 and headers["allow"] == "GET, HEAD, POST"
    status, _, text = probe_app.request(
        "POST", "/", body='{"readyz": 1}', headers={"Content-Type": "application/json"}
    )
    assert status == 415 and b"x-www-form-urlencoded" in text
    status, _, _ = probe_app.request("POST", "/", body="readyz=" + "x" * 5000, headers=FORM)
    assert status == 413
    assert probe(probe_app, "readyz") == (200, OK)
