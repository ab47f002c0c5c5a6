"""Real servers on 127.0.0.1 that misbehave the way broken API servers do, and kubeconfigs that
point at them. Used by the bad-input tests and by benchmarks/bad_inputs.py (no cluster needed)."""

from __future__ import annotations

import base64
import contextlib
import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml


class _Listener:
    """Accepts TCP connections on loopback and hands each to `serve` in a daemon thread."""

    def __init__(self, serve) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port: int = self.sock.getsockname()[1]
        self._serve = serve
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self.connections = 0  # accepted so far: lets a test wait until a client is stuck here
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self._held.append(conn)
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn, self._stop), daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()
        for conn in self._held:
            with contextlib.suppress(OSError):
                conn.close()


def _hold(conn: socket.socket, stop: threading.Event) -> None:
    stop.wait()  # accept, read nothing, answer nothing: like a wedged API server


def _hang_up(conn: socket.socket, stop: threading.Event) -> None:
    conn.close()  # like a process that dies on each request


@contextlib.contextmanager
def hanging_server() -> Iterator[_Listener]:
    """A listener (`.port`, `.connections`) that accepts TCP connections and never sends a
    byte."""
    listener = _Listener(_hold)
    try:
        yield listener
    finally:
        listener.close()


@contextlib.contextmanager
def hang_up_server() -> Iterator[int]:
    """A port that accepts each connection and closes it at once."""
    listener = _Listener(_hang_up)
    try:
        yield listener.port
    finally:
        listener.close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- TLS ----------------------------------------------------------------------------------------


@dataclass
class Pki:
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes


def make_pki(hostname: str = "127.0.0.1", expired: bool = False) -> Pki:
    """A CA and a server certificate it signed for `hostname` (an IP or DNS name)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubelab-fake-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(hostname))
    except ValueError:
        san = x509.DNSName(hostname)
    start = now - datetime.timedelta(days=10 if expired else 1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=5 if expired else 2))
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return Pki(
        ca.public_bytes(pem),
        cert.public_bytes(pem),
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )


@contextlib.contextmanager
def tls_server(pki: Pki, folder: Path, answer: bytes = b"{}") -> Iterator[int]:
    """An HTTPS port serving `pki`'s certificate; answers every request with 200 `answer`."""
    cert, key = folder / "server.crt", folder / "server.key"
    cert.write_bytes(pki.cert_pem)
    key.write_bytes(pki.key_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)

    def serve(conn: socket.socket, stop: threading.Event) -> None:
        conn.settimeout(5)
        try:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(65536)
                head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(answer)}\r\n"
                tls.sendall(head.encode() + b"Connection: close\r\n\r\n" + answer)
        except (OSError, ssl.SSLError):
            return  # the client refused our certificate: that is the point

    listener = _Listener(serve)
    try:
        yield listener.port
    finally:
        listener.close()


# --- kubeconfigs --------------------------------------------------------------------------------


def write_kubeconfig(
    path: Path, server: str, context: str = "kind-fake", ca_pem: bytes | None = None
) -> Path:
    """A kubeconfig whose current context (a training-cluster name) points at `server`."""
    cluster: dict[str, object] = {"server": server}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    elif server.startswith("https"):
        cluster["insecure-skip-tls-verify"] = True
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": context,
                "clusters": [{"name": "fake", "cluster": cluster}],
                "users": [{"name": "fake", "user": {"token": "not-a-real-token"}}],
                "contexts": [{"name": context, "context": {"cluster": "fake", "user": "fake"}}],
            }
        )
    )
    path.chmod(0o600)
    return path


def fake_tools(folder: Path) -> Path:
    """A folder with a stand-in `kubectl` (client version only), so that a missing kubectl on
    the test machine does not stop kubelab before it talks to the fake server."""
    folder.mkdir(parents=True, exist_ok=True)
    kubectl = folder / "kubectl"
    kubectl.write_text(
        '#!/bin/sh\necho \'{"clientVersion": {"gitVersion": "v1.36.5"}}\'\n',
    )
    kubectl.chmod(0o755)
    return folder
