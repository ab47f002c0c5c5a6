#!/usr/bin/env python3
"""Make a kubeconfig file for a lab user, in the lab's work folder, for the cluster of your
current kubectl context -- without ever writing to your own kubeconfig.

    python3 make-user.py jane --namespace team1
        a person: a private key (openssl), a CertificateSigningRequest for CN=jane, approved
        with `kubectl certificate approve`, and the certificate the cluster issues
        -> $KUBELAB_WORK/jane.key, jane.csr, jane.crt and jane.kubeconfig

    kubectl create token reporter -n team1 | python3 make-user.py reporter --token-stdin
        a ServiceAccount: the token read from stdin -> $KUBELAB_WORK/reporter.kubeconfig

Running it again is harmless: a user whose kubeconfig still works on this cluster is left as it
is; otherwise the user's old CSR is replaced, so there is only ever one of each. It needs
python3 (standard library only), kubectl with the cluster's admin as the current context, and,
for a person, the openssl command (macOS and Linux ship it; on Windows, Git Bash has it).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LAB = "namespaces-and-rbac"
SIGNER = "kubernetes.io/kube-apiserver-client"  # the built-in signer of client certificates
VALID_SECONDS = 7 * 24 * 3600  # the certificate's lifetime we ask for (the signer may cut it)
ISSUE_TIMEOUT_S = 30  # approval to certificate usually takes well under a second
KUBECTL_TIMEOUT_S = 30
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class Fail(Exception):
    """What went wrong and what to do; printed without a traceback."""


def work_dir() -> Path:
    """$KUBELAB_WORK (kubelab sets it), else where kubelab would put this lab's files."""
    default = Path.home() / ".local" / "state" / "kubelab" / "work" / LAB
    return Path(os.environ.get("KUBELAB_WORK") or default)


def show(cmd: list[str]) -> None:
    print("  $ " + shlex.join(cmd), flush=True)


