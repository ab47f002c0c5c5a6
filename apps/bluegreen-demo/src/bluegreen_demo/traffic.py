"""`bluegreen-demo traffic URL...`: what the page does in a browser, without one.

Calls each URL (a Service's /color) a few times a second, forever, and prints once in a while
how many calls succeeded and failed, and which versions answered. A blue/green analysis that
reads the app's /stats needs such traffic, as the reference needed a browser tab left open.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter

REPORT_EVERY_S = 10.0
TIMEOUT_S = 2.0


def _call(url: str) -> tuple[bool, str]:
    """(succeeded, the version that answered or what went wrong)."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return True, str(json.loads(response.read()).get("version", "?"))
    except urllib.error.HTTPError as err:
        return False, f"HTTP {err.code}"
    except (OSError, ValueError) as err:
        return False, type(err).__name__


def _drive(url: str, rps: float, stop: threading.Event) -> None:
    pause = 1.0 / rps
    seen: Counter[str] = Counter()
    ok = failed = 0
    last = time.monotonic()
    while not stop.is_set():
        started = time.monotonic()
        good, what = _call(url)
        seen[what] += 1
        ok, failed = ok + good, failed + (not good)
        now = time.monotonic()
        if now - last >= REPORT_EVERY_S:
            answers = ", ".join(f"{k}: {v}" for k, v in seen.most_common())
            print(f"traffic: {url}: {ok} ok, {failed} failed ({answers})", flush=True)
            seen.clear()
            ok = failed = 0
            last = now
        stop.wait(max(0.0, pause - (time.monotonic() - started)))


def run(urls: list[str], rps: float) -> int:
    stop = threading.Event()

    def _stop(*_: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"traffic: {rps:g} calls a second to each of {', '.join(urls)}", flush=True)
    threads = [threading.Thread(target=_drive, args=(u, rps, stop), daemon=True) for u in urls]
    for t in threads:
        t.start()
    while not stop.wait(0.5):
        pass
    for t in threads:
        t.join(timeout=TIMEOUT_S + 1)
    print("traffic: stopped", file=sys.stderr, flush=True)
    return 0
