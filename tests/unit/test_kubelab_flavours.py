"""Flavour detection from nodes. The node shapes below are what each local cluster tool
registers (providerID, labels, names) as documented by those projects; we cannot start those
clusters here, so these are recorded shapes, not live nodes. The embedded flavour is also
detected from a live kwok node in the e2e tests."""

from __future__ import annotations

import pytest

from kubelab.flavours import detect


def node(name: str, labels=None, annotations=None, provider: str = "") -> dict:
    return {
        "metadata": {"name": name, "labels": labels or {}, "annotations": annotations or {}},
        "spec": {"providerID": provider} if provider else {},
    }


@pytest.mark.parametrize(
    ("context", "nodes", "flavour"),
    [
        ("docker-desktop", [node("docker-desktop")], "docker-desktop"),
        (
            "kind-kind",
            [node("kind-control-plane", provider="kind://docker/kind/kind-control-plane")],
            "kind",
        ),
        ("k3d-lab", [node("k3d-lab-server-0", provider="k3s://k3d-lab-server-0")], "k3d"),
        ("minikube", [node("minikube", labels={"minikube.k8s.io/name": "minikube"})], "minikube"),
        ("rancher-desktop", [node("lima-rancher-desktop")], "rancher-desktop"),
        ("orbstack", [node("orbstack")], "orbstack"),
        (
            "kwok-kubelab",
            [node("kwok-node-0", annotations={"kwok.x-k8s.io/node": "fake"})],
            "embedded",
        ),
        ("renamed", [node("kind-control-plane", provider="kind://docker/kind/x")], "kind"),
        ("kind-x", [], "kind"),
        ("allowed-remote", [node("ip-10-0-0-1")], "unknown"),
    ],
)
def test_detect(context, nodes, flavour):
    assert detect(context, nodes).name == flavour


def test_embedded_cannot_run_containers_but_can_sign():
    f = detect("kwok-x", [])
    assert (f.containers, f.csr_signing) == (False, True)
