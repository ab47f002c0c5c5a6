"""Build the embedded cluster's binaries from the Go module proxy into a local cache.

Stdlib only: tools/build_k8s.py loads this file directly (without importing the `kubelab`
package) so that `make tools` works before the tool's Python dependencies are installed.

The pins live in the Go modules under tools/k8s/ (one module per upstream project, so their
dependency graphs never have to agree). Each binary is built with its own `go build`, one at a
time, with `-p 2`, into ``<cache>/bin/<kubernetes version>/``. A JSON stamp next to each binary
records what it was built from (module files, package, flags, Go version); a binary whose stamp
matches is not rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

try:  # a user-facing error when imported as part of kubelab; plain Exception standalone
    from kubelab import paths
    from kubelab.errors import KubelabError as _Base
except ImportError:  # pragma: no cover - standalone use by tools/build_k8s.py
    import importlib.util

    _Base = Exception  # type: ignore[assignment,misc]
    # where the cache is: kubelab/paths.py (standard library only), loaded by its path
    _spec = importlib.util.spec_from_file_location(
        "kubelab_paths", Path(__file__).resolve().parents[1] / "paths.py"
    )
    assert _spec and _spec.loader
    paths = importlib.util.module_from_spec(_spec)  # type: ignore[assignment]
    _spec.loader.exec_module(paths)

# Used only when the repository's tools/k8s folder is not available (installed package).
DEFAULT_K8S_VERSION = "v1.36.5"

HINT = "run `make tools` (or `python3 tools/build_k8s.py`) to build the binaries"


class BuildError(_Base):  # type: ignore[misc,valid-type]
    """The binaries cannot be built (no Go toolchain, no tools/k8s, a failed go build)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        if _Base is Exception:
            super().__init__(message if not hint else f"{message}\n  → {hint}")
        else:
            super().__init__(message, hint)


@dataclass(frozen=True)
class Patch:
    """An edit of one source file of a dependency, for one binary. Go refuses `-overlay` for
    files in the module cache, so a binary with patches is built in a vendored copy of its pin
    folder where the edit is made (the module cache stays as it is)."""

    module: str  # the module's path
    inside: str  # the file, relative to the module's root
    ours: str = ""  # a file of the pin folder that replaces it whole; or:
    old: str = ""  # this exact text, which must occur once, ...
    new: str = ""  # ... replaced by this


@dataclass(frozen=True)
class Binary:
    name: str  # file name in the bin dir
    module: str  # folder under tools/k8s holding the pinning go.mod
    package: str  # Go main package to build
    ldflags: tuple[str, ...] = ()  # extra -X flags (version strings)
    group: str = "control-plane"  # one of GROUPS
    cgo: bool = False  # runc links libseccomp (Debian's libseccomp-dev)
    tags: tuple[str, ...] = ()  # go build -tags
    # source edits (see Patch). The build runs in a vendored copy of the pin folder, or, when
    # every patched file is in the main package itself (keda-adapter), in a copy of the pin
    # folder holding only that package as ./patched: no vendoring, every dependency stays in
    # Go's build cache.
    patches: tuple[Patch, ...] = ()
    # GOTOOLCHAIN for a module whose go.mod needs a newer Go than the machine's (the go
    # command fetches that approved version from the Go module proxy like a module)
    toolchain: str | None = None


def repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def tools_dir() -> Path:
    override = os.environ.get("KUBELAB_TOOLS_DIR")
    return Path(override) if override else repo_root() / "tools" / "k8s"


def _module_versions(module: str) -> dict[str, str]:
    """Module path -> version, from the `require` lines of tools/k8s/<module>/go.mod."""
    gomod = tools_dir() / module / "go.mod"
    versions: dict[str, str] = {}
    try:
        text = gomod.read_text()
    except OSError:
        return versions
    in_replace = False
    for raw in text.splitlines():
        line = raw.split("//", 1)[0].strip()
        if line.startswith("replace"):
            in_replace = "(" in line
            continue
        if in_replace:
            if line == ")":
                in_replace = False
            continue
        line = line.removeprefix("require").strip()
        m = re.fullmatch(r"([\w./~-]+)\s+(v[\w.+-]+)", line)
        if m:
            versions[m.group(1)] = m.group(2)
    return versions


