"""The listening socket: the ``--web.listen-address`` flag read, and bound as an exporter binds it."""

from __future__ import annotations

import errno
import socket


def parse_listen_address(address: str) -> tuple[str, int]:
    """``:9877``, ``0.0.0.0:9877``, ``[::1]:9877`` or ``localhost:9877`` → (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"invalid listen address {address!r}: expected [HOST]:PORT, e.g. ':9877'")
    return host.strip("[]"), int(port)


def _listen(family: socket.AddressFamily, address: tuple[str, int]) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # rebind at once after a restart
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # "[::]:9877" takes IPv4 too
        sock.bind(address)
        sock.listen(socket.SOMAXCONN)  # bursts of connects wait in the kernel
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def bind(host: str, port: int) -> socket.socket:
    """The listening socket; an empty host is every interface, IPv6 and IPv4 alike where it can."""
    if ":" in host or host == "":
        try:
            return _listen(socket.AF_INET6, (host or "::", port))
        except OSError as exc:
            # IPv6 compiled in but disabled on this host (common in containers).
            if host or exc.errno not in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
                raise
        host = "0.0.0.0"
    return _listen(socket.AF_INET, (host, port))


def written(host: str, port: int) -> str:
    """An address as the flag writes it: ``[::]:9877``, ``127.0.0.1:9877``."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def shown(scheme: str, address: tuple[str, int], wildcard: str) -> str:
    """A URL for a bound address, naming ``wildcard`` (a host name) for one that listens everywhere."""
    host, port = address
    return f"{scheme}://{written(wildcard if host in ('0.0.0.0', '::', '') else host, port)}"
