"""Whether a Ray cluster runs on this machine, without importing Ray.

A `ray://` runner whose jobs may run on other machines cannot use stores that live in this
machine's files (a SQLite database, a local artifact folder): those workers could not see them.
Settings refuse that pairing up front (`tabpilot.jobs.registry.runner_store_problem`), and the
runner checks the cluster's nodes again once connected (`tabpilot.jobs.ray_runner`).
"""

from __future__ import annotations

import ipaddress
import socket

LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


def is_local_address(address: str) -> bool:
    """True when the IP `address` belongs to this machine (loopback, or a socket binds to it)."""
    try:
        ip = ipaddress.ip_address(address.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    if ip.is_loopback:
        return True
    if ip.is_unspecified or ip.is_multicast:
        return False
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((str(ip), 0))  # only an address of one of this machine's interfaces binds
    except OSError:
        return False
    return True


def is_this_machine(host: str) -> bool:
    """True when `host` (a name or an IP) is this machine; an unknown name is not."""
    name = host.strip("[]").rstrip(".").lower()
    if not name:
        return False
    if name in LOCAL_NAMES or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        pass
    else:
        return is_local_address(name)
    if name == socket.gethostname().lower():
        return True
    try:
        found = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False
    return bool(found) and all(is_local_address(str(info[4][0])) for info in found)
