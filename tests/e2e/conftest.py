"""Fixtures for end-to-end tests against the embedded cluster (real control plane, kwok nodes).

One cluster per test session, with a temporary KUBECONFIG (the user's ~/.kube/config is never
touched) and a unique name; torn down at the end, checking nothing is left running.

Where the host can (Linux, root, the node's binaries buildable), the session's cluster also has
the real node (kubelet + containerd), so container steps run for real; KUBELAB_E2E_REAL_NODE=0
turns it off, =1 makes its absence an error instead of a fallback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubelab.embedded import build, cluster, hoststate


@dataclass
class EmbeddedCluster:
    name: str
    context: str
    kubeconfig: Path
    bin_dir: Path
    env: dict[str, str]
    real_node: str | None = None

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run the cached kubectl against this cluster; with check, fail the test on non-zero."""
        proc = subprocess.run(
            [str(self.bin_dir / "kubectl"), "--context", self.context, *args],
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc


def _ensure_binaries(groups: tuple[str, ...] = ("control-plane",)) -> Path:
    if not build.missing(groups):
        return build.bin_dir()
    absent = [n for n in build.BINARY_NAMES if not (build.bin_dir() / n).is_file()]
    if absent and shutil.which("go") is None:
        pytest.skip(
            f"embedded cluster binaries missing ({', '.join(absent)}) and no Go toolchain to "
            "build them; run `make tools`"
        )
    return build.ensure_built(groups=groups)


def want_real_node() -> bool:
    """Bring the session's cluster up with the real node? (Linux + root + Go, unless told.)"""
    from kubelab.embedded import node

    setting = os.environ.get("KUBELAB_E2E_REAL_NODE", "auto")
    if setting == "0":
        return False
    reason = node.unsupported_reason()
    if reason is None and shutil.which("go") is None and build.missing(("node",)):
        reason = "the node's binaries are not built and there is no Go toolchain"
    if reason and setting == "1":
        pytest.fail(f"KUBELAB_E2E_REAL_NODE=1 but {reason}")
    return reason is None


@pytest.fixture(scope="session")
def embedded_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedCluster]:
    real = want_real_node()
    bin_dir = _ensure_binaries(("control-plane", "node") if real else ("control-plane",))
    kubeconfig_file = tmp_path_factory.mktemp("kubeconfig") / "config"
    saved = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(kubeconfig_file)
    name = f"e2e-{uuid.uuid4().hex[:6]}"
    host_before = hoststate.snapshot() if real else None
    try:
        # four nodes in all (labs/nodes-and-scheduling needs them): with the real node, one of
        # them is real and the simulated ones are tainted, so container labs still land on it
        result = cluster.up(
            nodes=3 if real else 4, name=name, progress=lambda _msg: None, real_node=real
        )
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig_file),
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        yield EmbeddedCluster(
            name, result.context, kubeconfig_file, bin_dir, env, real_node=result.real_node
        )
    finally:
        try:
            cluster.down(name=name, progress=lambda _msg: None)
            procs, ports = cluster.cluster_footprint(name)
            assert not procs and not ports, f"left behind: {procs} {ports}"
            if host_before is not None:
                # the real node left the host as it found it (see hoststate.snapshot)
                # (kl-http*/klh*: test_http_checks' own netns and veth, which a parallel
                # session of that test may hold; /run/netns itself is compared)
                changed = hoststate.diff(
                    host_before,
                    hoststate.snapshot(),
                    ignore=r"kl-http|\bklh[0-9a-f]|/run/netns/kl-",
                )
                assert not changed, f"the real node changed the host: {changed}"
        finally:
            if saved is None:
                os.environ.pop("KUBECONFIG", None)
            else:
                os.environ["KUBECONFIG"] = saved