def run(
    cmd: list[str], *, stdin: str | None = None, check: bool = True, quiet: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run a command (shown first unless quiet); with check, a non-zero exit is a Fail."""
    if not quiet:
        show(cmd)
    try:
        proc = subprocess.run(
            cmd,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=KUBECTL_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError:
        raise Fail(f"{cmd[0]} is not installed (or not on PATH)") from None
    except subprocess.TimeoutExpired:
        raise Fail(f"`{shlex.join(cmd)}` did not finish within {KUBECTL_TIMEOUT_S}s") from None
    if check and proc.returncode != 0:
        said = (proc.stderr or proc.stdout).strip()
        raise Fail(f"`{shlex.join(cmd)}` exited {proc.returncode}: {said}")
    if not quiet and proc.stdout.strip():
        print("    " + proc.stdout.strip().replace("\n", "\n    "), flush=True)
    return proc


def need(tool: str, why: str) -> None:
    if shutil.which(tool) is None:
        raise Fail(f"{tool} is not on PATH; it is needed {why}")


# --------------------------------------------------------------------- the cluster we talk to


def current_cluster() -> tuple[str, str, dict]:
    """(context name, cluster name, cluster entry) of the current context, with the CA inlined
    (`--flatten`), so the user's kubeconfig does not depend on files of yours."""
    proc = run(["kubectl", "config", "view", "--minify", "--flatten", "-o", "json"], quiet=True)
    try:
        config = json.loads(proc.stdout)
        context = config["current-context"]
        cluster = config["clusters"][0]
    except (ValueError, KeyError, IndexError):
        raise Fail(
            "kubectl has no current context: `kubectl config use-context NAME` picks your "
            "training cluster"
        ) from None
    entry = {k: v for k, v in cluster["cluster"].items() if k != "extensions"}
    return context, cluster["name"], entry


def still_works(kubeconfig: Path, server: str, username: str) -> bool:
    """Whether an existing kubeconfig points at this cluster's server and the API server still
    accepts its credential as `username` (a new cluster, or an expired certificate, fail)."""
    if not kubeconfig.is_file():
        return False
    base = ["kubectl", "--kubeconfig", str(kubeconfig)]
    server_path = "jsonpath={.clusters[0].cluster.server}"
    where = run([*base, "config", "view", "--minify", "-o", server_path], check=False, quiet=True)
    if where.returncode != 0 or where.stdout.strip() != server:
        return False
    who = run(
        [
            *base,
            "auth",
            "whoami",
            "--request-timeout=10s",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
        check=False,
        quiet=True,
    )
    return who.returncode == 0 and who.stdout.strip() == username


# --------------------------------------------------------------------- files


def write_private(path: Path, text: str) -> None:
    """Write a file readable by you only (0600), atomically: a reader sees the old or the new."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def yaml_value(value: object) -> str:
    # JSON strings and booleans are valid YAML; quoting every string keeps "true" or a port
    # number from being read as something else
    return json.dumps(value)


def kubeconfig_text(
    cluster_name: str,
    cluster: dict,
    user: str,
    credential: dict,
    namespace: str | None,
    context: str,
) -> str:
    lines = [
        "# A lab user's kubeconfig, made by labs/namespaces-and-rbac/make-user.py.",
        "# Use it with `kubectl --kubeconfig THIS-FILE ...` (or KUBECONFIG=THIS-FILE).",
        "apiVersion: v1",
        "kind: Config",
        "clusters:",
        f"- name: {yaml_value(cluster_name)}",
        "  cluster:",
        *(f"    {k}: {yaml_value(v)}" for k, v in cluster.items()),
        "users:",
        f"- name: {yaml_value(user)}",
        "  user:",
        *(f"    {k}: {yaml_value(v)}" for k, v in credential.items()),
        "contexts:",
        f"- name: {yaml_value(context)}",
        "  context:",
        f"    cluster: {yaml_value(cluster_name)}",
        f"    user: {yaml_value(user)}",
        *([f"    namespace: {yaml_value(namespace)}"] if namespace else []),
        f"current-context: {yaml_value(context)}",
    ]
    return "\n".join(lines) + "\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --------------------------------------------------------------------- a person: key, CSR, cert


def csr_manifest(name: str, request_pem: bytes) -> str:
    return json.dumps(
        {
            "apiVersion": "certificates.k8s.io/v1",
            "kind": "CertificateSigningRequest",
            "metadata": {"name": name, "labels": {"kubelab.dev/lab": LAB}},
            "spec": {
                "request": b64(request_pem),
                "signerName": SIGNER,
                "expirationSeconds": VALID_SECONDS,
                "usages": ["client auth"],
            },
        }
    )


def wait_for_certificate(name: str) -> bytes:
    """The certificate the signer puts in the approved CSR's status, polled with a deadline."""
    deadline = time.monotonic() + ISSUE_TIMEOUT_S
    while True:
        proc = run(["kubectl", "get", "csr", name, "-o", "json"], quiet=True)
        status = json.loads(proc.stdout).get("status") or {}
        for cond in status.get("conditions") or []:
            if cond.get("type") in ("Denied", "Failed") and cond.get("status") == "True":
                raise Fail(
                    f"CSR {name} is {cond['type']}: {cond.get('message') or cond.get('reason')}"
                    f" (`kubectl describe csr {name}`)"
                )
        if status.get("certificate"):
            return base64.b64decode(status["certificate"])
        if time.monotonic() >= deadline:
            raise Fail(
                f"CSR {name} is approved but no certificate was issued within "
                f"{ISSUE_TIMEOUT_S}s: the cluster has no signer for {SIGNER} running "
                f"(`kubectl describe csr {name}`; see the lesson's notes per cluster flavour)"
            )
        time.sleep(0.5)


def make_person(name: str, work: Path, server: str) -> dict | None:
    """Key, CSR, approval, certificate: the credential for the kubeconfig (None: the existing
    kubeconfig still works and is kept)."""
    kubeconfig = work / f"{name}.kubeconfig"
    if still_works(kubeconfig, server, name):
        print(f"{kubeconfig} already works on this cluster as {name}: nothing to do")
        return None
    need("openssl", "to make the private key and the certificate signing request")
    key, csr, crt = (work / f"{name}.{ext}" for ext in ("key", "csr", "crt"))
    print(f"1. a private key for {name} (it never leaves this machine)")
    if key.is_file():
        print(f"  {key.name} exists: reusing it")
    else:
        # made under a temporary name, so that an interrupted run leaves no half-written key
        partial = key.with_name(f".{key.name}.partial")
        try:
            run(
                [
                    "openssl",
                    "ecparam",
                    "-name",
                    "prime256v1",
                    "-genkey",
                    "-noout",
                    "-out",
                    str(partial),
                ]
            )
            os.replace(partial, key)
        finally:
            partial.unlink(missing_ok=True)
    print(f"2. a certificate signing request: the public key and the name CN={name}")
    try:
        run(["openssl", "req", "-new", "-key", str(key), "-subj", f"/CN={name}", "-out", str(csr)])
    except Fail as e:
        raise Fail(f"{e}\n(if {key} is damaged, delete it: the next run makes a new one)") from None
    print(f"3. the CSR, sent to the cluster (an old one of {name}, if any, replaced)")
    run(["kubectl", "delete", "csr", name, "--ignore-not-found"])
    run(["kubectl", "create", "-f", "-"], stdin=csr_manifest(name, csr.read_bytes()))
    print("4. approved, as the cluster's admin")
    run(["kubectl", "certificate", "approve", name])
    print(f"5. the certificate the cluster's CA signed (from the CSR's status) -> {crt.name}")
    cert = wait_for_certificate(name)
    write_private(crt, cert.decode())
    return {"client-certificate-data": b64(cert), "client-key-data": b64(key.read_bytes())}


# --------------------------------------------------------------------- a ServiceAccount: token


def token_claims(token: str) -> dict:
    """The claims of a JWT (its middle part, base64url JSON); the API server checks the
    signature, we only read what it says."""
    parts = token.split(".")
    if len(parts) != 3:
        raise Fail(
            "stdin holds no token: pipe one in, e.g. "
            "`kubectl create token reporter -n team1 | python3 make-user.py reporter --token-stdin`"
        )
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        return json.loads(payload)
    except (binascii.Error, ValueError):
        raise Fail("stdin holds something that is not a JSON Web Token") from None


def describe_token(claims: dict) -> str:
    expires = claims.get("exp")
    until = "?"
    if isinstance(expires, int):
        # timezone.utc, not datetime.UTC (3.11): this runs on the learner's python3, maybe older
        when = datetime.datetime.fromtimestamp(expires, datetime.timezone.utc)  # noqa: UP017
        until = when.strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        f"a token for {claims.get('sub', '?')}, valid until {until}, audience {claims.get('aud')}"
    )


# --------------------------------------------------------------------- main


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="make-user.py",
        description="Make $KUBELAB_WORK/NAME.kubeconfig for the cluster of your current context "
        "(your own kubeconfig is only read).",
    )
    p.add_argument("name", help="the user's name (a person's CN, or a file name for a token)")
    p.add_argument("--namespace", help="the namespace the user's context starts in")
    p.add_argument(
        "--token-stdin",
        action="store_true",
        help="read a ServiceAccount token from stdin instead of making a certificate",
    )
    args = p.parse_args(argv)
    if not DNS_LABEL.match(args.name):
        p.error(f"{args.name!r} is not a valid name: lower-case letters, digits and '-'")
    return args


def main(argv: list[str]) -> int:
    args = parse(argv)
    os.umask(0o077)  # keys, certificates and kubeconfigs: readable by you only
    try:
        need("kubectl", "to talk to the cluster")
        work = work_dir()
        work.mkdir(parents=True, exist_ok=True, mode=0o700)
        context, cluster_name, cluster = current_cluster()
        server = cluster.get("server", "?")
        print(f"cluster: {server} (context {context}; your kubeconfig is only read)")
        if args.token_stdin:
            token = sys.stdin.read().strip()
            print(describe_token(token_claims(token)))
            credential: dict | None = {"token": token}
        else:
            credential = make_person(args.name, work, server)
        if credential is None:
            return 0
        kubeconfig = work / f"{args.name}.kubeconfig"
        write_private(
            kubeconfig,
            kubeconfig_text(
                cluster_name,
                cluster,
                args.name,
                credential,
                args.namespace,
                f"{args.name}@{context}",
            ),
        )
        print(f"wrote {kubeconfig}")
        print(f'use it: kubectl --kubeconfig "{kubeconfig}" auth whoami')
        return 0
    except Fail as e:
        print(f"make-user.py: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
