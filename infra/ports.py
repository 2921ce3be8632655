#!/usr/bin/env python3
"""A free TCP port on 127.0.0.1 for a server that binds it a moment later.

Asking the kernel for port 0 gives a port from the ephemeral range, the range outgoing
connections take their local ports from: between picking it and the server binding it, a
service's connection to MongoDB or NATS can take the same port and keep it for as long
as the connection lives (seen in `faults/schema`: payments could not bind for 30 s). So
the port is drawn below that range, and checked free by binding it.

usage: python3 infra/ports.py   prints one port (dev/lib.sh's free_port)
"""

import random
import socket

_given = set()


def _ephemeral_start():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    """A port below the ephemeral range that is free now and not given out before by
    this process."""
    high = min(_ephemeral_start(), 65536) - 1
    low = max(1024, high - 12000)
    for _ in range(1000):
        port = random.randint(low, high)
        if port in _given:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given.add(port)
        return port
    with socket.socket() as s:  # the range is crowded: let the kernel choose
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    print(free_port())
