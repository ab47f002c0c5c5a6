"""The page in a real headless Chromium: boxes painted by the version that answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page

PAINTED = """([state, min]) =>
    document.querySelectorAll(`.box[data-state="${state}"]`).length >= min"""

BACKGROUNDS = """(state) => Array.from(document.querySelectorAll(`.box[data-state="${state}"]`),
    (box) => getComputedStyle(box).backgroundColor)"""


def _rgb(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


def _open(browser: Any, url: str) -> Page:
    page = browser.new_page()
    page.goto(url)
    return page


def test_bluegreen_demo_page_paints_blue_then_errors(
    bluegreen_server, bluegreen_browser, tmp_path: Path
) -> None:
    server = bluegreen_server(COLOR="blue")
    page = _open(bluegreen_browser, server.url)
    try:
        # wait_for_function polls in the page until it holds or the deadline passes
        page.wait_for_function(PAINTED, arg=["ok", 20], timeout=20_000)
        assert set(page.evaluate(BACKGROUNDS, "ok")) == {_rgb("#2563eb")}
        assert page.locator(".box").count() == 100
        assert "last answer: blue" in page.locator("#stats").inner_text()
        page.screenshot(path=tmp_path / "bluegreen-blue.png")

        slider = page.locator("#error-rate")
        slider.focus()
        page.keyboard.press("End")  # what a person does: slide all the way right
        assert slider.input_value() == "100"
        assert page.locator("#error-rate-value").inner_text() == "100 %"
        page.wait_for_function(PAINTED, arg=["error", 10], timeout=20_000)
        error_boxes = page.locator('.box[data-state="error"]')
        assert error_boxes.first.inner_text() == "\u2715"
        assert set(page.evaluate(BACKGROUNDS, "error")) == {_rgb("#1f2937")}
        page.screenshot(path=tmp_path / "bluegreen-errors.png")
    finally:
        page.close()
    # the server saw the failures the page showed
    with Path(server.log).open() as log:
        assert "Traceback" not in log.read()


def test_bluegreen_demo_page_paints_green(bluegreen_server, bluegreen_browser) -> None:
    server = bluegreen_server(COLOR="green")
    page = _open(bluegreen_browser, server.url)
    try:
        page.wait_for_function(PAINTED, arg=["ok", 20], timeout=20_000)
        assert set(page.evaluate(BACKGROUNDS, "ok")) == {_rgb("#16a34a")}
        assert page.locator('.box[data-state="error"]').count() == 0
    finally:
        page.close()


def test_bluegreen_demo_page_follows_a_switch(bluegreen_server, bluegreen_browser) -> None:
    """The same page sees the switch live when another version starts answering on its
    address (what a Service does on promotion): here the blue server is replaced by a green
    one on the same port."""
    blue = bluegreen_server(COLOR="blue")
    page = _open(bluegreen_browser, blue.url)
    try:
        page.wait_for_function(PAINTED, arg=["ok", 5], timeout=20_000)
        port = blue.url.rsplit(":", 1)[1]
        blue.process.terminate()
        blue.process.wait(timeout=10)
        bluegreen_server(COLOR="green", PORT=port)
        green = _rgb("#16a34a")
        page.wait_for_function(
            """(green) => Array.from(document.querySelectorAll('.box[data-state="ok"]'))
                .filter((b) => getComputedStyle(b).backgroundColor === green).length >= 10""",
            arg=green,
            timeout=20_000,
        )
    finally:
        page.close()
