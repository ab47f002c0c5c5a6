"""The GitOps lab without a cluster: its Git server serves a real repository (clone, push, the
same URL when started twice, loopback only, nothing left after stop); the repository's Kustomize
folder renders what the lesson says (before and after the autoscaler is removed from Git); the
Helm Application's values pass the course chart's schema; and both Application manifests are
valid against Argo CD's own Application CRD schema (from the pinned Go module)."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from kubelab.embedded import build

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "labs" / "gitops-argocd"
SERVER = LAB / "git-server.py"
APPS = ("probe-test-app-application.yaml", "probe-test-app-helm-application.yaml")


def git(*args: str, cwd: Path | None = None) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env=env, check=False)  # fmt: skip
    assert proc.returncode == 0, (args, proc.stderr)
    return proc.stdout


def server(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SERVER), *args], capture_output=True, text=True,
                          timeout=30, check=False)  # fmt: skip


def listening_addresses(port: int) -> list[str]:
    """Local addresses of listening TCP sockets on `port` (from /proc/net/tcp and tcp6)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            address, _, hexport = cols[1].rpartition(":")
            if cols[3] == "0A" and int(hexport, 16) == port:
                found.append(address)
    return found


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/net/tcp")
def test_git_server_serves_a_repository_on_loopback_only(tmp_path):
    root = tmp_path / "git"
    started = server("start", "--root", str(root))
    assert started.returncode == 0, started.stderr
    url = started.stdout.strip()
    try:
        assert url.startswith("http://127.0.0.1:")
        assert server("start", "--root", str(root)).stdout.strip() == url  # idempotent
        assert server("url", "--root", str(root)).stdout.strip() == url
        port = int(url.rsplit(":", 1)[1])
        assert listening_addresses(port) == ["0100007F"]  # 127.0.0.1, nothing else

        git("init", "--quiet", "--bare", "-b", "main", str(root / "lab.git"))
        work = tmp_path / "work"
        git("clone", "--quiet", f"{url}/lab.git", str(work))
        (work / "hello.txt").write_text("hello\n")
        git("add", "hello.txt", cwd=work)
        git("-c", "user.name=t", "-c", "user.email=t@e.invalid", "commit", "-qm", "one", cwd=work)
        git("push", "--quiet", "origin", "main", cwd=work)
        head = git("rev-parse", "HEAD", cwd=work).strip()
        assert f"{head}\trefs/heads/main" in git("ls-remote", f"{url}/lab.git")
        again = tmp_path / "again"
        git("clone", "--quiet", f"{url}/lab.git", str(again))
        assert (again / "hello.txt").read_text() == "hello\n"
        missing = subprocess.run(["git", "ls-remote", f"{url}/nope.git"], capture_output=True,
                                 text=True, timeout=30, check=False)  # fmt: skip
        assert missing.returncode != 0
    finally:
        stopped = server("stop", "--root", str(root))
    assert stopped.returncode == 0 and stopped.stdout.strip() == "stopped"
    assert listening_addresses(port) == []
    assert server("stop", "--root", str(root)).stdout.strip() == "not running"
    gone = server("url", "--root", str(root))
    assert gone.returncode == 1 and "git-server.py start" in gone.stderr


