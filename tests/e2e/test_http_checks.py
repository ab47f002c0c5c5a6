"""`http` expectations and actions through the real API server's service proxy, to a real
probe-test-app. kwok runs no containers, so the app runs in a network namespace made for this
test (a veth pair on a 198.18.0.0/15 benchmark address, never loopback: the API server refuses to
proxy to loopback). The API server only proxies to addresses that belong to Pods, so a Pod on a
kwok node stands for the app: its status is patched to the app's address, and the endpoints
controller then lists that address behind the Service as it would for any Pod.

The embedded flavour says it cannot run containers, which would skip every HTTP step; here a
real server does stand behind the Service, so the test switches that one capability on. Nothing
else is replaced: the API server, its proxy, the app and the runner are the real ones."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from kubelab.lab.loader import load_lab
from kubelab.run.orchestrate import Runner
from kubelab.session import Session

LAB = """\
apiVersion: kubelab.dev/v1beta1
kind: Lab
metadata:
  name: http-lab
  title: HTTP through the API server
spec:
  namespace: http-test
  timeout: 30s
  steps:
    - id: serve
      title: A Service in front of the app
      run:
        - kubectl create namespace http-test
        - kubectl apply -f web.yaml
        - kubectl -n http-test wait --for=condition=Ready pod/web --timeout=60s
        - kubectl -n http-test patch pod web --subresource=status --type=merge --patch-file ip.json
      expect:
        - http: {service: web, port: 8000, path: /, contains: ["Toggle Readiness", "v1"]}
        - http: {service: web, port: http, path: /readyz, json: {status: 200, title: OK}}
        - http: {pod: web, port: 8080, path: /livez, json: {status: 200, title: OK}}
        - http: {selector: app=web, port: 8080, path: /livez, status: 200}
    - id: toggle
      title: Press Toggle Readiness
      interactive: true
      run: [kubectl port-forward service/web 8000:8000]
      automated:
        - http: {service: web, port: 8000, path: /, method: POST, form: {readyz: toggle}}
      expect:
        - http: {service: web, port: 8000, path: /readyz, status: 500,
                 json: {status: 500, title: Unhealthy}}
    - id: wrong
      title: An answer that does not come
      timeout: 3s
      expect:
        - http: {service: web, port: 8000, path: /readyz, status: 200}
  cleanup:
    run: [kubectl delete namespace http-test --ignore-not-found --wait=false]
    expect:
      - absent: {apiVersion: v1, kind: Namespace, name: http-test}
"""

MANIFEST = """\
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: http-test, labels: {app: web}}
spec:
  # a simulated node stands in for the app (also when the cluster has a real node, whose
  # simulated nodes are tainted)
  nodeSelector: {type: kwok}
  tolerations: [{key: kwok.x-k8s.io/node, operator: Exists, effect: NoSchedule}]
  containers:
    - {name: web, image: "localhost/kubelab/probe-test-app:v1", ports: [{containerPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: http-test}
spec:
  selector: {app: web}
  ports: [{name: http, port: 8000, targetPort: 8080}]
"""


@pytest.fixture
def app_in_netns():
    """probe-test-app listening in its own network namespace; yields its address."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to make a network namespace")
    tag = f"{random.randrange(16**4):04x}"
    ns, host_if, ns_if = f"kl-http-{tag}", f"klh{tag}", f"kln{tag}"
    block = random.randrange(1, 16000) * 4  # a /30 inside 198.18.0.0/16
    host_ip = f"198.18.{block // 256}.{block % 256 + 1}"
    app_ip = f"198.18.{block // 256}.{block % 256 + 2}"
    setup = [
        ["ip", "netns", "add", ns],
        ["ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if],
        ["ip", "link", "set", ns_if, "netns", ns],
        ["ip", "addr", "add", f"{host_ip}/30", "dev", host_if],
        ["ip", "link", "set", host_if, "up"],
        ["ip", "-n", ns, "addr", "add", f"{app_ip}/30", "dev", ns_if],
        ["ip", "-n", ns, "link", "set", ns_if, "up"],
    ]
    app = None
    try:
        for cmd in setup:
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                pytest.skip(f"cannot make a network namespace here: {proc.stderr.strip()}")
        exe = str(Path(sys.executable).with_name("probe-test-app"))
        app = subprocess.Popen(
            ["ip", "netns", "exec", ns, exe],
            env={**os.environ, "PORT": "8080", "APP_VERSION": "v1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://{app_ip}:8080/livez", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or app.poll() is not None:
                    raise AssertionError("probe-test-app did not start in the namespace") from None
                time.sleep(0.2)
        yield app_ip
    finally:
        if app is not None:
            app.terminate()
            app.wait(timeout=10)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


class Recorder:
    def __init__(self) -> None:
        self.commands: list[str] = []

    def step_started(self, index, total, step) -> None: ...
    def waiting(self, what, elapsed, timeout) -> None: ...
    def step_finished(self, report) -> None: ...
    def cleanup_started(self) -> None: ...

    def command_started(self, command: str) -> None:
        self.commands.append(command)


def test_http_expectations_and_actions_through_the_service_proxy(
    embedded_cluster, app_in_netns, tmp_path
):
    folder = tmp_path / "http-lab"
    folder.mkdir()
    (folder / "lab.yaml").write_text(textwrap.dedent(LAB))
    (folder / "web.yaml").write_text(MANIFEST)
    status = {"status": {"podIP": app_in_netns, "podIPs": [{"ip": app_in_netns}]}}
    (folder / "ip.json").write_text(json.dumps(status))
    loaded = load_lab(folder)
    with Session.open() as session:
        assert session.context.name == embedded_cluster.context
        assert session.flavour.name == "embedded"
        session.flavour = dataclasses.replace(session.flavour, containers=True)  # see docstring
        session.capabilities.flavour = session.flavour
        recorder = Recorder()
        report = Runner(session, loaded, recorder).run()
    steps = {s.id: s for s in report.steps}
    assert steps["serve"].status == "passed", steps["serve"]
    assert steps["toggle"].status == "passed", steps["toggle"]
    assert "(automated) POST service/web:8000/" in recorder.commands
    assert "kubectl port-forward service/web 8000:8000" not in recorder.commands
    wrong = steps["wrong"]
    assert wrong.status == "failed"
    assert wrong.failures[0].detail == "answered 500, expected 200"
    assert wrong.failures[0].live["status"] == 500
    assert '"title": "Unhealthy"' in wrong.failures[0].live["body"]
    assert report.cleanup is not None and report.cleanup.status == "passed"
