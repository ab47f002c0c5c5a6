#!/usr/bin/env python3
"""Ask the monitoring stack's Prometheus, from your terminal, on any cluster.

    ./promql.py targets                       what Prometheus scrapes, and whether each is up
    ./promql.py query 'EXPR' [--min-series N] run a PromQL query; print one line per series
    ./promql.py dashboard FILE                run every panel's PromQL of a Grafana dashboard
                                              (a JSON file, or a ConfigMap YAML holding one)

How it reaches Prometheus, in this order: $PROMETHEUS_URL if you set it (say, after a
`kubectl port-forward`); else the API server's proxy to the Service
monitoring/kube-prometheus-stack-prometheus (what the chart installs: no port-forward needed);
else, on kubelab's embedded cluster, the loopback address kubelab's host-process Prometheus
publishes in the ConfigMap monitoring/kubelab-prometheus.

Exit status: 0 when the answer is what was asked for; 1 otherwise (no Prometheus, a query
error, fewer series than --min-series, a dashboard panel without series). Standard library
only (plus kubectl on PATH).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

NAMESPACE = "monitoring"
SERVICE = "kube-prometheus-stack-prometheus"
PORT_NAME = "http-web"
ADDRESS_CONFIGMAP = "kubelab-prometheus"
TIMEOUT_S = 20


class Failure(Exception):
    pass


def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["kubectl", *args], capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    except FileNotFoundError:
        raise Failure("kubectl is not on your PATH") from None
    except subprocess.TimeoutExpired:
        raise Failure(f"`kubectl {' '.join(args)}` did not answer within {TIMEOUT_S} s") from None


def fetch(path: str, params: dict[str, str]) -> dict:
    """GET Prometheus' HTTP API at `path` (e.g. /api/v1/query) and return its `data`."""
    query = urllib.parse.urlencode(params)
    url = os.environ.get("PROMETHEUS_URL")
    if not url:
        svc = kubectl("get", "service", SERVICE, "-n", NAMESPACE, "-o", "name")
        if svc.returncode == 0:
            raw = f"/api/v1/namespaces/{NAMESPACE}/services/{SERVICE}:{PORT_NAME}/proxy{path}"
            proc = kubectl("get", "--raw", f"{raw}?{query}" if query else raw)
            if proc.returncode != 0:
                raise Failure(f"Prometheus did not answer through the API server: {proc.stderr}")
            return unwrap(proc.stdout)
        cm = kubectl("get", "configmap", ADDRESS_CONFIGMAP, "-n", NAMESPACE,
                     "-o", "jsonpath={.data.url}")  # fmt: skip
        url = cm.stdout.strip() if cm.returncode == 0 else ""
        if not url:
            raise Failure(
                f"no Prometheus: neither service {NAMESPACE}/{SERVICE} nor configmap "
                f"{NAMESPACE}/{ADDRESS_CONFIGMAP} exists. Install the stack: "
                "`kubelab addons install kube-prometheus-stack`"
            )
    try:
        full = f"{url.rstrip('/')}{path}" + (f"?{query}" if query else "")
        with urllib.request.urlopen(full, timeout=TIMEOUT_S) as r:
            return unwrap(r.read().decode())
    except urllib.error.HTTPError as e:
        return unwrap(e.read().decode())
    except OSError as e:
        raise Failure(f"Prometheus at {url} does not answer: {e}") from None


def unwrap(body: str) -> dict:
    try:
        answer = json.loads(body)
    except ValueError:
        raise Failure(f"not an answer of Prometheus' API: {body[:200]!r}") from None
    if answer.get("status") != "success":
        raise Failure(f"Prometheus says: {answer.get('errorType')}: {answer.get('error')}")
    return answer["data"]


def labels(metric: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items())) + "}"


def query(expr: str) -> list[tuple[str, str]]:
    data = fetch("/api/v1/query", {"query": expr})
    if data["resultType"] in ("scalar", "string"):
        return [("", data["result"][1])]
    return [(labels(s["metric"]), s["value"][1]) for s in data["result"]]


def cmd_targets(_args: argparse.Namespace) -> int:
    active = fetch("/api/v1/targets", {"state": "active"})["activeTargets"]
    up = 0
    for t in sorted(active, key=lambda t: (t["labels"].get("job", ""), t["scrapeUrl"])):
        up += t["health"] == "up"
        error = f"  ({t['lastError']})" if t.get("lastError") else ""
        print(f"{t['health']:<8} {t['labels'].get('job', '-'):<40} {t['scrapeUrl']}{error}")
    print(f"{up} of {len(active)} targets up")
    return 0  # Prometheus answered; a target that is not up yet is news, not an error


def cmd_query(args: argparse.Namespace) -> int:
    series = query(args.expr)
    for name, value in series:
        print(f"{name} {value}")
    if len(series) < args.min_series:
        print(f"{len(series)} series; wanted at least {args.min_series}", file=sys.stderr)
        return 1
    return 0


def dashboard_json(path: str) -> dict:
    """A dashboard's JSON: the .json file itself, or the *.json key of a ConfigMap manifest
    (read by kubectl, which turns its YAML into JSON without sending anything)."""
    if path.endswith(".json"):
        try:
            with open(path) as fh:
                return json.load(fh)
        except (OSError, ValueError) as e:
            raise Failure(f"cannot read {path}: {e}") from None
    proc = kubectl("create", "--dry-run=client", "-o", "json", "-f", path)
    if proc.returncode != 0:
        raise Failure(f"cannot read {path}: {proc.stderr.strip()}")
    data = json.loads(proc.stdout).get("data") or {}
    boards = [v for k, v in data.items() if k.endswith(".json")]
    if len(boards) != 1:
        raise Failure(f"{path}: expected a ConfigMap with one *.json key")
    return json.loads(boards[0])


def cmd_dashboard(args: argparse.Namespace) -> int:
    board = dashboard_json(args.file)
    empty = 0
    panels = [p for p in board.get("panels", []) if p.get("targets")]
    for panel in panels:
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", "1m")
            n = len(query(expr))
            empty += n == 0
            print(f"{'ok' if n else 'EMPTY':<6} {n:>3} series  {panel['title']}: {expr}")
    if not panels:
        print("the dashboard has no panels with queries", file=sys.stderr)
        return 1
    return 1 if empty else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="promql.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("targets", help="what Prometheus scrapes").set_defaults(run=cmd_targets)
    q = sub.add_parser("query", help="run a PromQL query")
    q.add_argument("expr")
    q.add_argument("--min-series", type=int, default=0, help="fail with fewer series")
    q.set_defaults(run=cmd_query)
    d = sub.add_parser("dashboard", help="run every panel's query of a Grafana dashboard")
    d.add_argument("file")
    d.set_defaults(run=cmd_dashboard)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except Failure as e:
        print(f"promql.py: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
