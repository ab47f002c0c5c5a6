"""Traefik on the embedded cluster: the real Traefik as a host process against the real API
server. Installing twice changes nothing and says so; it listens on loopback only; it answers
HTTP and takes its GatewayClass; uninstalling leaves nothing of it (CRDs, Gateway API CRDs,
classes, namespace, process)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from sockets import listening_addresses

from kubelab.addons import traefik
from kubelab.embedded.cluster import cluster_dir


def left_behind(c) -> list[str]:
    crds = c.kubectl("get", "crd", "-o", "name").stdout.split()
    left = [n for n in crds if n.endswith(("traefik.io", "gateway.networking.k8s.io"))]
    for kind in ("ingressclass", "namespace"):
        if c.kubectl("get", kind, "traefik", check=False).returncode == 0:
            left.append(f"{kind}/traefik")
    return left


def _status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_traefik_host_process_install_twice_serve_and_uninstall(embedded_cluster, kubelab_cli):
    c, env = embedded_cluster, embedded_cluster.env
    pid_file = cluster_dir(c.name) / "addons" / "traefik" / "traefik.pid"
    first = kubelab_cli("addons", "install", "traefik", env=env)
    try:
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        pid = int(pid_file.read_text())
        again = kubelab_cli("addons", "install", "traefik", env=env)
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        said = " ".join(again.stdout.split())  # the terminal may wrap lines
        assert "already running" in said and "nothing to change" in said, said
        assert int(pid_file.read_text()) == pid

        # everything it listens on is loopback: the web entrypoint and the ping one
        listening = listening_addresses(pid)
        assert len(listening) >= 2 and all(a.startswith("0100007F:") for a in listening), listening
        assert f"0100007F:{traefik.WEB_PORT:04X}" in listening

        # no route yet: Traefik itself answers 404 on its web entrypoint
        assert _status_of(f"http://127.0.0.1:{traefik.WEB_PORT}/") == 404
        gc = json.loads(c.kubectl("get", "gatewayclass", "traefik", "-o", "json").stdout)
        accepted = [x for x in gc["status"]["conditions"] if x["type"] == "Accepted"]
        assert accepted and accepted[0]["status"] == "True"
        crd = json.loads(c.kubectl("get", "crd", "httproutes.gateway.networking.k8s.io",
                                   "-o", "json").stdout)  # fmt: skip
        assert crd["metadata"]["annotations"]["gateway.networking.k8s.io/bundle-version"] == (
            traefik.GATEWAY_API
        )
        status = kubelab_cli("addons", "status", "traefik", env=env)
        assert "ready" in status.stdout and "not ready" not in status.stdout, status.stdout
    finally:
        gone = kubelab_cli("addons", "uninstall", "traefik", env=env)
    assert gone.returncode == 0, gone.stdout[-3000:] + gone.stderr[-3000:]
    assert left_behind(c) == []
    assert not pid_file.exists()
    again = kubelab_cli("addons", "uninstall", "traefik", env=env)  # a second one is harmless
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