def k8s_version() -> str:
    return _module_versions("kube").get("k8s.io/kubernetes", DEFAULT_K8S_VERSION)


def binaries() -> list[Binary]:
    kube = k8s_version()
    major, minor = kube.lstrip("v").split(".")[:2]
    kube_x: list[str] = []
    for pkg in ("k8s.io/client-go/pkg/version", "k8s.io/component-base/version"):
        kube_x += [
            f"{pkg}.gitVersion={kube}",
            f"{pkg}.gitMajor={major}",
            f"{pkg}.gitMinor={minor}",
            f"{pkg}.gitTreeState=clean",
            f"{pkg}.buildDate=1970-01-01T00:00:00Z",
        ]
    kwok = _module_versions("kwok").get("sigs.k8s.io/kwok", "v0.0.0")
    helm = _module_versions("helm").get("helm.sh/helm/v3", "v3.0.0")
    kwok_x = (
        f"sigs.k8s.io/kwok/pkg/consts.Version={kwok.lstrip('v')}",
        # kwokctl's default Kubernetes version = the one we build
        f"sigs.k8s.io/kwok/pkg/consts.KubeVersion={kube.lstrip('v')}",
    )
    k = tuple(kube_x)
    containerd = _module_versions("containerd").get("github.com/containerd/containerd/v2", "v0")
    runc = _module_versions("runc").get("github.com/opencontainers/runc", "v0")
    ms = _module_versions("metrics-server").get("sigs.k8s.io/metrics-server", "v0")
    kr = _module_versions("kube-router").get("github.com/cloudnativelabs/kube-router/v2", "v0")
    gk = _module_versions("gatekeeper").get("github.com/open-policy-agent/gatekeeper/v3", "v0")
    po = _module_versions("prometheus-operator").get(
        "github.com/prometheus-operator/prometheus-operator", "v0"
    )
    prom = _module_versions("prometheus").get("github.com/prometheus/prometheus", "v0.0.0")
    # Prometheus 3.x is published as Go module v0.3XX.Y: v0.314.0 is Prometheus 3.14.0
    prom_minor = prom.lstrip("v").split(".")
    prom_release = f"{int(prom_minor[1]) // 100}.{int(prom_minor[1]) % 100}.{prom_minor[2]}"
    tr = _module_versions("traefik").get("github.com/traefik/traefik/v3", "v0")
    ar = _module_versions("argo-rollouts").get("github.com/argoproj/argo-rollouts", "v0")
    ar_x = (
        # it prints "v" + version (+ "+unknown": no commit is known in a module build)
        f"github.com/argoproj/argo-rollouts/utils/version.version={ar.lstrip('v')}",
        "github.com/argoproj/argo-rollouts/utils/version.gitTreeState=clean",
    )
    # the controller's metrics and healthz servers listen on every interface (a constant, no
    # flag): on the embedded cluster it runs on the host, where nothing may listen beyond loopback
    ar_loopback = (
        Patch(
            "github.com/argoproj/argo-rollouts",
            "controller/controller.go",
            old='listenAddr                         = "0.0.0.0:%d"',
            new='listenAddr                         = "127.0.0.1:%d"',
        ),
    )
    keda = _module_versions("keda").get("github.com/kedacore/keda/v2", "v0")
    keda_x = (f"github.com/kedacore/keda/v2/version.Version={keda.lstrip('v')}",)
    keda_loopback = Patch(
        "github.com/kedacore/keda/v2",
        "cmd/adapter/main.go",
        old='metricsBindAddress := fmt.Sprintf(":%v", metricsAPIServerPort)',
        new='metricsBindAddress := fmt.Sprintf("127.0.0.1:%v", metricsAPIServerPort)',
    )
    argocd = _module_versions("argo-cd").get("github.com/argoproj/argo-cd/v3", "v0")
    kustomize = _module_versions("argo-cd").get("sigs.k8s.io/kustomize/kustomize/v5", "v0")
    cni = "github.com/containernetworking/plugins/plugins"
    ctrd_x = (f"github.com/containerd/containerd/v2/version.Version={containerd}",)
    return [
        Binary("kube-apiserver", "kube", "k8s.io/kubernetes/cmd/kube-apiserver", k),
        Binary(
            "kube-controller-manager", "kube", "k8s.io/kubernetes/cmd/kube-controller-manager", k
        ),
        Binary("kube-scheduler", "kube", "k8s.io/kubernetes/cmd/kube-scheduler", k),
        Binary("kubectl", "kube", "k8s.io/kubernetes/cmd/kubectl", k),
        Binary("etcd", "etcd", "go.etcd.io/etcd/server/v3"),
        Binary("kwok", "kwok", "sigs.k8s.io/kwok/cmd/kwok", kwok_x),
        Binary("kwokctl", "kwok", "sigs.k8s.io/kwok/cmd/kwokctl", kwok_x),
        Binary(
            "helm",
            "helm",
            "helm.sh/helm/v3/cmd/helm",
            (
                f"helm.sh/helm/v3/internal/version.version={helm}",
                "helm.sh/helm/v3/internal/version.gitTreeState=clean",
            ),
        ),
        # the real node (`kubelab cluster up --real-node`)
        Binary(
            "containerd",
            "containerd",
            "github.com/containerd/containerd/v2/cmd/containerd",
            ctrd_x,
            "node",
        ),
        Binary(
            "containerd-shim-runc-v2",
            "containerd",
            "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2",
            ctrd_x,
            "node",
        ),
        Binary("ctr", "containerd", "github.com/containerd/containerd/v2/cmd/ctr", ctrd_x, "node"),
        Binary(
            "runc",
            "runc",
            "github.com/opencontainers/runc",
            (f"main.version={runc.lstrip('v')}",),
            "node",
            cgo=True,
            tags=("seccomp",),
        ),
        Binary("cni/bridge", "cni", f"{cni}/main/bridge", (), "node"),
        Binary("cni/host-local", "cni", f"{cni}/ipam/host-local", (), "node"),
        Binary("cni/loopback", "cni", f"{cni}/main/loopback", (), "node"),
        Binary("cni/portmap", "cni", f"{cni}/meta/portmap", (), "node"),
        Binary("coredns", "coredns", "github.com/coredns/coredns", (), "node"),
        Binary(
            "metrics-server",
            "metrics-server",
            "sigs.k8s.io/metrics-server/cmd/metrics-server",
            (f"sigs.k8s.io/metrics-server/pkg/version.gitVersion={ms}",),
            "node",
        ),
        # the real node's NetworkPolicy firewall (run without its router and service proxy)
        Binary(
            "kube-router",
            "kube-router",
            "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router",
            (f"github.com/cloudnativelabs/kube-router/v2/pkg/version.Version={kr}",),
            "node",
        ),
        # last: they share most packages with the control plane (warm build cache by then)
        Binary("kubelet", "kube", "k8s.io/kubernetes/cmd/kubelet", k, "node"),
        Binary("kube-proxy", "kube", "k8s.io/kubernetes/cmd/kube-proxy", k, "node"),
        # add-ons run as host processes against the embedded API server (kubelab.addons)
        Binary(
            "gatekeeper",
            "gatekeeper",
            "github.com/open-policy-agent/gatekeeper/v3",
            (f"github.com/open-policy-agent/gatekeeper/v3/pkg/version.Version={gk}",),
            "addons",
        ),
        Binary(
            "gator",
            "gatekeeper",
            "github.com/open-policy-agent/gatekeeper/v3/cmd/gator",
            (f"github.com/open-policy-agent/gatekeeper/v3/pkg/version.Version={gk}",),
            "addons",
        ),
        # the repository's own checks in `make test`: actionlint lints .github/workflows/
        Binary("actionlint", "actionlint", "github.com/rhysd/actionlint/cmd/actionlint", (), "dev"),
        # kube-prometheus-stack on the embedded cluster: the Prometheus Operator, and Prometheus
        # with only its Kubernetes service discovery (the lab needs no cloud's)
        Binary(
            "prometheus-operator",
            "prometheus-operator",
            "github.com/prometheus-operator/prometheus-operator/cmd/operator",
            (f"github.com/prometheus/common/version.Version={po.lstrip('v')}",),
            "addons",
        ),
        Binary(
            "prometheus",
            "prometheus",
            "github.com/prometheus/prometheus/cmd/prometheus",
            (f"github.com/prometheus/common/version.Version={prom_release}",),
            "addons",
            tags=("remove_all_sd", "enable_kubernetes_sd"),
        ),
        # Ingress/Gateway API controller; lego's DNS-01 providers left out (tools/README.md)
        Binary(
            "traefik",
            "traefik",
            "github.com/traefik/traefik/v3/cmd/traefik",
            (
                f"github.com/traefik/traefik/v3/pkg/version.Version={tr}",
                "github.com/traefik/traefik/v3/pkg/version.BuildDate=1970-01-01T00:00:00Z",
            ),
            "addons",
            patches=(
                Patch(
                    "github.com/go-acme/lego/v5",
                    "providers/dns/zz_gen_dns_providers.go",
                    ours="patches/lego_dns_providers.go",
                ),
            ),
        ),
        # Argo Rollouts: its controller (a host process) and the kubectl plugin the lab types
        Binary(
            "rollouts-controller",
            "argo-rollouts",
            "github.com/argoproj/argo-rollouts/cmd/rollouts-controller",
            ar_x,
            "addons",
            patches=ar_loopback,
        ),
        Binary(
            "kubectl-argo-rollouts",
            "argo-rollouts",
            "github.com/argoproj/argo-rollouts/cmd/kubectl-argo-rollouts",
            ar_x,
            "addons",
        ),
        # KEDA: its operator and its metrics API server (two main packages upstream; the
        # admission webhooks are not run). The adapter's /metrics listens on every interface
        # with no flag to change it: one line of its main.go is edited to 127.0.0.1
        Binary("keda", "keda", "github.com/kedacore/keda/v2/cmd/operator", keda_x, "addons"),
        Binary(
            "keda-adapter",
            "keda",
            "github.com/kedacore/keda/v2/cmd/adapter",
            keda_x,
            "addons",
            patches=(keda_loopback,),
        ),
        # one binary, argv[0] picks the component (argocd-application-controller,
        # argocd-repo-server, ...); v3.6 needs Go 1.27
        Binary(
            "argocd",
            "argo-cd",
            "github.com/argoproj/argo-cd/v3/cmd",
            (
                f"github.com/argoproj/argo-cd/v3/common.version={argocd.lstrip('v')}",
                "github.com/argoproj/argo-cd/v3/common.gitTreeState=clean",
                "github.com/argoproj/argo-cd/v3/common.buildDate=1970-01-01T00:00:00Z",
            ),
            "addons",
            toolchain=ARGOCD_GO_TOOLCHAIN,
        ),
        # the repo-server runs `kustomize build`: the version whose kustomize/api Argo CD links
        Binary(
            "kustomize",
            "argo-cd",
            "sigs.k8s.io/kustomize/kustomize/v5",
            (f"sigs.k8s.io/kustomize/api/provenance.version={kustomize}",),
            "addons",
            toolchain=ARGOCD_GO_TOOLCHAIN,
        ),
    ]


