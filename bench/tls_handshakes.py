#!/usr/bin/env python3
"""New TLS connections per second, for bench/gateway.sh: what wrk cannot measure (it keeps its
connections open).

    tls_handshakes.py HOST PORT PATH SECONDS [THREADS]

Each of THREADS threads (default 8) loops for SECONDS: a new TCP connection, a full TLS 1.3
handshake (no session resumption: every connection starts without a ticket), one
`GET PATH HTTP/1.1` with `Connection: close`, the whole answer read, the connection closed. The
certificate is not checked (the bench makes a self-signed one); the handshake's own signature still
is, as in every TLS 1.3 handshake. The threads wait on the network and on OpenSSL with the GIL
released, so several keep the server busy.

Prints the same machine-readable line as bench/scenario.lua (non200: answers that were not 200):

    BENCH requests=N duration_s=S rps=R p50_ms=A p99_ms=B non200=C socket_errors=E timeouts=T
          exhausted=0 statuses=... first_bad=...

Standard library only.
"""

import socket
import ssl
import sys
import threading
import time
from collections import Counter

TIMEOUT_S = 10


def one(context, host, port, request):
    """One connection: handshake, request, answer. Returns the status."""
    with socket.create_connection((host, port), timeout=TIMEOUT_S) as raw:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with context.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(request)
            chunks = []
            while True:
                data = tls.recv(65536)
                if not data:
                    break
                chunks.append(data)
    answer = b"".join(chunks)
    line = answer.split(b"\r\n", 1)[0].split()
    return (int(line[1]) if len(line) > 1 and line[1].isdigit() else 0), answer


def main():
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__)
    host, port, path, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    threads = int(sys.argv[5]) if len(sys.argv) == 6 else 8
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.options |= ssl.OP_NO_TICKET
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()

    lock = threading.Lock()
    latencies, statuses, errors, timeouts = [], Counter(), [0], [0]
    first_bad = []
    deadline = time.monotonic() + seconds

    def worker():
        mine, my_statuses, my_errors, my_timeouts = [], Counter(), 0, 0
        while time.monotonic() < deadline:
            start = time.perf_counter()
            try:
                status, answer = one(context, host, port, request)
            except TimeoutError:
                my_errors += 1
                my_timeouts += 1
                continue
            except (OSError, ssl.SSLError) as e:
                my_errors += 1
                if not first_bad:
                    first_bad.append(f"error {e}")
                continue
            mine.append(time.perf_counter() - start)
            my_statuses[status] += 1
            if status != 200 and not first_bad:
                first_bad.append(answer[:200].decode("latin-1"))
        with lock:
            latencies.extend(mine)
            statuses.update(my_statuses)
            errors[0] += my_errors
            timeouts[0] += my_timeouts

    began = time.monotonic()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    duration = time.monotonic() - began

    latencies.sort()
    pct = lambda p: latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000 if latencies else 0
    bad = {s: n for s, n in statuses.items() if s != 200}
    print(f"BENCH requests={len(latencies)} duration_s={duration:.3f} rps={len(latencies) / duration:.1f}"
          f" p50_ms={pct(0.5):.3f} p99_ms={pct(0.99):.3f} non200={sum(bad.values())}"
          f" socket_errors={errors[0]} timeouts={timeouts[0]} exhausted=0"
          f" statuses={','.join(f'{s}:{n}' for s, n in sorted(bad.items())) or '-'}"
          f" first_bad={(first_bad[0] if first_bad else '').replace(chr(13), ' ').replace(chr(10), ' ')[:200]}")


if __name__ == "__main__":
    main()
