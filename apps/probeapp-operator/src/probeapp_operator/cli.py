"""``probeapp-operator``: serve ProbeApps of one namespace until SIGTERM/SIGINT.

  probeapp-operator [--namespace NS] [--verbose]

The namespace defaults to $WATCH_NAMESPACE (set from the Pod's own namespace in-cluster), else
the current kubeconfig context's namespace, else "default". Credentials: the Pod's ServiceAccount
in-cluster, else $KUBECONFIG / ~/.kube/config. Before starting kopf it checks, with a deadline,
that the API server answers and serves ProbeApps, and says what to do when not.
"""

from __future__ import annotations

import argparse
import os
import sys

import kubernetes
from kubernetes.client.exceptions import ApiException

from probeapp_operator import GROUP, PLURAL, VERSION

PROG = "probeapp-operator"
CRD_HINT = "kubectl apply -f apps/probeapp-operator/deploy/crd.yaml"


class UsageError(Exception):
    pass


def _load_config() -> str:
    """Load credentials; return the kubeconfig context's namespace (or "default")."""
    try:
        kubernetes.config.load_incluster_config()
        return os.environ.get("WATCH_NAMESPACE", "default")
    except kubernetes.config.ConfigException:
        pass
    try:
        kubernetes.config.load_kube_config()
        _, current = kubernetes.config.list_kube_config_contexts()
    except (kubernetes.config.ConfigException, OSError, TypeError) as exc:
        raise UsageError(
            f"no cluster credentials: {exc} (point KUBECONFIG at your training cluster)"
        ) from None
    return str((current.get("context") or {}).get("namespace") or "default")


def preflight(namespace: str) -> None:
    """The API server answers and we may list ProbeApps in the namespace (10 s deadline)."""
    custom = kubernetes.client.CustomObjectsApi()
    try:
        custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, limit=1, _request_timeout=10
        )
    except ApiException as exc:
        if exc.status == 404:
            raise UsageError(
                f"the API server does not serve {PLURAL}.{GROUP}/{VERSION}: install the CRD "
                f"first ({CRD_HINT})"
            ) from None
        if exc.status in (401, 403):
            raise UsageError(
                f"not allowed to list {PLURAL} in namespace {namespace} ({exc.reason}): apply "
                "deploy/rbac.yaml there and run as its ServiceAccount, or use an admin context"
            ) from None
        raise UsageError(f"the API server answered {exc.status} {exc.reason}") from None
    except Exception as exc:  # connection refused, TLS, timeout
        raise UsageError(
            f"cannot reach the API server: {exc.__class__.__name__}: {exc} "
            "(is the cluster up? is KUBECONFIG right?)"
        ) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", "-n", help="the namespace to serve")
    parser.add_argument("--verbose", action="store_true", help="kopf's debug logging")
    args = parser.parse_args(argv)
    try:
        default = _load_config()
        namespace = args.namespace or os.environ.get("WATCH_NAMESPACE") or default
        preflight(namespace)
    except UsageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2

    import kopf

    from probeapp_operator import handlers  # noqa: F401  (registers the handlers)

    kopf.configure(verbose=args.verbose, log_prefix=False)
    print(f"{PROG}: serving ProbeApps in namespace {namespace}", file=sys.stderr, flush=True)
    kopf.run(standalone=True, namespaces=[namespace])
    return 0


if __name__ == "__main__":
    sys.exit(main())