# the Go version Argo CD v3.6's go.mod requires (see tools/README.md)
ARGOCD_GO_TOOLCHAIN = "go1.27.3"


# control-plane: the embedded cluster; node: its real node (Linux); addons: add-ons run as host
# processes and their offline checkers; dev: tools `make test` runs on the repository itself
GROUPS = ("control-plane", "node", "addons", "dev")


BINARY_NAMES = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "etcd",
    "kwok",
    "kwokctl",
    "helm",
)
NODE_BINARY_NAMES = (
    "kubelet",
    "kube-proxy",
    "containerd",
    "containerd-shim-runc-v2",
    "ctr",
    "runc",
    "cni/bridge",
    "cni/host-local",
    "cni/loopback",
    "cni/portmap",
    "coredns",
    "metrics-server",
    "kube-router",
)
ADDON_BINARY_NAMES = (
    "gatekeeper",
    "gator",
    "prometheus-operator",
    "prometheus",
    "traefik",
    "rollouts-controller",
    "kubectl-argo-rollouts",
    "keda",
    "keda-adapter",
    "argocd",
    "kustomize",
)
DEV_BINARY_NAMES = ("actionlint",)


def cache_root() -> Path:
    """$KUBELAB_CACHE, else $XDG_CACHE_HOME/kubelab, else ~/.cache/kubelab (kubelab.paths)."""
    return paths.cache_root()


