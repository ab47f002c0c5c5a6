#!/usr/bin/env python3
"""Measure how Traefik splits bluegreen's traffic between versions.

    ./split.py [--within SECONDS] N VERSION PERCENT TOLERANCE [-H 'Name: value' ...]

Sends N requests for bluegreen's /color through Traefik (Host: bluegreen.localhost, plus any
-H headers), counts which version answered each, and exits 1 unless VERSION answered PERCENT %
of them, give or take TOLERANCE points. With --within SECONDS it measures again (N requests each
time) until that holds or SECONDS have passed: Traefik applies a changed route a moment after
`kubectl apply` (it batches changes for 2 s), and the first measurement may see the old one.

Traefik's address: $TRAEFIK if set, else what ../ingress-traefik/traefik_url.py prints.
Standard library only.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

URL_SCRIPT = Path(__file__).resolve().parent.parent / "ingress-traefik" / "traefik_url.py"


def traefik() -> str | None:
    if os.environ.get("TRAEFIK"):
        return os.environ["TRAEFIK"]
    got = subprocess.run([sys.executable, str(URL_SCRIPT)], stdout=subprocess.PIPE, text=True,
                         timeout=60)  # fmt: skip
    return got.stdout.strip() if got.returncode == 0 else None


def version_of(url: str, headers: dict[str, str]) -> str:
    """The version that answered one request, or what went wrong in its place."""
    req = urllib.request.Request(f"{url}/color", headers={"Host": "bluegreen.localhost", **headers})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return str(json.loads(r.read()).get("version", "no version in the answer"))
    except urllib.error.HTTPError as e:
        return f"HTTP {e.code}"
    except (OSError, ValueError) as e:
        return f"error: {e}"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--within", type=float, default=0.0, metavar="SECONDS")
    p.add_argument("n", type=int)
    p.add_argument("version")
    p.add_argument("percent", type=float)
    p.add_argument("tolerance", type=float)
    p.add_argument("-H", dest="headers", action="append", default=[], metavar="'NAME: VALUE'")
    args = p.parse_args(argv)
    if args.n < 1 or any(":" not in h for h in args.headers):
        p.error("N must be at least 1 and every -H must be 'Name: value'")
    headers = dict((k.strip(), v.strip()) for k, v in (h.split(":", 1) for h in args.headers))
    url = traefik()
    if url is None:
        return 1
    deadline, tries = time.monotonic() + args.within, 0
    while True:
        tries += 1
        counts = collections.Counter(version_of(url, headers) for _ in range(args.n))
        share = 100 * counts[args.version] / args.n
        ok = abs(share - args.percent) <= args.tolerance
        if ok or time.monotonic() >= deadline:
            break
    for version, count in counts.most_common():
        print(f"{count:6d} {version}")
    what = (f"{args.version} answered {counts[args.version]} of {args.n} ({share:.0f}%), "
            f"expected {args.percent:g}% ± {args.tolerance:g}")  # fmt: skip
    if tries > 1:
        what += f" (measurement {tries})"
    print(f"ok: {what}" if ok else f"off: {what}", file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