def repo_folder(tmp_path: Path) -> Path:
    """The repository's probe-test-app folder as step 1 makes it."""
    folder = tmp_path / "probe-test-app"
    shutil.copytree(LAB / "repo" / "probe-test-app", folder)
    for kind in ("deployment", "service", "hpa"):
        name = f"probe-test-app-{kind}.yaml"
        shutil.copy(REPO / "labs" / "probe-test-app" / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def kubectl() -> str:
    path = build.bin_dir() / "kubectl"
    if not path.is_file():
        pytest.skip("kubectl is not built yet (`make tools`)")
    return str(path)


def kustomize(kubectl: str, folder: Path) -> list[dict]:
    proc = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def test_the_kustomize_folder_renders_before_and_after_the_autoscaler_goes(kubectl, tmp_path):
    folder = repo_folder(tmp_path)
    objects = {(o["kind"], o["metadata"]["name"]): o for o in kustomize(kubectl, folder)}
    assert set(objects) == {
        ("Deployment", "probe-test-app"),
        ("Service", "probe-test-app"),
        ("HorizontalPodAutoscaler", "probe-test-app"),
    }
    assert objects[("Service", "probe-test-app")]["spec"]["type"] == "ClusterIP"
    assert objects[("Deployment", "probe-test-app")]["spec"]["replicas"] == 3
    assert objects[("HorizontalPodAutoscaler", "probe-test-app")]["spec"]["minReplicas"] == 1
    # step 8: the file and its line go; the Service patch still applies
    (folder / "probe-test-app-hpa.yaml").unlink()
    kustomization = folder / "kustomization.yaml"
    kept = [x for x in kustomization.read_text().splitlines() if "probe-test-app-hpa.yaml" not in x]
    kustomization.write_text("\n".join(kept) + "\n")
    assert sorted(o["kind"] for o in kustomize(kubectl, folder)) == ["Deployment", "Service"]


def test_step_7_edit_raises_the_autoscaler_minimum(tmp_path):
    folder = repo_folder(tmp_path)
    hpa = folder / "probe-test-app-hpa.yaml"
    subprocess.run(["perl", "-pi", "-e", "s/minReplicas: 1/minReplicas: 4/", str(hpa)],
                   check=True, timeout=30)  # fmt: skip
    assert yaml.safe_load(hpa.read_text())["spec"]["minReplicas"] == 4


def test_the_helm_application_values_pass_the_chart(tmp_path):
    helm = build.bin_dir() / "helm"
    if not helm.is_file():
        pytest.skip("helm is not built yet (`make tools`)")
    app = yaml.safe_load((LAB / APPS[1]).read_text())
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(app["spec"]["source"]["helm"]["valuesObject"]))
    proc = subprocess.run(
        [str(helm), "template", app["spec"]["source"]["helm"]["releaseName"],
         str(REPO / "labs" / "helm" / "probe-test-app"), "--namespace", "gitops-helm",
         "--values", str(values)],
        capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    objects = [d for d in yaml.safe_load_all(proc.stdout) if d]
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert deployment["metadata"]["name"] == "probe-test-app"  # what the lab's checks look for
    assert deployment["spec"]["replicas"] == 2
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "localhost/kubelab/probe-test-app:v2"


@pytest.fixture(scope="module")
def application_schema() -> dict:
    from kubelab.addons import argo_cd, host
    from kubelab.errors import KubelabError

    if shutil.which("go") is None:
        pytest.skip("no Go toolchain: Argo CD's CRDs come from its Go module (`make tools`)")
    try:
        module = host.module_dir("argo-cd", argo_cd.MODULE, argo_cd.VERSION,
                                 build.ARGOCD_GO_TOOLCHAIN)  # fmt: skip
    except KubelabError as e:
        pytest.skip(str(e))
    crd = yaml.safe_load((module / "manifests" / "crds" / "application-crd.yaml").read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    return version["schema"]["openAPIV3Schema"]


@pytest.mark.parametrize("name", APPS)
def test_the_applications_are_valid_for_argo_cds_crd(application_schema, name):
    app = yaml.safe_load((LAB / name).read_text())
    app["spec"]["source"]["repoURL"] = "http://127.0.0.1:9999/gitops.git"  # what sed puts in
    jsonschema.validate(app, application_schema)
    # the schema is strict enough to fail: a misspelt sync policy and a missing destination
    broken = copy.deepcopy(app)
    broken["spec"]["syncPolicy"]["automated"]["prune"] = "yes"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, application_schema)
    broken = copy.deepcopy(app)
    del broken["spec"]["destination"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, application_schema)