def bin_dir() -> Path:
    return cache_root() / "bin" / k8s_version()


def _stamp_path(name: str) -> Path:
    return bin_dir() / ".stamps" / f"{name.replace('/', '_')}.json"


def _go() -> str:
    go = shutil.which("go")
    if not go:
        raise BuildError(
            "the Go toolchain (`go`) is not on PATH; it is needed to build Kubernetes",
            "install Go >= 1.26 (https://go.dev/dl/) and " + HINT,
        )
    return go


_go_version_cache: dict[str, str] = {}


def _go_env(toolchain: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if toolchain:
        env["GOTOOLCHAIN"] = toolchain
    return env


def _go_version(toolchain: str | None = None) -> str:
    """The Go version a build uses: the machine's, or the pinned toolchain's (not fetched)."""
    if toolchain:
        return toolchain
    if "v" not in _go_version_cache:
        out = subprocess.run([_go(), "env", "GOVERSION"], capture_output=True, text=True)
        _go_version_cache["v"] = out.stdout.strip() or "unknown"
    return _go_version_cache["v"]


def _fingerprint(b: Binary, go_version: str) -> str:
    h = hashlib.sha256()
    mod = tools_dir() / b.module
    for f in ("go.mod", "go.sum"):
        p = mod / f
        h.update(p.read_bytes() if p.exists() else b"")
    # any other file of the pin folder (a local module it replaces, a patch's replacement)
    others = [p for p in mod.rglob("*") if p.is_file()] if mod.is_dir() else []
    for p in sorted(others):
        rel = p.relative_to(mod).as_posix()
        if rel not in ("go.mod", "go.sum"):
            h.update(rel.encode() + b"\0" + p.read_bytes())
    extra = ["cgo" if b.cgo else "", *b.tags] if (b.cgo or b.tags) else []
    for patch in b.patches:  # a file patch's replacement is hashed above with the pin folder
        if not patch.ours:
            extra += ["patch", patch.module, patch.inside, patch.old, patch.new]
    h.update("\0".join([b.package, *b.ldflags, *extra, go_version, "v1"]).encode())
    return h.hexdigest()


def _read_stamp(name: str) -> dict[str, object]:
    try:
        return json.loads(_stamp_path(name).read_text())
    except (OSError, ValueError):
        return {}


def missing(groups: tuple[str, ...] = ("control-plane",)) -> list[str]:
    """Names of binaries that are absent, or were built from another pin than the current one.

    Works without Go (and without the repository): then only presence is checked.
    """
    out: list[str] = []
    have_pins = (tools_dir() / "kube" / "go.mod").exists() and shutil.which("go") is not None
    for b in binaries():
        if b.group not in groups:
            continue
        path = bin_dir() / b.name
        built = path.is_file() and os.access(path, os.X_OK)
        current = not have_pins or (
            _read_stamp(b.name).get("fingerprint") == _fingerprint(b, _go_version(b.toolchain))
        )
        if not (built and current):
            out.append(b.name)
    return out


def _human(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"


def _vendored_copy(b: Binary, go: str, mod: Path, where: Path) -> Path:
    """A copy of the pin folder with its dependencies vendored and `b.patches` applied.

    `go mod vendor -e` tolerates packages it cannot fetch (a patch is what removes their import);
    the caller builds there with `-mod=vendor` and removes the copy."""
    work = where / f".{b.name.replace('/', '_')}.{os.getpid()}.vendor"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(mod, work)
    env = {**os.environ, "GOFLAGS": ""}
    out = subprocess.run(
        [go, "mod", "vendor", "-e"], cwd=work, env=env, capture_output=True, text=True
    )
    for patch in b.patches:
        target = work / "vendor" / patch.module / patch.inside
        if out.returncode != 0 or not target.is_file():
            shutil.rmtree(work, ignore_errors=True)
            raise BuildError(
                f"{b.name}: `go mod vendor` did not provide {patch.module}/{patch.inside}:\n"
                + (out.stderr or out.stdout).strip()[-800:],
                "check that the Go module proxy is reachable, then " + HINT,
            )
        _apply(b, patch, mod, target, work)
    return work


def _apply(b: Binary, patch: Patch, mod: Path, target: Path, work: Path) -> None:
    """Make `patch`'s edit in `target`, a copy of the patched file inside `work`."""
    if patch.ours:
        shutil.copyfile(mod / patch.ours, target)
        return
    text = target.read_text()
    if text.count(patch.old) != 1:
        shutil.rmtree(work, ignore_errors=True)
        raise BuildError(
            f"the patch of {patch.module}/{patch.inside} for {b.name} no longer applies "
            f"(expected {patch.old!r} once)",
            "update `patches` in kubelab/embedded/build.py for the new version",
        )
    target.write_text(text.replace(patch.old, patch.new))


def _main_package_patch(b: Binary) -> bool:
    return bool(b.patches) and all(
        f"{p.module}/{Path(p.inside).parent.as_posix()}" == b.package for p in b.patches
    )


def _patched_main_copy(b: Binary, go: str, mod: Path, where: Path) -> Path:
    """A copy of the pin folder holding, as ./patched, b.package's files with `b.patches`
    applied (the caller builds ./patched there and removes the copy)."""
    work = where / f".{b.name.replace('/', '_')}.{os.getpid()}.patched"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(mod, work)
    out = subprocess.run([go, "list", "-f", "{{.Dir}}", b.package], cwd=mod,
                         capture_output=True, text=True)  # fmt: skip
    source = Path(out.stdout.strip())
    if out.returncode != 0 or not source.is_dir():
        shutil.rmtree(work, ignore_errors=True)
        raise BuildError(
            f"{b.name}: cannot find the source of {b.package}: {out.stderr.strip()[-800:]}",
            "check that the Go module proxy is reachable, then " + HINT,
        )
    (work / "patched").mkdir()
    for f in source.glob("*.go"):
        if not f.name.endswith("_test.go"):
            shutil.copyfile(f, work / "patched" / f.name)
    for patch in b.patches:
        _apply(b, patch, mod, work / "patched" / Path(patch.inside).name, work)
    return work


def build_one(b: Binary, progress: Callable[[str], object] = print) -> tuple[float, int]:
    go = _go()
    mod = tools_dir() / b.module
    if not (mod / "go.mod").exists():
        raise BuildError(f"pin module {mod}/go.mod not found", "run from a kubelab checkout")
    dest = bin_dir() / b.name
    (bin_dir() / ".stamps").mkdir(parents=True, exist_ok=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.{os.getpid()}.tmp"
    ldflags = " ".join(["-s", "-w", *(f"-X {x}" for x in b.ldflags)])
    cmd = [go, "build", "-p", "2", "-trimpath", f"-ldflags={ldflags}"]
    if b.tags:
        cmd.append("-tags=" + ",".join(b.tags))
    cmd += ["-o", str(tmp), b.package]
    env = {
        **_go_env(b.toolchain),
        "CGO_ENABLED": "1" if b.cgo else "0",
        "GOFLAGS": os.environ.get("GOFLAGS", "-mod=readonly"),
    }
    progress(f"building {b.name} ({b.package}) ...")
    start = time.monotonic()
    work = None
    if _main_package_patch(b):
        work = _patched_main_copy(b, go, mod, dest.parent)
        cmd[-1] = "./patched"
    elif b.patches:
        work = _vendored_copy(b, go, mod, dest.parent)
        env["GOFLAGS"] = "-mod=vendor"
    try:
        proc = subprocess.run(cmd, cwd=work or mod, env=env, capture_output=True, text=True)
    finally:
        if work:
            shutil.rmtree(work, ignore_errors=True)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise BuildError(
            f"go build of {b.name} failed (exit {proc.returncode}):\n{tail}",
            "check that the Go module proxy is reachable, then " + HINT,
        )
    os.replace(tmp, dest)
    size = dest.stat().st_size
    stamp = {
        "fingerprint": _fingerprint(b, _go_version(b.toolchain)),
        "package": b.package,
        "go": _go_version(b.toolchain),
        "seconds": round(seconds, 1),
        "size": size,
    }
    _stamp_path(b.name).write_text(json.dumps(stamp, indent=1) + "\n")
    progress(f"built {b.name} in {seconds:.0f}s ({_human(size)})")
    return seconds, size


def ensure_built(
    progress: Callable[[str], object] = print, groups: tuple[str, ...] = ("control-plane",)
) -> Path:
    """Build whatever is missing or stale; return the bin dir. Idempotent.

    Concurrent callers (two terminals, a test session and `make tools`) serialise on a lock
    file per group, so a binary is built once.
    """
    for group in groups:
        _ensure_group(group, progress)
    return bin_dir()


def _ensure_group(group: str, progress: Callable[[str], object]) -> None:
    if not missing((group,)):
        return
    bin_dir().mkdir(parents=True, exist_ok=True)
    lock_name = ".build.lock" if group == "control-plane" else f".build-{group}.lock"
    with open(bin_dir() / lock_name, "w") as lock:
        try:
            import fcntl

            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                progress("another build is running; waiting for it ...")
                fcntl.flock(lock, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - not POSIX
            pass
        todo = set(missing((group,)))
        total = 0.0
        for b in binaries():
            if b.name in todo:
                seconds, _ = build_one(b, progress)
                total += seconds
        if todo:
            progress(f"built {len(todo)} {group} binaries in {total:.0f}s into {bin_dir()}")


def describe(groups: tuple[str, ...] = GROUPS) -> list[str]:
    lines = []
    todo = set(missing(groups))
    names = list(BINARY_NAMES)
    if "node" in groups:
        names += NODE_BINARY_NAMES
    if "addons" in groups:
        names += ADDON_BINARY_NAMES
    if "dev" in groups:
        names += DEV_BINARY_NAMES
    for name in names:
        path = bin_dir() / name
        if name in todo:
            state = "stale" if path.exists() else "missing"
        else:
            state = f"ok {_human(path.stat().st_size)}"
        lines.append(f"{name:<24} {state}")
    return lines


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="build_k8s.py",
        description="Build Kubernetes, etcd, kwok/kwokctl and helm from the Go module proxy "
        "into the kubelab cache (incremental).",
    )
    parser.add_argument("--list", action="store_true", help="show what is built; build nothing")
    parser.add_argument(
        "--group",
        action="append",
        choices=GROUPS,
        help="build only this group (repeatable); default: all (control-plane, then node: "
        "kubelet, kube-proxy, containerd, runc, CNI plugins, CoreDNS, metrics-server; then "
        "addons: the Gatekeeper manager and gator, the Prometheus Operator and Prometheus, "
        "Traefik, the Argo Rollouts controller and plugin, KEDA, Argo CD and kustomize; then "
        "dev: actionlint)",
    )
    args = parser.parse_args(argv)
    # the real node's binaries (containerd, runc with seccomp, the kubelet) are Linux programs
    default = GROUPS if sys.platform == "linux" else ("control-plane", "addons", "dev")
    groups = tuple(args.group) if args.group else default
    try:
        if args.list:
            for line in describe(groups):
                print(line)
        else:
            start = time.monotonic()
            ensure_built(lambda msg: print(msg, flush=True), groups)
            print(f"all binaries up to date ({time.monotonic() - start:.0f}s)")
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; run the command again to resume", file=sys.stderr)
        return 130
    print(bin_dir())
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
