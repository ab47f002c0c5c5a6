#!/usr/bin/env python3
"""Print the address where Traefik's web entrypoint answers from this machine.

    ./traefik_url.py          print it (starting a port-forward first where one is needed)
    ./traefik_url.py --stop   stop the port-forward this script started (the lab's cleanup)

Where it looks, in this order:
  - a LoadBalancer address of the Service traefik/traefik that answers (Docker Desktop,
    OrbStack, Rancher Desktop, k3d);
  - http://127.0.0.1:8000 when something answers there already: kubelab's embedded cluster runs
    Traefik on this machine with that address, or an earlier port-forward is still up;
  - otherwise (kind, minikube) a `kubectl port-forward` to 127.0.0.1:8000, left running in the
    background until `--stop`.
Standard library only (plus kubectl on PATH). Exit status 1, with the reason, when Traefik
cannot be reached.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

LOCAL = "http://127.0.0.1:8000"
FORWARD_WAIT_S = 20
WORK = Path(
    os.environ.get("KUBELAB_WORK")
    or Path.home() / ".local" / "state" / "kubelab" / "work" / "ingress-traefik"
)
PID_FILE = WORK / "traefik-port-forward.pid"


def answers(url: str) -> bool:
    """Any HTTP answer counts (Traefik says 404 where no route matches)."""
    try:
        with urllib.request.urlopen(f"{url}/", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def kubectl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["kubectl", *args], capture_output=True, text=True, timeout=60)


def stop() -> int:
    with contextlib.suppress(OSError, ValueError):  # not started, or gone already
        os.kill(int(PID_FILE.read_text()), signal.SIGTERM)
    PID_FILE.unlink(missing_ok=True)
    return 0


def port_forward() -> str | None:
    """Start `kubectl port-forward` in the background; the URL once it answers, else None."""
    WORK.mkdir(parents=True, exist_ok=True)
    log = WORK / "traefik-port-forward.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["kubectl", "port-forward", "-n", "traefik", "service/traefik", "8000:80"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    PID_FILE.write_text(str(proc.pid))
    deadline = time.monotonic() + FORWARD_WAIT_S
    while time.monotonic() < deadline and proc.poll() is None:
        if answers(LOCAL):
            return LOCAL
        time.sleep(0.5)
    stop()
    print(f"kubectl port-forward did not come up: {log.read_text().strip()}", file=sys.stderr)
    return None


def find() -> str | None:
    svc = kubectl("get", "service", "traefik", "-n", "traefik", "-o",
                  "jsonpath={.status.loadBalancer.ingress[0].hostname}"
                  "{.status.loadBalancer.ingress[0].ip}")  # fmt: skip
    if svc.returncode == 0 and svc.stdout.strip() and answers(f"http://{svc.stdout.strip()}"):
        return f"http://{svc.stdout.strip()}"
    if answers(LOCAL):
        return LOCAL
    if svc.returncode != 0:
        print("Traefik is not running here: kubelab addons install traefik", file=sys.stderr)
        return None
    return port_forward()


def main(argv: list[str]) -> int:
    if argv == ["--stop"]:
        return stop()
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    url = find()
    if url is None:
        return 1
    print(url)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
