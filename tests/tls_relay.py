"""Relay for tests/tls_servers.py, run inside a fresh network namespace (``unshare -n``).

``python tls_relay.py FD PORT CMD...``: brings up ``lo``, starts CMD (gnutls-serv listening
on PORT in this namespace), prints ``ready`` once CMD listens, then accepts on the inherited
socket FD -- a 127.0.0.1 listener that belongs to the parent's namespace -- and pipes each
connection to 127.0.0.1:PORT here. Standard library only, so it starts fast. SIGTERM stops
CMD and the relay.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 15.0
#: A connection idle this long in both directions is dropped.
IDLE_TIMEOUT = 30.0


def _pump(a: socket.socket, b: socket.socket) -> None:
    socks = [a, b]
    try:
        while True:
            ready, _, _ = select.select(socks, [], [], IDLE_TIMEOUT)
            if not ready:
                return
            for s in ready:
                data = s.recv(65536)
                if not data:
                    return
                (b if s is a else a).sendall(data)
    except OSError:
        return
    finally:
        a.close()
        b.close()


def main(fd: int, port: int, cmd: list[str]) -> int:
    """Serve until SIGTERM; 1 if CMD never listens."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=10)
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)

    def stop(*_: object) -> None:
        child.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(5)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            socket.create_connection((LOOPBACK, port), timeout=1).close()
            break
        except OSError:
            if child.poll() is not None or time.monotonic() > deadline:
                print(f"{cmd[0]} exited or never listened on {port}", file=sys.stderr)
                return 1
            time.sleep(0.05)
    listener = socket.socket(fileno=fd)
    print("ready", flush=True)
    while True:
        client, _ = listener.accept()
        try:
            upstream = socket.create_connection((LOOPBACK, port), timeout=5)
        except OSError:
            client.close()
            continue
        threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]))
