"""`make up` = `kubelab up`: with no usable cluster it starts the embedded one, runs lab 1, and
`kubelab cluster down` then leaves no process, port or context behind."""

from __future__ import annotations

import os
import uuid

import yaml

from kubelab.embedded import build, cluster


def test_up_starts_the_embedded_cluster_when_there_is_none(kubelab_cli, tmp_path, embedded_cluster):
    # embedded_cluster: the binaries are built; this test starts its own, separately named cluster
    name = f"up-{uuid.uuid4().hex[:6]}"
    config = tmp_path / "config"
    env = {
        "KUBECONFIG": str(config),
        "KUBELAB_CLUSTER": name,
        "PATH": f"{build.bin_dir()}{os.pathsep}{os.environ['PATH']}",
    }
    try:
        up = kubelab_cli("up", env=env)
        assert up.returncode == 0, up.stdout[-4000:] + up.stderr
        assert "starting the embedded training cluster" in up.stdout
        assert f"probe-test-app: 13 passed, 0 failed, 6 skipped on kwok-{name}" in up.stdout
        assert yaml.safe_load(config.read_text())["current-context"] == f"kwok-{name}"
        again = kubelab_cli("up", env=env)  # the current cluster is used, nothing restarted
        assert again.returncode == 0, again.stdout[-2000:]
        assert f"using the current cluster: kwok-{name}" in again.stdout
        assert kubelab_cli("cluster", "status", env=env).returncode == 0
    finally:
        down = kubelab_cli("cluster", "down", env=env)
    assert down.returncode == 0, down.stdout + down.stderr
    procs, ports = cluster.cluster_footprint(name)
    assert not procs and not ports
    contexts = yaml.safe_load(config.read_text()).get("contexts") or []
    assert all(c["name"] != f"kwok-{name}" for c in contexts)
    assert kubelab_cli("cluster", "status", env=env).returncode == 1
