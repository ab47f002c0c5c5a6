"""A small, read-mostly view of the cluster for checks and diagnostics (official Python client)."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubelab import paths
from kubelab.errors import ClusterUnreachableError
from kubelab.kube import ready

# Every request, discovery included, gives up after these: a wedged API server is reported in
# seconds, not minutes. A TLS handshake counts as connecting.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0
REQUEST_TIMEOUT = (CONNECT_TIMEOUT, READ_TIMEOUT)


class UnknownKind(Exception):
    """The cluster does not serve this apiVersion/kind (yet): e.g. its CRD is not installed."""


@dataclass
class HttpAnswer:
    status: int
    body: str


class Kube:
    def __init__(self, kubeconfig: Path, context: str) -> None:
        from kubernetes import config

        self.context = context
        self.kubeconfig = kubeconfig
        try:
            self.api_client = config.new_client_from_config(
                config_file=str(kubeconfig), context=context
            )
        except Exception as exc:  # the client's loader: bad server URL, exec plugin failing...
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ClusterUnreachableError(
                f"cannot use context {context!r}: {reason}",
                "check its cluster and user entries: `kubectl config view --minify`",
            ) from None
        self.server = self.api_client.configuration.host
        # The dynamic client's discovery passes no _request_timeout, and the REST client then
        # hands urllib3 an explicit timeout=None (which beats any pool default): give every
        # request ours unless it brings its own (a long watch must). urllib3's default 3
        # retries would triple each wait; kubelab polls anyway.
        rest = self.api_client.rest_client
        send = rest.request

        def request_with_timeout(*args: Any, _request_timeout: Any = None, **kw: Any) -> Any:
            return send(*args, _request_timeout=_request_timeout or REQUEST_TIMEOUT, **kw)

        rest.request = request_with_timeout
        rest.pool_manager.connection_pool_kw["retries"] = False
        self._dynamic: Any = None

    # --- generic objects ----------------------------------------------------------------------

    @property
    def dynamic(self) -> Any:
        if self._dynamic is None:
            from kubernetes.dynamic import DynamicClient

            try:
                # its discovery cache goes to kubelab's cache, not a file left in the temp folder
                cache = paths.cache_root() / "discovery" / f"{self.context}.json"
                cache.parent.mkdir(parents=True, exist_ok=True)
                self._dynamic = DynamicClient(self.api_client, cache_file=str(cache))
            except Exception as exc:
                raise self._unreachable(exc) from None
        return self._dynamic

    def _resource(self, api_version: str, kind: str) -> Any:
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        for attempt in range(2):
            try:
                return self.dynamic.resources.get(api_version=api_version, kind=kind)
            except ResourceNotFoundError:
                if attempt == 0:  # a CRD may have appeared since discovery was cached
                    self.dynamic.resources.invalidate_cache()
        raise UnknownKind(f"the cluster does not serve {kind} in {api_version}")

    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict | None:
        from kubernetes.dynamic.exceptions import NotFoundError

        resource = self._resource(api_version, kind)
        try:
            obj = resource.get(
                name=name,
                namespace=namespace if resource.namespaced else None,
                _request_timeout=REQUEST_TIMEOUT,
            )
        except NotFoundError:
            return None
        except Exception as exc:
            raise self._unreachable(exc) from None
        return obj.to_dict()

    def list(
        self, api_version: str, kind: str, namespace: str | None, selector: str | None = None
    ) -> list[dict]:
        resource = self._resource(api_version, kind)
        try:
            result = resource.get(
                namespace=namespace if resource.namespaced else None,
                label_selector=selector or "",
                _request_timeout=REQUEST_TIMEOUT,
            )
        except Exception as exc:
            raise self._unreachable(exc) from None
        return [item.to_dict() for item in result.items]

    def events_for(
        self, namespace: str | None, name: str, uid: str | None = None, limit: int = 8
    ) -> list[dict]:
        """The most recent events about objects of that name (only that very object when its
        uid is given: not an earlier one of the same name)."""
        from kubernetes import client

        selector = f"involvedObject.name={name}"
        if uid:
            selector += f",involvedObject.uid={uid}"
        try:
            events = client.CoreV1Api(self.api_client).list_namespaced_event(
                namespace or "default",
                field_selector=selector,
                _request_timeout=REQUEST_TIMEOUT,
            )
        except Exception:
            return []
        items = sorted(
            events.items,
            key=lambda e: str(e.last_timestamp or e.event_time or e.metadata.creation_timestamp),
        )
        return [
            {
                "type": e.type,
                "reason": e.reason,
                "object": f"{e.involved_object.kind}/{e.involved_object.name}",
                "message": (e.message or "").strip(),
                "count": e.count or 1,
            }
            for e in items[-limit:]
        ]

    def pod_logs(
        self, name: str, namespace: str, container: str | None = None, tail: int | None = None
    ) -> str:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            return client.CoreV1Api(self.api_client).read_namespaced_pod_log(
                name,
                namespace,
                container=container,
                tail_lines=tail,
                _request_timeout=REQUEST_TIMEOUT,
            )
        except ApiException as exc:
            return f"(no logs: {exc.reason})"
        except Exception as exc:
            raise self._unreachable(exc) from None

    # --- HTTP through the API server's proxy ------------------------------------------------

    def proxy(
        self,
        kind: str,
        name: str,
        port: int | str,
        path: str,
        namespace: str,
        method: str = "GET",
        form: dict[str, str] | None = None,
    ) -> HttpAnswer:
        """GET or POST to a Service or Pod through /api/v1/.../{services|pods}/NAME:PORT/proxy."""
        from kubernetes.client.exceptions import ApiException

        plural = {"service": "services", "pod": "pods"}[kind]
        base = f"/api/v1/namespaces/{namespace}/{plural}/{name}:{port}/proxy"
        headers: dict[str, str] = {}
        if form is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            # param_serialize applies the context's credentials; call_api returns the answer
            # whatever its status (the app's own 4xx/5xx are answers, not errors)
            request = self.api_client.param_serialize(
                method=method,
                resource_path=base + urllib.parse.quote(path, safe="/?=&"),
                header_params=headers,
                post_params=list(form.items()) if form is not None else None,
                auth_settings=["BearerToken"],
            )
            verb, url, header_params, body, post_params = request
            response = self.api_client.call_api(
                verb, url, header_params, body, post_params, _request_timeout=REQUEST_TIMEOUT
            )
            return HttpAnswer(response.status, response.read().decode("utf-8", "replace"))
        except ApiException as exc:
            body_text = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else ""
            return HttpAnswer(exc.status or 0, body_text or str(exc.reason))
        except Exception as exc:
            raise self._unreachable(exc) from None

    # --- cluster facts ------------------------------------------------------------------------

    def version(self) -> dict:
        from kubernetes import client

        try:
            info = client.VersionApi(self.api_client).get_code(_request_timeout=REQUEST_TIMEOUT)
        except Exception as exc:
            raise self._unreachable(exc) from None
        return {"gitVersion": info.git_version, "minor": info.minor, "major": info.major}

    def nodes(self) -> list[dict]:
        return self.list("v1", "Node", None)

    def nodes_not_ready(self) -> list[str]:
        return sorted(n["metadata"]["name"] for n in self.nodes() if not ready.node_ready(n))

    def _unreachable(self, exc: BaseException) -> ClusterUnreachableError:
        return unreachable(exc, self.context, self.server)


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, its causes and urllib3's wrapped reason, outermost first."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop(0)
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        reason = getattr(item, "reason", None)  # urllib3's wrapped error; ApiException's is text
        todo += [reason if isinstance(reason, BaseException) else None]
        todo += [item.__cause__, item.__context__]
        todo += [a for a in getattr(item, "args", ()) if isinstance(a, BaseException)]
    return seen


def unreachable(exc: BaseException, context: str, server: str) -> ClusterUnreachableError:
    """Name what went wrong talking to the API server, and what to do about it."""
    import ssl

    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError

    chain = _chain(exc)
    text = " ".join(f"{type(e).__name__} {e}" for e in chain)
    if isinstance(exc, ApiException) and exc.status in (401, 403):
        return ClusterUnreachableError(
            f"the API server of context {context!r} refused the request "
            f"({exc.status} {exc.reason})",
            "check the credentials of this context: `kubectl auth whoami`",
        )
    where = f"the cluster of context {context!r} ({server})"
    hint = (
        "is it running? (`kubectl cluster-info`, `kubelab doctor`; for the embedded cluster: "
        "`kubelab cluster up`)"
    )
    verify = [e for e in chain if isinstance(e, ssl.SSLCertVerificationError)]
    if verify or "certificate verify failed" in text or "CERTIFICATE_VERIFY_FAILED" in text:
        detail = (verify[0].verify_message if verify else None) or _tls_reason(text)
        return ClusterUnreachableError(
            f"TLS error talking to {where}: the server's certificate is not trusted: {detail}",
            "is this the right cluster (was it recreated)? The context's "
            "certificate-authority(-data) must be the CA of this server: get a fresh kubeconfig "
            "from the cluster's tool (kind/k3d/minikube/`kubelab cluster up`)",
        )
    closed = ("EOF", "Connection reset", "RemoteDisconnected", "Connection aborted")
    if any(word in text for word in closed):
        return ClusterUnreachableError(
            f"{where} does not answer: it closed the connection (crashed or restarting?)", hint
        )
    if any(isinstance(e, ssl.SSLError) for e in chain) or "SSLError" in text:
        return ClusterUnreachableError(
            f"TLS error talking to {where}: the handshake failed: {_tls_reason(text)}",
            "check the context's server URL (https://, host and port): is it this cluster's "
            "API server?",
        )
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "refused" in text:
        return ClusterUnreachableError(
            f"{where} does not answer: connection refused (nothing listens there)", hint
        )
    # NewConnectionError is a ConnectTimeoutError subclass: a failed connect, not a timeout
    timeouts = ConnectTimeoutError | ReadTimeoutError | TimeoutError
    if any(isinstance(e, timeouts) and not isinstance(e, NewConnectionError) for e in chain):
        return ClusterUnreachableError(
            f"{where} does not answer: no reply in time ({CONNECT_TIMEOUT:.0f} s to connect, "
            f"{READ_TIMEOUT:.0f} s to answer); it accepts connections but says nothing",
            "it may be starting, overloaded or stuck: restart it (Docker Desktop, "
            "`minikube start`, `kubelab cluster down` then `up`…) and try again",
        )
    if isinstance(exc, ApiException) and exc.status:
        return ClusterUnreachableError(
            f"{where} answered {exc.status} {exc.reason}: is this a Kubernetes API server?",
            "check the context's server URL: `kubectl config view --minify`",
        )
    if isinstance(exc, KeyError | TypeError | ValueError | AttributeError):
        return ClusterUnreachableError(
            f"{where} does not answer as a Kubernetes API server ({type(exc).__name__}: {exc})",
            "check the context's server URL: `kubectl config view --minify`",
        )
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return ClusterUnreachableError(f"{where} does not answer: {reason}", hint)


def _tls_reason(text: str) -> str:
    import re

    m = re.search(r"certificate verify failed: ([^(']+)", text) or re.search(
        r"\[SSL: ([A-Z_]+)\]", text
    )
    return m.group(1).strip() if m else "the TLS handshake failed"
