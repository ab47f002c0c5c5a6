"""scripts/rabbitmq_service.py: install is a quick no-op when present; nodes are loopback-only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

LISTEN = "0A"
LOOPBACK_V4 = "0100007F"  # 127.0.0.1 as /proc/net/tcp prints it
LOOPBACK_V6 = "00000000000000000000000001000000"  # ::1


def _listeners(port: int) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp[6]) listening on `port`."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if int(port_hex, 16) == port and fields[3] == LISTEN:
                found.append(address)
    return found


def test_install_is_a_quick_noop_when_present(rabbitmq_broker: Any, rabbitmq_service: Any) -> None:
    script = Path(rabbitmq_service.__file__)
    result = subprocess.run(
        [sys.executable, str(script), "install"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "already installed" in result.stdout


def test_private_node_listens_on_loopback_only(rabbitmq_broker: Any) -> None:
    for port in (rabbitmq_broker.port, rabbitmq_broker.dist_port, rabbitmq_broker.epmd_port):
        addresses = _listeners(port)
        assert addresses, f"nothing listens on port {port}"
        assert set(addresses) <= {LOOPBACK_V4, LOOPBACK_V6}, (port, addresses)
    assert rabbitmq_broker.nodename.startswith("kubelab-test-")
    assert str(rabbitmq_broker.base) in rabbitmq_broker.env()["RABBITMQ_MNESIA_BASE"]
