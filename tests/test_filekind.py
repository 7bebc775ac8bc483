"""One wording for every path that is not a regular file (filekind), from stat alone."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from amicheck.filekind import describe_mode, not_regular


def test_each_kind_from_a_real_path(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    sock_path = tmp_path / "sock"
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(sock_path))
        kinds = {tmp_path: "is a directory", fifo: "is a FIFO (named pipe)",
                 Path("/dev/null"): "is a device", sock_path: "is a socket"}
        for path, said in kinds.items():
            mode = os.stat(path).st_mode
            assert describe_mode(mode) == said
            assert not_regular(mode, "a capture file") == f"{said}, not a capture file"
    finally:
        sock.close()
    regular = tmp_path / "f"
    regular.write_text("x")
    assert not_regular(os.stat(regular).st_mode, "a profile file") is None
