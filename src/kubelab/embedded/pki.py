"""The embedded cluster's certificates and keys, made by kubelab before kwokctl starts anything.

kwokctl (v0.8) would make one CA and one RSA key that serves as the API server's TLS key, the
service-account signing key and the admin's client key, with files readable by everyone, and
would run etcd without authentication. kubelab makes the ``pki/`` folder first (kwokctl then
keeps it) and points the components at separate keys:

============================  =========================================================
``ca.crt/key``                the cluster CA (clients, the CSR API signs lab users with it)
``admin.crt/key``             the admin client (kwokctl's kubeconfigs and components)
``apiserver.crt/key``         the API server's TLS serving certificate
``sa.key/pub``                service-account token signing
``etcd-ca.crt/key``           etcd's own CA: a certificate from the cluster CA (a lab
                              user's, say) is no good for etcd
``etcd-server.crt/key``       etcd's serving and peer certificate
``apiserver-etcd-client``     the only client etcd accepts
============================  =========================================================

Every key file is 0600, the folder 0700. Uses the ``openssl`` program.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from kubelab.errors import KubelabError

API_SERVER_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
API_SERVER_IPS = ("127.0.0.1", "10.0.0.1", "10.96.0.1")


class PkiError(KubelabError):
    """A certificate or key cannot be made."""


def _openssl(*args: str) -> None:
    try:
        proc = subprocess.run(
            ["openssl", *args], capture_output=True, text=True, timeout=60, check=False
        )
    except FileNotFoundError:
        raise PkiError(
            "the `openssl` program is not installed; the embedded cluster makes its certificates "
            "with it",
            "install openssl (Debian/Ubuntu: apt-get install openssl; macOS has LibreSSL)",
        ) from None
    if proc.returncode != 0:
        raise PkiError(f"openssl {args[0]} failed: {proc.stderr.strip()[-500:]}")


def private_key(path: Path) -> Path:
    if not path.exists():
        # "EC PRIVATE KEY" (SEC 1), not PKCS#8: the API server reads public keys from private
        # key files only in that form (kwokctl passes admin.key as a service-account key file)
        _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(path))
    os.chmod(path, 0o600)
    return path


def make_ca(folder: Path, name: str, cn: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    key = private_key(folder / f"{name}.key")
    crt = folder / f"{name}.crt"
    if not crt.exists():
        _openssl("req", "-x509", "-new", "-key", str(key), "-subj", f"/CN={cn}", "-days", "365",
                 "-out", str(crt), "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    return crt, key


def issue(
    folder: Path,
    name: str,
    ca: tuple[Path, Path],
    cn: str,
    org: str = "",
    client: bool = True,
    server: bool = False,
    ips: tuple[str, ...] = (),
    dns: tuple[str, ...] = (),
) -> tuple[Path, Path]:
    """A certificate signed by `ca` for client and/or server use; key 0600. Kept if present."""
    key = private_key(folder / f"{name}.key")
    crt = folder / f"{name}.crt"
    if crt.exists():
        return crt, key
    csr = folder / f"{name}.csr"
    subj = f"/CN={cn}" + (f"/O={org}" if org else "")
    _openssl("req", "-new", "-key", str(key), "-subj", subj, "-out", str(csr))
    usages = [u for u, on in (("clientAuth", client), ("serverAuth", server)) if on]
    lines = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature",
        "extendedKeyUsage=" + ",".join(usages),
    ]
    sans = [f"IP:{ip}" for ip in ips] + [f"DNS:{d}" for d in dns]
    if sans:
        lines.append("subjectAltName=" + ",".join(sans))
    ext = folder / f"{name}.ext"
    ext.write_text("\n".join(lines) + "\n")
    try:
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
                 "-CAcreateserial", "-days", "365", "-extfile", str(ext),
                 "-out", str(crt))  # fmt: skip
    finally:
        csr.unlink(missing_ok=True)
        ext.unlink(missing_ok=True)
    return crt, key


def control_plane(pki: Path, cluster: str) -> dict[str, Path]:
    """Make (or keep) every certificate and key of the control plane in `pki`."""
    ca = make_ca(pki, "ca", f"kubelab-{cluster}-ca")
    # kwokctl's components and kubeconfigs use admin.crt; kube-controller-manager, the
    # scheduler and kwok also serve their own ports with it
    issue(pki, "admin", ca, "kwok-admin", "system:masters", server=True,
          ips=("127.0.0.1",), dns=("localhost",))  # fmt: skip
    apiserver = issue(pki, "apiserver", ca, "kube-apiserver", client=False, server=True,
                      ips=API_SERVER_IPS, dns=API_SERVER_NAMES)  # fmt: skip
    sa_key = private_key(pki / "sa.key")
    sa_pub = pki / "sa.pub"
    if not sa_pub.exists():
        _openssl("pkey", "-in", str(sa_key), "-pubout", "-out", str(sa_pub))
    etcd_ca = make_ca(pki, "etcd-ca", f"kubelab-{cluster}-etcd-ca")
    etcd = issue(pki, "etcd-server", etcd_ca, "etcd", server=True, client=True,
                 ips=("127.0.0.1",), dns=("localhost",))  # fmt: skip
    etcd_client = issue(pki, "apiserver-etcd-client", etcd_ca, "kube-apiserver-etcd-client")
    for entry in pki.iterdir():
        if entry.suffix == ".key":
            os.chmod(entry, 0o600)
        elif entry.suffix == ".srl":
            entry.unlink(missing_ok=True)
    return {
        "ca": ca[0],
        "ca_key": ca[1],
        "apiserver_crt": apiserver[0],
        "apiserver_key": apiserver[1],
        "sa_key": sa_key,
        "sa_pub": sa_pub,
        "etcd_ca": etcd_ca[0],
        "etcd_crt": etcd[0],
        "etcd_key": etcd[1],
        "etcd_client_crt": etcd_client[0],
        "etcd_client_key": etcd_client[1],
    }
