"""Argo CD on the embedded cluster: its repo-server, application-controller and Redis as host
processes against the real API server. A second install changes nothing and says so; nothing of
it listens beyond loopback on the host (the controller, whose metrics bind 0.0.0.0, lives in a
network namespace of its own); uninstalling leaves nothing behind. (The gitops-argocd lab, in
tests/e2e/test_labs.py, drives it through every sync the lesson shows.)"""

from __future__ import annotations

import os
from pathlib import Path

from sockets import listening_addresses

from kubelab.embedded.cluster import cluster_dir

PROGRAMS = ("redis", "repo-server", "relay", "application-controller")


def test_argo_cd_host_processes_install_idempotently_and_uninstall_cleanly(
    embedded_cluster, kubelab_cli
):
    c, env = embedded_cluster, embedded_cluster.env
    folder = cluster_dir(c.name) / "addons" / "argo-cd"
    got = kubelab_cli("addons", "install", "argo-cd", env=env)
    try:
        assert got.returncode == 0, got.stdout[-3000:] + got.stderr[-3000:]
        pids = {p: int((folder / f"{p}.pid").read_text()) for p in PROGRAMS}
        assert all(Path(f"/proc/{pid}").exists() for pid in pids.values())

        again = kubelab_cli("addons", "install", "argo-cd", env=env)
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        said = " ".join(again.stdout.split())  # the terminal may wrap lines
        assert "nothing to change" in said, said
        assert {p: int((folder / f"{p}.pid").read_text()) for p in PROGRAMS} == pids

        # on the host, only loopback listeners; the controller in a network namespace of its own
        for program in ("redis", "repo-server"):
            listening = listening_addresses(pids[program])
            assert listening and all(
                a.startswith(("0100007F:", "00000000000000000000000001000000:")) for a in listening
            ), (program, listening)
        controller = pids["application-controller"]
        assert os.readlink(f"/proc/{controller}/ns/net") != os.readlink("/proc/self/ns/net")
        assert listening_addresses(controller) == []
        status = kubelab_cli("addons", "status", "argo-cd", env=env)
        assert "ready" in status.stdout and "not ready" not in status.stdout, status.stdout
        project = c.kubectl("get", "appproject", "default", "-n", "argocd", check=False)
        assert project.returncode == 0, project.stderr
    finally:
        gone = kubelab_cli("addons", "uninstall", "argo-cd", env=env)
    assert gone.returncode == 0, gone.stdout[-3000:] + gone.stderr[-3000:]
    crds = [n for n in c.kubectl("get", "crd", "-o", "name").stdout.split() if "argoproj" in n]
    assert crds == []
    assert c.kubectl("get", "namespace", "argocd", check=False).returncode != 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids.values())
    assert not folder.exists()
