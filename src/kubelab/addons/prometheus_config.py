"""The embedded cluster's stand-in for the Prometheus Operator's config-reloader sidecar.

In a cluster the operator writes Prometheus' configuration into a Secret (gzipped, key
`prometheus.yaml.gz`), the kubelet mounts it into the Pod, and the config-reloader sidecar
expands `$(POD_NAME)`/`$(SHARD)`, writes the result for Prometheus and calls `/-/reload`. A
host process has no mount, so this program watches that Secret through the API server and does
the same. Run by kubelab.addons.kube_prometheus_stack, one per cluster; stops on SIGTERM.

    python -m kubelab.addons.prometheus_config --kubeconfig K --namespace N --secret S \
        --config FILE --reload-url URL --pod-name NAME
"""

from __future__ import annotations

import argparse
import base64
import gzip
import logging
import os
import re
import signal
import sys
import threading
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="prometheus_config", description=__doc__.split("\n")[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--reload-url", required=True)
    parser.add_argument("--pod-name", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    from kubernetes import client, config, watch

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    env = {"POD_NAME": args.pod_name, "SHARD": "0"}
    api = client.CoreV1Api(config.new_client_from_config(config_file=args.kubeconfig))
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
            found = api.list_namespaced_secret(
                args.namespace, field_selector=f"metadata.name={args.secret}", _request_timeout=30
            )
            for item in found.items:
                apply(item.data)
            w = watch.Watch()
            for event in w.stream(
                api.list_namespaced_secret,
                args.namespace,
                field_selector=f"metadata.name={args.secret}",
                resource_version=found.metadata.resource_version,
                timeout_seconds=WATCH_TIMEOUT_S,
                _request_timeout=WATCH_TIMEOUT_S + 10,
            ):
                if stop.is_set():
                    w.stop()
                    break
                if event["type"] in ("ADDED", "MODIFIED"):
                    apply(event["object"].data)
            if pending_reload:
                apply(None)
        except Exception as e:  # the API server restarting, a dropped watch…
            log.warning("watching secret %s/%s: %s", args.namespace, args.secret, e)
            stop.wait(RETRY_S)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
