"""The embedded cluster's stand-in for the Prometheus Operator's config-reloader sidecar.

In a cluster the operator writes Prometheus' configuration into a Secret (gzipped, key
`prometheus.yaml.gz`), the kubelet mounts it into the Pod, and the config-reloader sidecar
expands `$(POD_NAME)`/`$(SHARD)`, writes the result for Prometheus and calls `/-/reload`. A
host process has no mount, so this program watches that Secret through the API server and does
the same. Run by kubelab.addons.kube_prometheus_stack, one per cluster; stops on SIGTERM.

    python -m kubelab.addons.prometheus_config --server URL --ca CA --cert CRT --key KEY \
        --namespace N --secret S --config FILE --reload-url URL --pod-name NAME
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import logging
import os
import re
import signal
import ssl
import sys
import threading
import urllib.parse
import urllib.request
from pathlib import Path

KEY = "prometheus.yaml.gz"
WATCH_TIMEOUT_S = 60  # each watch is re-opened after this (and after any error)
RETRY_S = 2.0

log = logging.getLogger("prometheus-config")


def expand(text: str, env: dict[str, str]) -> str:
    """`$(NAME)` → env[NAME], as the config-reloader does; unknown names stay as they are."""
    return re.sub(r"\$\(([A-Z_][A-Z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), text)


def render(secret_data: dict[str, str] | None, env: dict[str, str]) -> str | None:
    """The configuration Prometheus should run, from the Secret's data (None: nothing yet)."""
    raw = (secret_data or {}).get(KEY)
    if not raw:
        return None
    return expand(gzip.decompress(base64.b64decode(raw)).decode(), env)


def write_if_changed(path: Path, text: str) -> bool:
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # Prometheus never reads half a file
    return True


def reload(url: str) -> None:
    req = urllib.request.Request(url, method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=10) as r:
        r.read()


class API:
    """The Secret's list and watch, with the standard library only: this process lives as long
    as the cluster, and the official client would triple its memory."""

    def __init__(self, server: str, ca: str, cert: str, key: str, namespace: str, secret: str):
        self.base = f"{server.rstrip('/')}/api/v1/namespaces/{namespace}/secrets"
        self.selector = urllib.parse.quote(f"metadata.name={secret}")
        self.tls = ssl.create_default_context(cafile=ca)
        self.tls.load_cert_chain(cert, key)

    def _open(self, query: str, timeout: float):
        url = f"{self.base}?fieldSelector={self.selector}&{query}"
        return urllib.request.urlopen(url, context=self.tls, timeout=timeout)

    def list(self) -> tuple[list[dict], str]:
        with self._open("limit=10", 30) as r:
            body = json.load(r)
        return body.get("items") or [], body["metadata"]["resourceVersion"]

    def watch(self, resource_version: str):
        query = f"watch=1&resourceVersion={resource_version}&timeoutSeconds={WATCH_TIMEOUT_S}"
        with self._open(query, WATCH_TIMEOUT_S + 10) as r:
            for line in r:
                if line.strip():
                    yield json.loads(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="prometheus_config", description=__doc__.split("\n")[0])
    parser.add_argument("--server", required=True, help="the API server's URL")
    parser.add_argument("--ca", required=True, help="the cluster CA's certificate file")
    parser.add_argument("--cert", required=True, help="this program's client certificate")
    parser.add_argument("--key", required=True, help="its key")
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--reload-url", required=True)
    parser.add_argument("--pod-name", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    stop = threading.Event()

    def finish(*_: object) -> None:  # also interrupts a watch waiting for its next event
        stop.set()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGINT, finish)
    env = {"POD_NAME": args.pod_name, "SHARD": "0"}
    api = API(args.server, args.ca, args.cert, args.key, args.namespace, args.secret)
    pending_reload = False

    def apply(data: dict[str, str] | None) -> None:
        nonlocal pending_reload
        text = render(data, env)
        if text is not None and write_if_changed(args.config, text):
            log.info("configuration changed (%d bytes): reloading Prometheus", len(text))
            pending_reload = True
        for _ in range(60):  # Prometheus may still be starting: up to 30 s
            if not pending_reload or stop.is_set():
                return
            try:
                reload(args.reload_url)
                pending_reload = False
            except OSError as e:
                log.warning("reload failed: %s", e)
                stop.wait(0.5)

    while not stop.is_set():
        try:
            items, version = api.list()
            for item in items:
                apply(item.get("data"))
            for event in api.watch(version):
                if stop.is_set():
                    break
                if event.get("type") in ("ADDED", "MODIFIED"):
                    apply(event["object"].get("data"))
                elif event.get("type") == "ERROR":  # e.g. 410 Gone: list again
                    break
            if pending_reload:
                apply(None)
        except (OSError, ValueError, KeyError) as e:  # the API server restarting, a dropped watch…
            log.warning("watching secret %s/%s: %s", args.namespace, args.secret, e)
            stop.wait(RETRY_S)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
