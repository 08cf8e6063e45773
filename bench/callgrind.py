#!/usr/bin/env python3
"""Instructions per request of one route under callgrind: noise-free where wrk is not (a busy
machine, other processes on the server's CPU), so an A/B of a small change shows up.

    callgrind.py BINARY [PATH] [REQUESTS]      PATH default /api/auth/check, REQUESTS 2000

Runs BINARY serve under valgrind with instrumentation off, with a user `bench` and an access token of
theirs (Bearer, GET; `HANDSTAMP_*` settings of the caller's environment apply, e.g.
HANDSTAMP_CHECK_USER=false), on one keep-alive connection: 200 requests to warm up, then
instrumentation on, REQUESTS requests, a dump. Prints `CALLGRIND path=... requests=N
instructions_per_request=X` (all threads, the access log included). Every answer must be a 200.
Standard library only.
"""

import glob
import http.client
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = "bench-handstamp-key-0123456789abcdef0123456789abcdef0123456789ab"
WARM_UP = 200


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def requests(conn, path, token, count):
    for _ in range(count):
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            sys.exit(f"{path}: {response.status} {body!r}")


def main():
    if not 2 <= len(sys.argv) <= 4:
        sys.exit(__doc__)
    binary = os.path.abspath(sys.argv[1])
    path = sys.argv[2] if len(sys.argv) > 2 else "/api/auth/check"
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    with tempfile.TemporaryDirectory() as work:
        env = dict(os.environ, HANDSTAMP_DATABASE_URL=f"sqlite://{work}/hs.sqlite3",
                   HANDSTAMP_SIGNING_KEY=KEY)
        created = subprocess.run([binary, "user", "create", "bench", "--password-stdin"], input="pw\n",
                                 env=env, cwd=work, capture_output=True, text=True, check=True).stdout
        user_id = re.search(r"\(id (\d+)\)", created).group(1)
        token = subprocess.run([sys.executable, f"{HERE}/mint_refresh.py", "--access", KEY, user_id],
                               capture_output=True, text=True, check=True).stdout.strip()
        port = free_port()
        out = f"{work}/callgrind.out"
        with open(f"{work}/server.log", "w") as log:
            server = subprocess.Popen(
                ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                 binary, "serve", "--bind", f"127.0.0.1:{port}"],
                env=env, cwd=work, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    conn.request("GET", "/healthz")
                    conn.getresponse().read()
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        sys.exit(open(f"{work}/server.log").read()[-2000:])
                    time.sleep(0.2)
            requests(conn, path, token, WARM_UP)
            control = lambda what: subprocess.run(["callgrind_control", what, str(server.pid)],
                                                  check=True, capture_output=True)
            control("--instr=on")
            requests(conn, path, token, count)
            control("--dump")
            total = 0
            for line in open(max(glob.glob(f"{out}.*"), key=os.path.getmtime)):
                if line.startswith(("summary:", "totals:")):
                    total = int(line.split()[1])
                    break
            print(f"CALLGRIND path={path} requests={count} instructions_per_request={total / count:.0f}")
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
