"""A host program that listens on every interface, kept off the network: run it in a network
namespace of its own, with relays to the loopback ports it must reach.

Some add-on programs bind a port on 0.0.0.0 with no flag to change it (Argo CD's application
controller serves its metrics that way). On the embedded cluster nothing may listen beyond
127.0.0.1, so such a program runs in a new network namespace (Linux: `unshare --net`, or with a
user namespace when not root) where only a loopback interface exists: what it opens there is
reachable from nowhere else. The ports it needs on the host's loopback (the API server, a
cache…) are relayed through Unix sockets, which a network namespace does not separate:

    host 127.0.0.1:P  <-tcp-  relay --unix-to-tcp SOCK=P  <-unix SOCK-  relay --tcp-to-unix P=SOCK
    (in the host's namespace)                                 (in the program's, same port P)

so inside, the program connects to 127.0.0.1:P exactly as it would outside. Both relays are this
module (`python -m kubelab.addons.netns`); the inside one also brings the namespace's loopback
up and runs the program as its child, which it stops when it is stopped itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import fcntl
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

HOST = "127.0.0.1"
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1


def unshare_prefix() -> list[str] | None:
    """The command prefix that starts a program in a new network namespace, or None where this
    machine cannot (not Linux, no `unshare`, user namespaces disabled for a non-root user)."""
    if sys.platform != "linux":
        return None
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    prefix = [unshare, "--net"] if os.geteuid() == 0 else [unshare, "--user", "--map-root-user",
                                                             "--net"]  # fmt: skip
    probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=10, check=False)
    return prefix if probe.returncode == 0 else None


def loopback_up() -> None:
    """`ip link set lo up`, without needing the ip program: a new namespace's lo is down."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, _SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def _handler(connect):  # connect: () -> awaitable (reader, writer)
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await connect()
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    return handle


async def _relay(tcp_to_unix: list[tuple[int, str]], unix_to_tcp: list[tuple[str, int]]) -> list:
    servers = []
    for port, path in tcp_to_unix:
        connect = lambda p=path: asyncio.open_unix_connection(p)  # noqa: E731
        servers.append(await asyncio.start_server(_handler(connect), HOST, port))
    for path, port in unix_to_tcp:
        Path(path).unlink(missing_ok=True)
        connect = lambda p=port: asyncio.open_connection(HOST, p)  # noqa: E731
        servers.append(await asyncio.start_unix_server(_handler(connect), path))
        os.chmod(path, 0o600)
    return servers


def _die_with_parent() -> None:  # in the child, before exec: killed when the relay dies
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


async def _main(args: argparse.Namespace) -> int:
    tcp_to_unix = [(int(p), s) for p, _, s in (x.partition("=") for x in args.tcp_to_unix)]
    unix_to_tcp = [(s, int(p)) for s, _, p in (x.partition("=") for x in args.unix_to_tcp)]
    if args.loopback_up:
        loopback_up()
    servers = await _relay(tcp_to_unix, unix_to_tcp)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    child = None
    if args.command:
        child = subprocess.Popen(args.command, preexec_fn=_die_with_parent)
        waiter = loop.run_in_executor(None, child.wait)
        done, _ = await asyncio.wait(
            [waiter, asyncio.ensure_future(stop.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        if waiter not in done:
            child.terminate()
            try:
                await asyncio.wait_for(asyncio.shield(waiter), 10)
            except TimeoutError:
                child.kill()
                await waiter
    else:
        await stop.wait()
    for server in servers:
        server.close()
    for path, _ in unix_to_tcp:
        Path(path).unlink(missing_ok=True)
    return child.returncode if child is not None and child.returncode is not None else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubelab.addons.netns", description=__doc__)
    parser.add_argument("--tcp-to-unix", action="append", default=[], metavar="PORT=SOCKET")
    parser.add_argument("--unix-to-tcp", action="append", default=[], metavar="SOCKET=PORT")
    parser.add_argument("--loopback-up", action="store_true", help="set lo up first (new netns)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- PROGRAM ARGS: run it")
    args = parser.parse_args(argv)
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
