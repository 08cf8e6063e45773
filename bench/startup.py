#!/usr/bin/env python3
"""Time from exec to the first 200 from GET /healthz, for bench/run.sh.

    startup.py LOG_FILE -- COMMAND ARGS...

Every `{port}` in COMMAND is replaced by a free port on 127.0.0.1. The command is spawned (its output
appended to LOG_FILE), /healthz is polled as fast as it answers, 1 ms apart, and the elapsed time is
printed as one line, `STARTUP ms=12.345`; the server is then stopped with SIGTERM (SIGKILL after 30 s).
Exits 1, saying why, when the server exits or does not answer 200 within 30 s. Standard library only.
"""

import signal
import socket
import subprocess
import sys
import time

DEADLINE_S = 30.0
POLL_GAP_S = 0.001
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_of_healthz(port: int, timeout: float) -> int | None:
    """The status of one GET /healthz, or None when nothing listens yet."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            conn.sendall(REQUEST)
            head = b""
            while b"\r\n" not in head:
                chunk = conn.recv(256)
                if not chunk:
                    return None
                head += chunk
    except OSError:  # refused while the server is not listening yet; reset while it starts
        return None
    parts = head.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def main() -> int:
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit(__doc__)
    log_file, command = sys.argv[1], sys.argv[3:]
    port = free_port()
    command = [arg.replace("{port}", str(port)) for arg in command]

    with open(log_file, "ab") as log:
        start = time.perf_counter()
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            while True:
                elapsed = time.perf_counter() - start
                if server.poll() is not None:
                    print(f"startup: the server exited ({server.returncode}) before answering; see {log_file}",
                          file=sys.stderr)
                    return 1
                if elapsed > DEADLINE_S:
                    print(f"startup: no 200 from /healthz within {DEADLINE_S:.0f} s; see {log_file}", file=sys.stderr)
                    return 1
                if status_of_healthz(port, timeout=DEADLINE_S - elapsed) == 200:
                    elapsed = time.perf_counter() - start
                    break
                time.sleep(POLL_GAP_S)
        finally:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
                try:
                    server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
    print(f"STARTUP ms={elapsed * 1000:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
