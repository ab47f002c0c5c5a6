"""One run at a time per cluster: `run` and `reset` hold a Lease (kube-system/kubelab-run) that
names the lab, the process and the host, renewed while they work. A second run refuses with that
name; a lease whose holder died (same host, no such process) or stopped renewing is taken over.
`check` only reads, and takes no lock."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubelab.errors import KubelabError

if TYPE_CHECKING:
    from kubelab.kube.client import Kube

NAMESPACE = "kube-system"
NAME = "kubelab-run"
DURATION_S = 30
RENEW_S = 10


class RunLockedError(KubelabError):
    """Another kubelab run works on this cluster."""


@dataclass(frozen=True)
class Holder:
    lab: str
    pid: int
    host: str

    def identity(self) -> str:
        return f"lab={self.lab} pid={self.pid} host={self.host}"

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        try:
            fields = dict(part.split("=", 1) for part in text.split())
            return cls(fields["lab"], int(fields["pid"]), fields["host"])
        except (KeyError, ValueError):
            return None

    def alive(self) -> bool:
        """False only when we can tell: the same host and no such process."""
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class RunLock:
    def __init__(self, kube: Kube, lab: str) -> None:
        from kubernetes import client

        self.api = client.CoordinationV1Api(kube.api_client)
        self.me = Holder(lab, os.getpid(), socket.gethostname())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self, resource_version: str | None = None) -> Any:
        from kubernetes import client

        now = _now()
        return client.V1Lease(
            metadata=client.V1ObjectMeta(
                name=NAME, namespace=NAMESPACE, resource_version=resource_version
            ),
            spec=client.V1LeaseSpec(
                holder_identity=self.me.identity(),
                lease_duration_seconds=DURATION_S,
                acquire_time=now,
                renew_time=now,
            ),
        )

    def acquire(self) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.api.create_namespaced_lease(NAMESPACE, self._body(), _request_timeout=10)
        except ApiException as exc:
            if exc.status != 409:
                raise KubelabError(f"cannot take the run lock: {exc.status} {exc.reason}") from None
            self._take_over()
        self._thread = threading.Thread(target=self._renew, name="kubelab-lock", daemon=True)
        self._thread.start()

    def _take_over(self) -> None:
        from kubernetes.client.exceptions import ApiException

        lease = self.api.read_namespaced_lease(NAME, NAMESPACE, _request_timeout=10)
        spec = lease.spec
        holder = Holder.parse(spec.holder_identity or "")
        renewed = spec.renew_time or spec.acquire_time
        age = (_now() - renewed).total_seconds() if renewed else DURATION_S + 1
        stale = age > (spec.lease_duration_seconds or DURATION_S)
        if holder and holder.alive() and not stale and holder != self.me:
            raise RunLockedError(
                f"another kubelab run works on this cluster: lab {holder.lab} (pid {holder.pid} "
                f"on {holder.host}, renewed {age:.0f}s ago)",
                "wait for it to finish or stop it; a lock that is not renewed for "
                f"{DURATION_S}s is taken over",
            )
        try:
            self.api.replace_namespaced_lease(
                NAME, NAMESPACE, self._body(lease.metadata.resource_version), _request_timeout=10
            )
        except ApiException as exc:  # someone else took it over first
            raise RunLockedError(
                "another kubelab run took the cluster's run lock just now",
                "wait for it to finish, then try again",
            ) from exc

    def _renew(self) -> None:
        while not self._stop.wait(RENEW_S):
            with contextlib.suppress(Exception):  # a missed renewal is retried; expiry is 30s
                self.api.patch_namespaced_lease(
                    NAME,
                    NAMESPACE,
                    {"spec": {"renewTime": _now().isoformat().replace("+00:00", "Z")}},
                    _request_timeout=5,
                )

    def release(self) -> None:
        from kubernetes import client

        self._stop.set()
        with contextlib.suppress(Exception):  # never mask the run's own outcome
            lease = self.api.read_namespaced_lease(NAME, NAMESPACE, _request_timeout=5)
            if lease.spec.holder_identity == self.me.identity():
                self.api.delete_namespaced_lease(
                    NAME,
                    NAMESPACE,
                    body=client.V1DeleteOptions(
                        preconditions=client.V1Preconditions(
                            resource_version=lease.metadata.resource_version
                        )
                    ),
                    _request_timeout=5,
                )

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
