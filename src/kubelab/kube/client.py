"""A small, read-mostly view of the cluster for checks and diagnostics (official Python client)."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubelab import paths
from kubelab.errors import ClusterUnreachableError

REQUEST_TIMEOUT = 10


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
        self.api_client = config.new_client_from_config(
            config_file=str(kubeconfig), context=context
        )
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
        """The most recent events about the object of that name (and UID, when known)."""
        from kubernetes import client

        try:
            events = client.CoreV1Api(self.api_client).list_namespaced_event(
                namespace or "default",
                field_selector=f"involvedObject.name={name}"
                + (f",involvedObject.uid={uid}" if uid else ""),
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

    def _unreachable(self, exc: Exception) -> ClusterUnreachableError:
        from kubernetes.client.exceptions import ApiException

        if isinstance(exc, ApiException) and exc.status in (401, 403):
            return ClusterUnreachableError(
                f"the API server of context {self.context!r} refused the request "
                f"({exc.status} {exc.reason})",
                "check the credentials of this context: `kubectl auth whoami`",
            )
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return ClusterUnreachableError(
            f"the cluster of context {self.context!r} does not answer: {reason}",
            "is it running? (`kubectl cluster-info`, `kubelab doctor`; "
            "for the embedded cluster: `kubelab cluster up`)",
        )
